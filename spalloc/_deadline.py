"""Deadlines: one ``time.monotonic()`` instant shared by every step of a public call."""

from __future__ import annotations

import time

__all__ = ["deadline_of", "remaining"]


def deadline_of(timeout: float | None) -> float | None:
    """The ``time.monotonic()`` deadline of a timeout in seconds (``None``: no deadline)."""
    return None if timeout is None else time.monotonic() + max(timeout, 0.0)


def remaining(deadline: float | None) -> float | None:
    """Seconds left until *deadline* (never negative; ``None`` for no deadline)."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())
