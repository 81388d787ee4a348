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
command-line tool (for the same reason this module does not import :mod:`typing`). Their
shared base and the parsers of single fields are in :mod:`spalloc._reply`.
"""

from __future__ import annotations

from collections.abc import Mapping

from spalloc._namedtuple import NamedTuple
from spalloc._reply import (
    Coord2,
    Coord3,
    Link,
    Reply,
    as_board,
    as_chip,
    as_ints,
    get_boards,
    get_float,
    get_int,
    get_power,
    get_text,
    lists,
    malformed,
    rebuild,
    reply_list,
    reply_object,
)
from spalloc.states import JobState

TYPE_CHECKING = False  # not typing's: that import costs start-up time (mypy sees True)
if TYPE_CHECKING:
    from typing import Any

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

# Records pickled before the base moved to spalloc._reply name their rebuilder here.
_rebuild = rebuild


# --------------------------------------------------------------------------- replies


class JobStateInfo(Reply):
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
        obj = reply_object(value, "get_job_state")
        return cls._from_reply(
            obj,
            state=JobState.from_wire(obj.get("state")),
            power=get_power(obj, "get_job_state"),
            keepalive=get_float(obj, "keepalive", "get_job_state"),
            reason=get_text(obj, "reason", "get_job_state"),
            start_time=get_float(obj, "start_time", "get_job_state"),
            keepalivehost=get_text(obj, "keepalivehost", "get_job_state"),
        )


class JobMachineInfo(Reply):
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
        "boards": lists,
    }

    @classmethod
    def empty(cls) -> JobMachineInfo:
        """The reply for a job without boards."""
        return cls(None, None, None, None, None)

    @classmethod
    def from_wire(cls, value: Any) -> JobMachineInfo:
        """Parse the reply, turning ``[[[x, y], host], ...]`` into ``{(x, y): host}``."""
        reply = "get_job_machine_info"
        obj = reply_object(value, reply)
        connections: dict[Coord2, str] | None = None
        raw_conns = obj.get("connections")
        if raw_conns is not None:
            if not isinstance(raw_conns, list):
                raise malformed("connections", reply, raw_conns)
            connections = {}
            for item in raw_conns:
                if not isinstance(item, (list, tuple)) or len(item) != 2:
                    raise malformed("connections", reply, item)
                if not isinstance(item[1], str):
                    raise malformed("connections", reply, item)
                connections[as_chip(item[0], "connections", reply)] = item[1]
        return cls._from_reply(
            obj,
            width=get_int(obj, "width", reply),
            height=get_int(obj, "height", reply),
            connections=connections,
            machine_name=get_text(obj, "machine_name", reply),
            boards=get_boards(obj, "boards", reply),
        )


class WhereIs(Reply):
    """A ``where_is`` reply: one chip's logical, physical and job-relative position."""

    machine: str
    logical: Coord3
    physical: Coord3
    chip: Coord2
    board_chip: Coord2
    job_id: int | None
    job_chip: Coord2 | None

    _to_wire = {key: lists for key in ("logical", "physical", "chip", "board_chip", "job_chip")}

    @classmethod
    def from_wire(cls, value: Any) -> WhereIs | None:
        """Parse the reply; ``None`` stays ``None`` (nothing is there)."""
        if value is None:
            return None
        obj = reply_object(value, "where_is")
        job_chip = obj.get("job_chip")
        return cls._from_reply(
            obj,
            machine=get_text(obj, "machine", "where_is") or "",
            logical=as_board(obj.get("logical"), "logical", "where_is"),
            physical=as_board(obj.get("physical"), "physical", "where_is"),
            chip=as_chip(obj.get("chip"), "chip", "where_is"),
            board_chip=as_chip(obj.get("board_chip"), "board_chip", "where_is"),
            job_id=get_int(obj, "job_id", "where_is"),
            job_chip=None if job_chip is None else as_chip(job_chip, "job_chip", "where_is"),
        )


class JobDescription(Reply):
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

    _to_wire = {"state": int, "args": lists, "kwargs": dict, "boards": lists}

    @classmethod
    def from_wire(cls, value: Any) -> JobDescription:
        """Parse one entry; a job without a job id is an error."""
        obj = reply_object(value, "list_jobs")
        job_id = get_int(obj, "job_id", "list_jobs")
        if job_id is None:
            raise malformed("job_id", "list_jobs", value)
        args = obj.get("args")
        kwargs = obj.get("kwargs")
        return cls._from_reply(
            obj,
            job_id=job_id,
            owner=get_text(obj, "owner", "list_jobs"),
            start_time=get_float(obj, "start_time", "list_jobs"),
            keepalive=get_float(obj, "keepalive", "list_jobs"),
            state=JobState.from_wire(obj.get("state")),
            power=get_power(obj, "list_jobs"),
            # The request as the server echoes it: shown, never relied on.
            args=tuple(args) if isinstance(args, list) else (),
            kwargs=dict(kwargs) if isinstance(kwargs, Mapping) else {},
            allocated_machine_name=get_text(obj, "allocated_machine_name", "list_jobs"),
            boards=get_boards(obj, "boards", "list_jobs"),
            keepalivehost=get_text(obj, "keepalivehost", "list_jobs"),
        )


def parse_jobs(reply: Any) -> list[JobDescription]:
    """Parse a whole ``list_jobs`` reply, keeping the server's order."""
    return [JobDescription.from_wire(item) for item in reply_list(reply, "list_jobs")]


class MachineDescription(Reply):
    """One entry of a ``list_machines`` reply (``width``/``height`` in triads).

    ``tags`` are sorted: servers hold them in a set, so their order would vary.
    """

    name: str
    tags: tuple[str, ...]
    width: int
    height: int
    dead_boards: tuple[Coord3, ...]
    dead_links: tuple[Link, ...]

    _to_wire = {"tags": list, "dead_boards": lists, "dead_links": lists}

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
        obj = reply_object(value, reply)
        name = obj.get("name")
        if not isinstance(name, str):
            raise malformed("name", reply, name)
        tags = obj.get("tags") or []
        if not isinstance(tags, list):
            raise malformed("tags", reply, tags)
        width = get_int(obj, "width", reply)
        height = get_int(obj, "height", reply)
        if width is None:
            raise malformed("width", reply, value)
        if height is None:
            raise malformed("height", reply, value)
        links = obj.get("dead_links") or []
        if not isinstance(links, list):
            raise malformed("dead_links", reply, links)
        dead_links = []
        for link in links:
            x, y, z, direction = as_ints(link, 4, "dead_links", reply)
            dead_links.append((x, y, z, direction))
        return cls._from_reply(
            obj,
            name=name,
            tags=tuple(sorted(str(tag) for tag in tags)),
            width=width,
            height=height,
            dead_boards=get_boards(obj, "dead_boards", reply) or (),
            dead_links=tuple(dead_links),
        )


def parse_machines(reply: Any) -> list[MachineDescription]:
    """Parse a whole ``list_machines`` reply, keeping the server's (priority) order."""
    return [MachineDescription.from_wire(item) for item in reply_list(reply, "list_machines")]


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
