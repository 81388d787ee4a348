"""The "argument not given" sentinel shared by the client and ``Job``."""

from __future__ import annotations

from typing import Any

__all__ = ["UNSET"]


class _Default:
    """Marks an argument left out, so that ``None`` can keep meaning "wait forever"."""

    def __repr__(self) -> str:
        return "<default>"


#: "Not given": use the client's (or the config's) value.
UNSET: Any = _Default()
