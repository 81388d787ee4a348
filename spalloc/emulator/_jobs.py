"""Parsing and validating ``create_job`` arguments, and the emulator's job record.

Everything a client sends is checked here *before* a job ID is issued, so a bad request
never leaves a half-registered job behind (PROTOCOL.md §9, quirks 3 and 4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from spalloc.emulator.allocator import Allocation, AllocationRequest
from spalloc.geometry import Chip, Machine, job_connections
from spalloc.states import JobState

__all__ = [
    "DEFAULT_KEEPALIVE",
    "CommandError",
    "Job",
    "JobSpec",
    "as_int",
    "parse_create_job",
]

#: Keepalive (seconds) of a job whose creator did not give one.
DEFAULT_KEEPALIVE = 60.0

_CREATE_KWARGS = frozenset(
    {
        "owner",
        "keepalive",
        "machine",
        "tags",
        "min_ratio",
        "max_dead_boards",
        "max_dead_links",
        "require_torus",
    }
)


class CommandError(Exception):
    """A command failed; its text goes back to the client as ``{"exception": text}``."""


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def as_number(name: str, value: Any) -> float | int:
    """Return *value* if it is a finite JSON number (not a bool), else raise CommandError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CommandError(f"{name} must be a number, not {_type_name(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise CommandError(f"{name} must be a finite number, not {value!r}")
    return value


def as_int(name: str, value: Any) -> int:
    """Return *value* as an int if it is a whole number (``2.0`` counts), else raise."""
    number = as_number(name, value)
    if isinstance(number, float):
        if not number.is_integer():
            raise CommandError(f"{name} must be a whole number, not {number!r}")
        return int(number)
    return number


def _optional_count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    # A fractional limit behaves like its floor: "more than 2.5 dead" == "more than 2".
    return math.floor(as_number(name, value))


def _tags(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        # The reference turns "single" into a set of characters; one tag is what was meant.
        return frozenset({value})
    if not isinstance(value, list):
        raise CommandError(f"tags must be a list of strings, not {_type_name(value)}")
    for tag in value:
        if not isinstance(tag, str):
            raise CommandError(f"tags must be a list of strings, found {_type_name(tag)}")
    return frozenset(value)


@dataclass(frozen=True)
class JobSpec:
    """A validated ``create_job`` request."""

    owner: str
    keepalive: float | None
    machine: str | None
    tags: frozenset[str]
    request: AllocationRequest
    args: tuple[Any, ...]
    kwargs: dict[str, Any]  # as sent, minus owner and keepalive (what list_jobs shows)


def _request(
    args: list[Any],
    min_ratio: float,
    max_dead_boards: int | None,
    max_dead_links: int | None,
    require_torus: bool,
) -> AllocationRequest:
    # The reference takes x, then y only if x was given, then z only if y was: the first
    # null ends the list.
    given: list[Any] = []
    for value in args:
        if value is None:
            break
        given.append(value)
    if len(given) in (0, 1) and (not given or as_number("number of boards", given[0]) == 1):
        if require_torus:
            raise CommandError("require_torus must be False when allocating boards.")
        return AllocationRequest(kind="any_board")
    if len(given) == 1:
        count = math.ceil(as_number("number of boards", given[0]))
        if min_ratio < 0:
            raise CommandError("Aspect ratio cannot be negative.")
        return AllocationRequest(
            kind="boards",
            count=count,
            min_ratio=min_ratio,
            max_dead_boards=max_dead_boards,
            max_dead_links=max_dead_links,
            require_torus=require_torus,
        )
    if len(given) == 2:
        return AllocationRequest(
            kind="rect",
            width=as_int("width", given[0]),
            height=as_int("height", given[1]),
            max_dead_boards=max_dead_boards,
            max_dead_links=max_dead_links,
            require_torus=require_torus,
        )
    if require_torus:
        raise CommandError("require_torus must be False when allocating boards.")
    board = (as_int("x", given[0]), as_int("y", given[1]), as_int("z", given[2]))
    return AllocationRequest(kind="board", board=board)


def parse_create_job(args: list[Any], kwargs: dict[str, Any]) -> JobSpec:
    """Validate ``create_job(*args, **kwargs)``; every keyword's ``null`` means its default.

    Raises:
        CommandError: with the reference's text for its domain errors, our own otherwise.
    """
    if len(args) > 3:
        raise CommandError(f"create_job() takes at most 3 positional arguments ({len(args)} given)")
    for key in kwargs:
        if key not in _CREATE_KWARGS:
            raise CommandError(f"create_job() got an unexpected keyword argument {key!r}")
    owner = kwargs.get("owner")
    if owner is None:
        raise CommandError("owner must be specified for all jobs")
    keepalive_arg = kwargs.get("keepalive", DEFAULT_KEEPALIVE)
    keepalive = None if keepalive_arg is None else float(as_number("keepalive", keepalive_arg))
    machine = kwargs.get("machine")
    if machine is not None and not isinstance(machine, str):
        raise CommandError(f"machine must be a string or null, not {_type_name(machine)}")
    tags = _tags(kwargs.get("tags"))
    if machine is not None and tags is not None:
        raise CommandError("Only one of machine and tags may be specified for a job.")
    ratio_arg = kwargs.get("min_ratio")
    min_ratio = 0.0 if ratio_arg is None else float(as_number("min_ratio", ratio_arg))
    torus_arg = kwargs.get("require_torus")
    if torus_arg is None:
        require_torus = False
    elif isinstance(torus_arg, bool) or (isinstance(torus_arg, int) and torus_arg in (0, 1)):
        require_torus = bool(torus_arg)
    else:
        raise CommandError(f"require_torus must be true or false, not {torus_arg!r}")
    request = _request(
        list(args),
        min_ratio,
        _optional_count("max_dead_boards", kwargs.get("max_dead_boards")),
        _optional_count("max_dead_links", kwargs.get("max_dead_links")),
        require_torus,
    )
    shown = {k: v for k, v in kwargs.items() if k not in ("owner", "keepalive")}
    if tags is not None:
        shown["tags"] = sorted(tags)
    if isinstance(owner, str):
        owner_text = owner
    elif isinstance(owner, bool):
        owner_text = "True" if owner else "False"  # as the reference's str() would give
    else:
        owner_text = str(owner)
    return JobSpec(
        owner=owner_text,
        keepalive=keepalive,
        machine=machine,
        tags=frozenset({"default"}) if tags is None else tags,
        request=request,
        args=tuple(args),
        kwargs=shown,
    )


@dataclass(eq=False)
class Job:
    """A live job inside the controller (mutable; only the controller's thread touches it)."""

    job_id: int
    spec: JobSpec
    start_time: float
    keepalive_host: str | None
    deadline: float | None
    state: JobState = JobState.queued
    power: bool | None = None
    machine: Machine | None = None
    allocation: Allocation | None = None
    pending_power: int = 0
    candidates: list[str] = field(default_factory=list)
    #: Wall-clock time of the last keepalive (creation counts), for v2's ``keep-alive-time``.
    keepalive_time: float | None = None
    finish_time: float | None = None
    reason: str | None = None
    #: The v2 create request as accepted (defaults filled in), None for v1 jobs.
    original: dict[str, Any] | None = None

    def connections(self) -> list[tuple[Chip, str | None]]:
        """Each board's Ethernet chip, relative to the job (PROTOCOL.md §5.5), with its IP
        address (None if it has none), sorted by chip; empty while nothing is allocated."""
        allocation, machine = self.allocation, self.machine
        if allocation is None or machine is None:
            return []
        return [(chip, machine.ip(board)) for chip, board in job_connections(allocation.boards)]
