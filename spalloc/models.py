"""Parsed server replies: immutable records built once at the protocol boundary.

One set of types serves the library (``ProtocolClient``'s typed methods, ``Job``), the
command-line tools and the notebook: each ``from_wire`` checks the shape of one reply, so the
rest of the code never indexes raw JSON. Parsing is lenient about missing keys (the Java
server omits or fills some differently, PROTOCOL.md §8) and strict about types: a value that
cannot be shown honestly raises :class:`~spalloc.exceptions.ProtocolError` naming the field
(a malformed keepalive is not shown as ``None``, which would mean "no keepalive").

Each reply record is also the server's object itself, read-only: code written for the
official client, which handed out plain dicts, keeps working (``info["state"]``,
``"reason" in info``, ``dict(info)``, ``json.dumps(info)``, ``info == reply``), while ours
reads typed attributes (``info.state`` is a :class:`~spalloc.states.JobState`). Equality is
therefore the mapping's; a record made from typed values holds the reply the server would
have sent for them. They are ``dict`` subclasses because ``json`` serialises nothing else as
an object, and plain classes rather than dataclasses because a dataclass compiles its
methods when its module is imported, which showed in the start-up time of every
command-line tool (for the same reason this module does not import :mod:`typing`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from spalloc._namedtuple import NamedTuple
from spalloc.exceptions import ProtocolError
from spalloc.states import JobState

TYPE_CHECKING = False  # not typing's: that import costs start-up time (mypy sees True)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, ClassVar, Self, TypeVar, dataclass_transform

    # What type checkers see: a read-only mapping (at run time a dict that refuses changes).
    _ReplyBase = Mapping[str, Any]
    _R = TypeVar("_R", bound="_Reply")
else:
    _ReplyBase = dict

    def dataclass_transform(**options):
        """typing's marker for type checkers, without typing (it changes nothing at run time)."""
        return lambda cls: cls


__all__ = [
    "BridgeTraffic",
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


# --------------------------------------------------------------------------- the shared base


@dataclass_transform(frozen_default=True)
class _Reply(_ReplyBase):
    """A server reply: the object as sent, read-only, with typed attributes parsed from it.

    Subclasses declare their typed fields as annotations (in order: ``Cls(*fields)`` and
    ``Cls(**fields)`` build one from typed values) and, in ``_to_wire``, how a typed value
    goes back to its JSON form where the two differ.
    """

    _fields: ClassVar[tuple[str, ...]] = ()
    _to_wire: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._fields = tuple(cls.__annotations__)  # its own (never a base's, since 3.10)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        name, fields = type(self).__name__, self._fields
        if len(args) > len(fields):
            raise TypeError(f"{name}() takes {len(fields)} arguments but {len(args)} were given")
        values = dict(zip(fields, args, strict=False))
        for key, value in kwargs.items():
            if key not in fields:
                raise TypeError(f"{name}() got an unexpected keyword argument {key!r}")
            if key in values:
                raise TypeError(f"{name}() got multiple values for argument {key!r}")
            values[key] = value
        missing = [key for key in fields if key not in values]
        if missing:
            raise TypeError(f"{name}() missing arguments: {', '.join(missing)}")
        _fill(self, values, {key: self._wire_value(key, values[key]) for key in fields})

    @classmethod
    def _from_reply(cls, reply: Mapping[str, Any], **values: Any) -> Self:
        """The record holding *reply* as sent, with typed *values* parsed from it."""
        return _rebuild(cls, values, reply)

    @classmethod
    def _wire_value(cls, key: str, value: Any) -> Any:
        convert = cls._to_wire.get(key)
        return value if convert is None or value is None else convert(value)

    def _replace(self, **changes: Any) -> Self:
        """A copy with some typed values changed (their wire form changes with them)."""
        unknown = changes.keys() - set(self._fields)
        if unknown:
            raise ValueError(f"{type(self).__name__} has no fields {sorted(unknown)}")
        values = {key: getattr(self, key) for key in self._fields}
        values.update(changes)
        content = dict(self)
        content.update((key, self._wire_value(key, value)) for key, value in changes.items())
        return _rebuild(type(self), values, content)

    @property
    def raw(self) -> Mapping[str, Any]:
        """The reply as the server sent it (a read-only view: the record is that reply)."""
        return MappingProxyType(self)

    def __repr__(self) -> str:
        # The typed view: the reply itself is one dict() away.
        fields = ", ".join(f"{key}={getattr(self, key)!r}" for key in self._fields)
        return f"{type(self).__name__}({fields})"

    def __reduce__(self) -> tuple[Any, ...]:
        # dict's own pickling would refill the record through the refused __setitem__.
        values = {key: getattr(self, key) for key in self._fields}
        return (_rebuild, (type(self), values, dict(self)))

    if TYPE_CHECKING:
        # Mapping's abstract methods, which dict provides at run time.
        def __getitem__(self, key: str) -> Any: ...
        def __iter__(self) -> Iterator[str]: ...
        def __len__(self) -> int: ...
    else:

        def _read_only(self, *args, **kwargs):
            raise TypeError(
                f"a {type(self).__name__} is a read-only reply; "
                "dict(...) makes a copy that can be changed"
            )

        __setitem__ = __delitem__ = __ior__ = _read_only
        clear = pop = popitem = setdefault = update = _read_only

        def __setattr__(self, name, value):
            raise AttributeError(
                f"a {type(self).__name__} cannot be changed (_replace(...) makes a changed copy)"
            )

        __delattr__ = __setattr__


def _fill(record: Any, values: Mapping[str, Any], content: Mapping[str, Any]) -> None:
    # The one place a record is written: typed values as attributes, the reply as the dict.
    for key in record._fields:
        object.__setattr__(record, key, values[key])
    dict.update(record, content)


def _rebuild(cls: type[_R], values: Mapping[str, Any], content: Mapping[str, Any]) -> _R:
    # A record without __init__ (which would build the content from the typed values).
    record = cls.__new__(cls)
    _fill(record, values, content)
    return record


def _lists(value: Any) -> list[Any]:
    """Tuples back to JSON arrays, at every depth (coordinates, lists of them)."""
    return [_lists(item) if isinstance(item, tuple) else item for item in value]


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


# --------------------------------------------------------------------------- replies


class JobStateInfo(_Reply):
    """A ``get_job_state`` reply."""

    state: JobState
    power: bool | None
    keepalive: float | None
    reason: str | None
    start_time: float | None
    keepalivehost: str | None

    _to_wire = {"state": int}

    @classmethod
    def from_wire(cls, value: Any) -> JobStateInfo:
        """Parse the reply; missing keys read as ``None`` (the Java server omits some)."""
        obj = _obj(value, "get_job_state")
        return cls._from_reply(
            obj,
            state=JobState.from_wire(obj.get("state")),
            power=_power(obj, "get_job_state"),
            keepalive=_float(obj, "keepalive", "get_job_state"),
            reason=_text(obj, "reason", "get_job_state"),
            start_time=_float(obj, "start_time", "get_job_state"),
            keepalivehost=_text(obj, "keepalivehost", "get_job_state"),
        )


class JobMachineInfo(_Reply):
    """A ``get_job_machine_info`` reply; every field is ``None`` until boards are allocated.

    ``connections`` maps each Ethernet chip ``(x, y)`` to its hostname.
    """

    width: int | None
    height: int | None
    connections: Mapping[Coord2, str] | None
    machine_name: str | None
    boards: tuple[Coord3, ...] | None

    _to_wire = {
        "connections": lambda conns: [[[x, y], host] for (x, y), host in conns.items()],
        "boards": _lists,
    }

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
        return cls._from_reply(
            obj,
            width=_int(obj, "width", reply),
            height=_int(obj, "height", reply),
            connections=connections,
            machine_name=_text(obj, "machine_name", reply),
            boards=_boards(obj, "boards", reply),
        )


class WhereIs(_Reply):
    """A ``where_is`` reply: one chip's logical, physical and job-relative position."""

    machine: str
    logical: Coord3
    physical: Coord3
    chip: Coord2
    board_chip: Coord2
    job_id: int | None
    job_chip: Coord2 | None

    _to_wire = {key: _lists for key in ("logical", "physical", "chip", "board_chip", "job_chip")}

    @classmethod
    def from_wire(cls, value: Any) -> WhereIs | None:
        """Parse the reply; ``None`` stays ``None`` (nothing is there)."""
        if value is None:
            return None
        obj = _obj(value, "where_is")
        job_chip = obj.get("job_chip")
        return cls._from_reply(
            obj,
            machine=_text(obj, "machine", "where_is") or "",
            logical=_board(obj.get("logical"), "logical", "where_is"),
            physical=_board(obj.get("physical"), "physical", "where_is"),
            chip=_chip(obj.get("chip"), "chip", "where_is"),
            board_chip=_chip(obj.get("board_chip"), "board_chip", "where_is"),
            job_id=_int(obj, "job_id", "where_is"),
            job_chip=None if job_chip is None else _chip(job_chip, "job_chip", "where_is"),
        )


class JobDescription(_Reply):
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

    _to_wire = {"state": int, "args": _lists, "kwargs": dict, "boards": _lists}

    @classmethod
    def from_wire(cls, value: Any) -> JobDescription:
        """Parse one entry; a job without a job id is an error."""
        obj = _obj(value, "list_jobs")
        job_id = _int(obj, "job_id", "list_jobs")
        if job_id is None:
            raise _fail("job_id", "list_jobs", value)
        args = obj.get("args")
        kwargs = obj.get("kwargs")
        return cls._from_reply(
            obj,
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
        )


def parse_jobs(reply: Any) -> list[JobDescription]:
    """Parse a whole ``list_jobs`` reply, keeping the server's order."""
    return [JobDescription.from_wire(item) for item in _list(reply, "list_jobs")]


class MachineDescription(_Reply):
    """One entry of a ``list_machines`` reply (``width``/``height`` in triads).

    ``tags`` are sorted: servers hold them in a set, so their order would vary.
    """

    name: str
    tags: tuple[str, ...]
    width: int
    height: int
    dead_boards: tuple[Coord3, ...]
    dead_links: tuple[Link, ...]

    _to_wire = {"tags": list, "dead_boards": _lists, "dead_links": _lists}

    @property
    def num_boards(self) -> int:
        """Live boards: three per triad, less the dead ones."""
        return self.width * self.height * 3 - len(set(self.dead_boards))

    def boards(self) -> list[Coord3]:
        """Every live board, in x, y, z order."""
        dead = set(self.dead_boards)
        return [
            (x, y, z)
            for x in range(self.width)
            for y in range(self.height)
            for z in range(3)
            if (x, y, z) not in dead
        ]

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
        return cls._from_reply(
            obj,
            name=name,
            tags=tuple(sorted(str(tag) for tag in tags)),
            width=width,
            height=height,
            dead_boards=_boards(obj, "dead_boards", reply) or (),
            dead_links=tuple(dead_links),
        )


def parse_machines(reply: Any) -> list[MachineDescription]:
    """Parse a whole ``list_machines`` reply, keeping the server's (priority) order."""
    return [MachineDescription.from_wire(item) for item in _list(reply, "list_machines")]


# --------------------------------------------------------------------------- Job's view


class BridgeTraffic(NamedTuple):
    """What a job's proxy bridge has carried: *out* is towards the boards, *in* from them;
    errors are datagrams dropped (no channel, the websocket down, a full queue, a refused
    send); ``reconnects`` counts websockets opened again after one dropped."""

    packets_out: int = 0
    bytes_out: int = 0
    errors_out: int = 0
    packets_in: int = 0
    bytes_in: int = 0
    errors_in: int = 0
    reconnects: int = 0


class JobSnapshot(NamedTuple):
    """Everything a :class:`~spalloc.job.Job` knows about its job at one moment.

    ``connected`` says whether the job's connection is up; ``last_keepalive_ok`` is the
    ``time.time()`` of the last keepalive the server accepted and ``keepalive_error`` the
    text of the last failure (``None`` once a keepalive succeeds again). With a proxy
    bridge (v2), ``connections`` are the bridge's loopback addresses, ``bridged`` is True
    and ``traffic`` counts what it carried. ``_replace`` gives a changed copy.
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
    #: True while ``connections`` are the loopback addresses of the job's proxy bridge
    bridged: bool = False
    #: the boards' own addresses when ``connections`` are bridged (else ``None``)
    board_connections: Mapping[Coord2, str] | None = None
    #: the bridge's counters (refreshed at most twice a second), ``None`` without a bridge
    traffic: BridgeTraffic | None = None
    #: why the bridge cannot carry traffic now (``None`` when it can)
    bridge_error: str | None = None

    @property
    def hostname(self) -> str | None:
        """The hostname of chip (0, 0), or ``None`` before allocation."""
        if not self.connections:
            return None
        return self.connections.get((0, 0))
