"""Parsed server replies: immutable records built once at the protocol boundary.

One set of types serves the library (``ProtocolClient``'s typed methods, ``Job``), the
command-line tools and the notebook: each ``from_wire`` checks the shape of one reply, so the
rest of the code never indexes raw JSON. Parsing is lenient about missing keys (the Java
server omits or fills some differently, PROTOCOL.md §8) and strict about types: a value that
cannot be shown honestly raises :class:`~spalloc.exceptions.ProtocolError` naming the field
(a malformed keepalive is not shown as ``None``, which would mean "no keepalive").

The records are ``NamedTuple`` classes rather than frozen dataclasses: as immutable, but a
dataclass compiles its methods when its module is imported, which showed in the start-up
time of every command-line tool; for the same reason this module does not import
:mod:`typing` at run time. For code written against the official client, which handed out
plain dicts, the reply types also answer ``info["state"]`` and ``info.get("state")`` with
the value exactly as the server sent it (kept in ``raw``, left out of the ``repr``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from spalloc._namedtuple import NamedTuple
from spalloc.exceptions import ProtocolError
from spalloc.states import JobState

TYPE_CHECKING = False  # not typing's: that import costs start-up time (mypy sees True)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "JobDescription",
    "JobMachineInfo",
    "JobSnapshot",
    "JobStateInfo",
    "MachineDescription",
    "WhereIs",
    "parse_jobs",
    "parse_machines",
]

Coord2 = tuple[int, int]
Coord3 = tuple[int, int, int]
Link = tuple[int, int, int, int]

#: ``raw`` of a record not built from a reply.
_NO_REPLY: Mapping[str, Any] = MappingProxyType({})


# --------------------------------------------------------------------------- field parsers

def _fail(key: str, reply: str, value: Any) -> ProtocolError:
    return ProtocolError(f"malformed {key!r} in a {reply} reply from the server: {value!r}")


def _obj(value: Any, reply: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProtocolError(f"unexpected {reply} reply from the server: {value!r}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _float(obj: Mapping[str, Any], key: str, reply: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if not _is_number(value):
        raise _fail(key, reply, value)
    return float(value)


def _as_int(value: Any, key: str, reply: str) -> int:
    # Integral floats pass (some JSON encoders write 3.0); 2.5 or "3" is not a count.
    if not _is_number(value) or value != int(value):
        raise _fail(key, reply, value)
    return int(value)


def _int(obj: Mapping[str, Any], key: str, reply: str) -> int | None:
    value = obj.get(key)
    return None if value is None else _as_int(value, key, reply)


def _text(obj: Mapping[str, Any], key: str, reply: str) -> str | None:
    # A number can still be shown as text; a list or an object cannot.
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, (int, float)):
        raise _fail(key, reply, value)
    return str(value)


def _power(obj: Mapping[str, Any], reply: str) -> bool | None:
    value = obj.get("power")
    if value is None or isinstance(value, bool):
        return value
    if value in (0, 1) and _is_number(value):
        return bool(value)
    raise _fail("power", reply, value)


def _ints(value: Any, n: int, key: str, reply: str) -> list[int]:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise _fail(key, reply, value)
    return [_as_int(v, key, reply) for v in value]


def _chip(value: Any, key: str, reply: str) -> Coord2:
    x, y = _ints(value, 2, key, reply)
    return (x, y)


def _board(value: Any, key: str, reply: str) -> Coord3:
    x, y, z = _ints(value, 3, key, reply)
    return (x, y, z)


def _boards(obj: Mapping[str, Any], key: str, reply: str) -> tuple[Coord3, ...] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _fail(key, reply, value)
    return tuple(_board(item, key, reply) for item in value)


def _list(value: Any, reply: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProtocolError(f"unexpected {reply} reply from the server: {value!r}")
    return value


def _wire_item(record: Any, key: Any) -> Any:
    # A str key reads the reply as sent; an index or a slice is the tuple's own.
    if isinstance(key, str):
        return record.raw[key]
    return tuple.__getitem__(record, key)


def _repr(record: Any) -> str:
    # As the namedtuple's repr, without ``raw`` (the last field): the reply again, in full.
    fields = ", ".join(f"{name}={value!r}"
                       for name, value in zip(record._fields, record[:-1], strict=False))
    return f"{type(record).__name__}({fields})"


# --------------------------------------------------------------------------- replies

class JobStateInfo(NamedTuple):
    """A ``get_job_state`` reply."""

    state: JobState
    power: bool | None
    keepalive: float | None
    reason: str | None
    start_time: float | None
    keepalivehost: str | None
    raw: Mapping[str, Any] = _NO_REPLY

    def __getitem__(self, key: Any) -> Any:
        return _wire_item(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """Like ``dict.get`` on the reply as sent."""
        return self.raw.get(key, default)

    def __repr__(self) -> str:
        return _repr(self)

    @classmethod
    def from_wire(cls, value: Any) -> JobStateInfo:
        """Parse the reply; missing keys read as ``None`` (the Java server omits some)."""
        obj = _obj(value, "get_job_state")
        return cls(
            state=JobState.from_wire(obj.get("state")),
            power=_power(obj, "get_job_state"),
            keepalive=_float(obj, "keepalive", "get_job_state"),
            reason=_text(obj, "reason", "get_job_state"),
            start_time=_float(obj, "start_time", "get_job_state"),
            keepalivehost=_text(obj, "keepalivehost", "get_job_state"),
            raw=dict(obj),
        )


class JobMachineInfo(NamedTuple):
    """A ``get_job_machine_info`` reply; every field is ``None`` until boards are allocated.

    ``connections`` maps each Ethernet chip ``(x, y)`` to its hostname.
    """

    width: int | None
    height: int | None
    connections: Mapping[Coord2, str] | None
    machine_name: str | None
    boards: tuple[Coord3, ...] | None
    raw: Mapping[str, Any] = _NO_REPLY

    def __getitem__(self, key: Any) -> Any:
        return _wire_item(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """Like ``dict.get`` on the reply as sent."""
        return self.raw.get(key, default)

    def __repr__(self) -> str:
        return _repr(self)

    @classmethod
    def empty(cls) -> JobMachineInfo:
        """The reply for a job without boards."""
        return cls(None, None, None, None, None)

    @classmethod
    def from_wire(cls, value: Any) -> JobMachineInfo:
        """Parse the reply, turning ``[[[x, y], host], ...]`` into ``{(x, y): host}``."""
        reply = "get_job_machine_info"
        obj = _obj(value, reply)
        connections: dict[Coord2, str] | None = None
        raw_conns = obj.get("connections")
        if raw_conns is not None:
            if not isinstance(raw_conns, list):
                raise _fail("connections", reply, raw_conns)
            connections = {}
            for item in raw_conns:
                if not isinstance(item, (list, tuple)) or len(item) != 2:
                    raise _fail("connections", reply, item)
                if not isinstance(item[1], str):
                    raise _fail("connections", reply, item)
                connections[_chip(item[0], "connections", reply)] = item[1]
        return cls(
            width=_int(obj, "width", reply),
            height=_int(obj, "height", reply),
            connections=connections,
            machine_name=_text(obj, "machine_name", reply),
            boards=_boards(obj, "boards", reply),
            raw=dict(obj),
        )


class WhereIs(NamedTuple):
    """A ``where_is`` reply: one chip's logical, physical and job-relative position."""

    machine: str
    logical: Coord3
    physical: Coord3
    chip: Coord2
    board_chip: Coord2
    job_id: int | None
    job_chip: Coord2 | None
    raw: Mapping[str, Any] = _NO_REPLY

    def __getitem__(self, key: Any) -> Any:
        return _wire_item(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """Like ``dict.get`` on the reply as sent."""
        return self.raw.get(key, default)

    def __repr__(self) -> str:
        return _repr(self)

    @classmethod
    def from_wire(cls, value: Any) -> WhereIs | None:
        """Parse the reply; ``None`` stays ``None`` (nothing is there)."""
        if value is None:
            return None
        obj = _obj(value, "where_is")
        job_chip = obj.get("job_chip")
        return cls(
            machine=_text(obj, "machine", "where_is") or "",
            logical=_board(obj.get("logical"), "logical", "where_is"),
            physical=_board(obj.get("physical"), "physical", "where_is"),
            chip=_chip(obj.get("chip"), "chip", "where_is"),
            board_chip=_chip(obj.get("board_chip"), "board_chip", "where_is"),
            job_id=_int(obj, "job_id", "where_is"),
            job_chip=None if job_chip is None else _chip(job_chip, "job_chip", "where_is"),
            raw=dict(obj),
        )


class JobDescription(NamedTuple):
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
    raw: Mapping[str, Any] = _NO_REPLY

    def __getitem__(self, key: Any) -> Any:
        return _wire_item(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """Like ``dict.get`` on the reply as sent."""
        return self.raw.get(key, default)

    def __repr__(self) -> str:
        return _repr(self)

    @classmethod
    def from_wire(cls, value: Any) -> JobDescription:
        """Parse one entry; a job without a job id is an error."""
        obj = _obj(value, "list_jobs")
        job_id = _int(obj, "job_id", "list_jobs")
        if job_id is None:
            raise _fail("job_id", "list_jobs", value)
        args = obj.get("args")
        kwargs = obj.get("kwargs")
        return cls(
            job_id=job_id,
            owner=_text(obj, "owner", "list_jobs"),
            start_time=_float(obj, "start_time", "list_jobs"),
            keepalive=_float(obj, "keepalive", "list_jobs"),
            state=JobState.from_wire(obj.get("state")),
            power=_power(obj, "list_jobs"),
            # The request as the server echoes it: shown, never relied on.
            args=tuple(args) if isinstance(args, list) else (),
            kwargs=dict(kwargs) if isinstance(kwargs, Mapping) else {},
            allocated_machine_name=_text(obj, "allocated_machine_name", "list_jobs"),
            boards=_boards(obj, "boards", "list_jobs"),
            keepalivehost=_text(obj, "keepalivehost", "list_jobs"),
            raw=dict(obj),
        )


def parse_jobs(reply: Any) -> list[JobDescription]:
    """Parse a whole ``list_jobs`` reply, keeping the server's order."""
    return [JobDescription.from_wire(item) for item in _list(reply, "list_jobs")]


class MachineDescription(NamedTuple):
    """One entry of a ``list_machines`` reply (``width``/``height`` in triads).

    ``tags`` are sorted: servers hold them in a set, so their order would vary.
    """

    name: str
    tags: tuple[str, ...]
    width: int
    height: int
    dead_boards: tuple[Coord3, ...]
    dead_links: tuple[Link, ...]
    raw: Mapping[str, Any] = _NO_REPLY

    def __getitem__(self, key: Any) -> Any:
        return _wire_item(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """Like ``dict.get`` on the reply as sent."""
        return self.raw.get(key, default)

    def __repr__(self) -> str:
        return _repr(self)

    @property
    def num_boards(self) -> int:
        """Live boards: three per triad, less the dead ones."""
        return self.width * self.height * 3 - len(set(self.dead_boards))

    def boards(self) -> list[Coord3]:
        """Every live board, in x, y, z order."""
        dead = set(self.dead_boards)
        return [(x, y, z) for x in range(self.width) for y in range(self.height)
                for z in range(3) if (x, y, z) not in dead]

    @classmethod
    def from_wire(cls, value: Any) -> MachineDescription:
        """Parse one entry; a machine needs a name and a size, the rest may be missing."""
        reply = "list_machines"
        obj = _obj(value, reply)
        name = obj.get("name")
        if not isinstance(name, str):
            raise _fail("name", reply, name)
        tags = obj.get("tags") or []
        if not isinstance(tags, list):
            raise _fail("tags", reply, tags)
        width = _int(obj, "width", reply)
        height = _int(obj, "height", reply)
        if width is None:
            raise _fail("width", reply, value)
        if height is None:
            raise _fail("height", reply, value)
        links = obj.get("dead_links") or []
        if not isinstance(links, list):
            raise _fail("dead_links", reply, links)
        dead_links = []
        for link in links:
            x, y, z, direction = _ints(link, 4, "dead_links", reply)
            dead_links.append((x, y, z, direction))
        return cls(
            name=name,
            tags=tuple(sorted(str(tag) for tag in tags)),
            width=width,
            height=height,
            dead_boards=_boards(obj, "dead_boards", reply) or (),
            dead_links=tuple(dead_links),
            raw=dict(obj),
        )


def parse_machines(reply: Any) -> list[MachineDescription]:
    """Parse a whole ``list_machines`` reply, keeping the server's (priority) order."""
    return [MachineDescription.from_wire(item) for item in _list(reply, "list_machines")]


# --------------------------------------------------------------------------- Job's view

class JobSnapshot(NamedTuple):
    """Everything a :class:`~spalloc.job.Job` knows about its job at one moment.

    ``connected`` says whether the job's connection is up; ``last_keepalive_ok`` is the
    ``time.time()`` of the last keepalive the server accepted and ``keepalive_error`` the
    text of the last failure (``None`` once a keepalive succeeds again). ``_replace``
    gives a changed copy.
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
