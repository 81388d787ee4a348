"""Parsed server replies: small frozen dataclasses built once at the protocol boundary.

Each ``from_wire`` classmethod checks the shape of one reply and raises
:class:`~spalloc.exceptions.ProtocolError` when the server sent something unusable, so
the rest of the library never indexes raw JSON. For code written against the official
client, which handed out plain dicts, the reply types also answer ``info["state"]``
with the value exactly as the server sent it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spalloc.exceptions import ProtocolError
from spalloc.states import JobState

__all__ = [
    "JobDescription",
    "JobMachineInfo",
    "JobSnapshot",
    "JobStateInfo",
    "MachineDescription",
    "WhereIs",
]

Coord2 = tuple[int, int]
Coord3 = tuple[int, int, int]


def _fail(what: str, value: Any) -> ProtocolError:
    return ProtocolError(f"malformed {what} from server: {value!r}")


def _opt_float(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(what, value)
    return float(value)


def _opt_int(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise _fail(what, value)
    return int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _ints(value: Any, n: int, what: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise _fail(what, value)
    out = tuple(_opt_int(v, what) for v in value)
    if any(v is None for v in out):
        raise _fail(what, value)
    return out  # type: ignore[return-value]


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(what, value)
    return value


class _WireItems:
    """Dict-style read access to the reply as sent (``info["state"]``), for old code."""

    raw: Mapping[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        """Like ``dict.get`` on the reply as sent."""
        return self.raw.get(key, default)


@dataclass(frozen=True)
class JobStateInfo(_WireItems):
    """A ``get_job_state`` reply."""

    state: JobState
    power: bool | None
    keepalive: float | None
    reason: str | None
    start_time: float | None
    keepalivehost: str | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, value: Any) -> JobStateInfo:
        """Parse the reply; missing keys read as ``None`` (the Java server omits some)."""
        obj = _obj(value, "job state")
        power = obj.get("power")
        return cls(
            state=JobState.from_wire(obj.get("state")),
            power=None if power is None else bool(power),
            keepalive=_opt_float(obj.get("keepalive"), "keepalive"),
            reason=_opt_str(obj.get("reason")),
            start_time=_opt_float(obj.get("start_time"), "start_time"),
            keepalivehost=_opt_str(obj.get("keepalivehost")),
            raw=dict(obj),
        )


@dataclass(frozen=True)
class JobMachineInfo(_WireItems):
    """A ``get_job_machine_info`` reply; every field is ``None`` until boards are allocated."""

    width: int | None
    height: int | None
    connections: Mapping[Coord2, str] | None
    machine_name: str | None
    boards: tuple[Coord3, ...] | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def empty(cls) -> JobMachineInfo:
        """The reply for a job without boards."""
        return cls(None, None, None, None, None)

    @classmethod
    def from_wire(cls, value: Any) -> JobMachineInfo:
        """Parse the reply, turning ``[[[x, y], host], ...]`` into ``{(x, y): host}``."""
        obj = _obj(value, "job machine info")
        connections: dict[Coord2, str] | None = None
        raw_conns = obj.get("connections")
        if raw_conns is not None:
            if not isinstance(raw_conns, list):
                raise _fail("connections", raw_conns)
            connections = {}
            for item in raw_conns:
                if not isinstance(item, (list, tuple)) or len(item) != 2:
                    raise _fail("connection", item)
                x, y = _ints(item[0], 2, "connection")
                connections[(x, y)] = str(item[1])
        boards: tuple[Coord3, ...] | None = None
        raw_boards = obj.get("boards")
        if raw_boards is not None:
            if not isinstance(raw_boards, list):
                raise _fail("boards", raw_boards)
            boards = tuple(_ints(b, 3, "board") for b in raw_boards)  # type: ignore[misc]
        return cls(
            width=_opt_int(obj.get("width"), "width"),
            height=_opt_int(obj.get("height"), "height"),
            connections=connections,
            machine_name=_opt_str(obj.get("machine_name")),
            boards=boards,
            raw=dict(obj),
        )


@dataclass(frozen=True)
class WhereIs(_WireItems):
    """A ``where_is`` reply: one chip's logical, physical and job-relative position."""

    machine: str
    logical: Coord3
    physical: Coord3
    chip: Coord2
    board_chip: Coord2
    job_id: int | None
    job_chip: Coord2 | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, value: Any) -> WhereIs | None:
        """Parse the reply; ``None`` stays ``None`` (nothing is there)."""
        if value is None:
            return None
        obj = _obj(value, "where_is reply")
        job_chip = obj.get("job_chip")
        return cls(
            machine=str(obj.get("machine")),
            logical=_ints(obj.get("logical"), 3, "logical"),  # type: ignore[arg-type]
            physical=_ints(obj.get("physical"), 3, "physical"),  # type: ignore[arg-type]
            chip=_ints(obj.get("chip"), 2, "chip"),  # type: ignore[arg-type]
            board_chip=_ints(obj.get("board_chip"), 2, "board_chip"),  # type: ignore[arg-type]
            job_id=_opt_int(obj.get("job_id"), "job_id"),
            job_chip=None if job_chip is None else _ints(job_chip, 2, "job_chip"),  # type: ignore[arg-type]
            raw=dict(obj),
        )


@dataclass(frozen=True)
class JobDescription(_WireItems):
    """One entry of a ``list_jobs`` reply."""

    job_id: int
    owner: str | None
    start_time: float | None
    keepalive: float | None
    state: JobState
    power: bool | None
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    allocated_machine_name: str | None
    boards: tuple[Coord3, ...] | None
    keepalivehost: str | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, value: Any) -> JobDescription:
        """Parse one entry."""
        obj = _obj(value, "job description")
        job_id = _opt_int(obj.get("job_id"), "job_id")
        if job_id is None:
            raise _fail("job description", value)
        raw_boards = obj.get("boards")
        boards = None
        if isinstance(raw_boards, list):
            boards = tuple(_ints(b, 3, "board") for b in raw_boards)
        power = obj.get("power")
        args = obj.get("args")
        kwargs = obj.get("kwargs")
        return cls(
            job_id=job_id,
            owner=_opt_str(obj.get("owner")),
            start_time=_opt_float(obj.get("start_time"), "start_time"),
            keepalive=_opt_float(obj.get("keepalive"), "keepalive"),
            state=JobState.from_wire(obj.get("state")),
            power=None if power is None else bool(power),
            args=tuple(args) if isinstance(args, list) else (),
            kwargs=dict(kwargs) if isinstance(kwargs, Mapping) else {},
            allocated_machine_name=_opt_str(obj.get("allocated_machine_name")),
            boards=boards,  # type: ignore[arg-type]
            keepalivehost=_opt_str(obj.get("keepalivehost")),
            raw=dict(obj),
        )


@dataclass(frozen=True)
class MachineDescription(_WireItems):
    """One entry of a ``list_machines`` reply (``width``/``height`` in triads)."""

    name: str
    tags: tuple[str, ...]
    width: int
    height: int
    dead_boards: tuple[Coord3, ...]
    dead_links: tuple[tuple[int, int, int, int], ...]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, value: Any) -> MachineDescription:
        """Parse one entry."""
        obj = _obj(value, "machine description")
        tags = obj.get("tags") or []
        dead_boards = obj.get("dead_boards") or []
        dead_links = obj.get("dead_links") or []
        if not all(isinstance(v, list) for v in (tags, dead_boards, dead_links)):
            raise _fail("machine description", value)
        width = _opt_int(obj.get("width"), "width")
        height = _opt_int(obj.get("height"), "height")
        if width is None or height is None:
            raise _fail("machine description", value)
        return cls(
            name=str(obj.get("name")),
            tags=tuple(str(t) for t in tags),
            width=width,
            height=height,
            dead_boards=tuple(_ints(b, 3, "dead board") for b in dead_boards),  # type: ignore[misc]
            dead_links=tuple(_ints(b, 4, "dead link") for b in dead_links),  # type: ignore[misc]
            raw=dict(obj),
        )


@dataclass(frozen=True)
class JobSnapshot:
    """Everything a :class:`~spalloc.job.Job` knows about its job at one moment.

    ``connected`` says whether the job's connection is up; ``last_keepalive_ok`` is the
    ``time.time()`` of the last keepalive the server accepted and ``keepalive_error`` the
    text of the last failure (``None`` once a keepalive succeeds again).
    """

    job_id: int | None
    owner: str | None = None
    state: JobState = JobState.unknown
    power: bool | None = None
    reason: str | None = None
    keepalive: float | None = None
    start_time: float | None = None
    keepalivehost: str | None = None
    machine_name: str | None = None
    boards: tuple[Coord3, ...] | None = None
    width: int | None = None
    height: int | None = None
    connections: Mapping[Coord2, str] | None = None
    connected: bool = False
    last_keepalive_ok: float | None = None
    keepalive_error: str | None = None

    @property
    def hostname(self) -> str | None:
        """The hostname of chip (0, 0), or ``None`` before allocation."""
        if not self.connections:
            return None
        return self.connections.get((0, 0))
