"""Job states, with the integer values used on the wire."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["JobState"]


class JobState(IntEnum):
    """All the possible states that a job may be in."""

    unknown = 0
    """The job ID requested was not recognised."""

    queued = 1
    """The job is waiting in a queue for a suitable machine."""

    power = 2
    """The boards allocated to the job are being powered on or off."""

    ready = 3
    """The job has boards and they are not powering on or off."""

    destroyed = 4
    """The job has been destroyed."""

    @classmethod
    def from_wire(cls, value: object) -> JobState:
        """Map the server's integer to a state; anything unrecognised is ``unknown``."""
        try:
            return cls(value)  # type: ignore[arg-type]
        except (ValueError, TypeError):
            return cls.unknown

    @property
    def is_live(self) -> bool:
        """True for the states in which the job holds or waits for boards."""
        return self in (JobState.queued, JobState.power, JobState.ready)
