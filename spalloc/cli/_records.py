"""Server replies the command-line tools display, parsed once into immutable records.

The admin tools talk to the server with raw calls, so every reply they
show goes through one of the ``from_wire`` constructors here; the renderers never index raw
JSON. Parsing is lenient about missing keys (older and Java servers differ) and strict about
types: a value of the wrong type becomes ``None`` or raises :class:`~spalloc.ProtocolError`
where nothing sensible can be shown.

The records are ``NamedTuple`` classes rather than frozen dataclasses: equally immutable,
but a dataclass compiles its methods when its module is imported, which showed up in the
start-up time of every tool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from spalloc._namedtuple import NamedTuple
from spalloc.exceptions import ProtocolError

TYPE_CHECKING = False  # not typing's: that import costs start-up time (mypy sees True)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "JobRecord",
    "JobStateRecord",
    "LocationRecord",
    "MachineInfoRecord",
    "MachineRecord",
    "parse_jobs",
    "parse_machines",
]

Board = tuple[int, int, int]
Chip = tuple[int, int]


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _ints(value: Any, n: int) -> list[int] | None:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != n:
        return None
    items = [_int(v) for v in value]
    return [v for v in items if v is not None] if None not in items else None


def _board(value: Any) -> Board | None:
    items = _ints(value, 3)
    return None if items is None else (items[0], items[1], items[2])


def _chip(value: Any) -> Chip | None:
    items = _ints(value, 2)
    return None if items is None else (items[0], items[1])


def _boards(value: Any) -> tuple[Board, ...] | None:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return None
    return tuple(board for board in map(_board, value) if board is not None)


def _mapping(reply: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(reply, Mapping):
        raise ProtocolError(f"unexpected reply to {what}: {reply!r}")
    return reply


def _list(reply: Any, what: str) -> Sequence[Any]:
    if not isinstance(reply, Sequence) or isinstance(reply, str):
        raise ProtocolError(f"unexpected reply to {what}: {reply!r}")
    return reply


class JobRecord(NamedTuple):
    """One live job as ``list_jobs`` describes it."""

    job_id: int
    owner: str
    start_time: float | None
    keepalive: float | None
    state: int
    power: bool | None
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    machine_name: str | None
    boards: tuple[Board, ...] | None
    keepalivehost: str | None

    @classmethod
    def from_wire(cls, item: Any) -> JobRecord:
        """Parse one element of a ``list_jobs`` reply."""
        data = _mapping(item, "list_jobs")
        job_id = _int(data.get("job_id"))
        if job_id is None:
            raise ProtocolError(f"list_jobs entry without a job id: {item!r}")
        power = data.get("power")
        args = data.get("args")
        kwargs = data.get("kwargs")
        return cls(
            job_id=job_id,
            owner=str(data.get("owner", "")),
            start_time=_float(data.get("start_time")),
            keepalive=_float(data.get("keepalive")),
            state=_int(data.get("state")) or 0,
            power=power if isinstance(power, bool) else None,
            args=tuple(args) if isinstance(args, list) else (),
            kwargs=dict(kwargs) if isinstance(kwargs, Mapping) else {},
            machine_name=_str(data.get("allocated_machine_name")),
            boards=_boards(data.get("boards")),
            keepalivehost=_str(data.get("keepalivehost")) or None,
        )


def parse_jobs(reply: Any) -> list[JobRecord]:
    """Parse a ``list_jobs`` reply, keeping the server's order."""
    return [JobRecord.from_wire(item) for item in _list(reply, "list_jobs")]


class MachineRecord(NamedTuple):
    """One machine as ``list_machines`` describes it."""

    name: str
    tags: tuple[str, ...]
    width: int
    height: int
    dead_boards: frozenset[Board]
    dead_links: frozenset[tuple[int, int, int, int]]

    @property
    def num_boards(self) -> int:
        """Live boards: three per triad, less the dead ones."""
        return self.width * self.height * 3 - len(self.dead_boards)

    def boards(self) -> list[Board]:
        """Every live board, in x, y, z order."""
        return [(x, y, z) for x in range(self.width) for y in range(self.height)
                for z in range(3) if (x, y, z) not in self.dead_boards]

    @classmethod
    def from_wire(cls, item: Any) -> MachineRecord:
        """Parse one element of a ``list_machines`` reply."""
        data = _mapping(item, "list_machines")
        name = _str(data.get("name"))
        if name is None:
            raise ProtocolError(f"list_machines entry without a name: {item!r}")
        tags = data.get("tags")
        links: set[tuple[int, int, int, int]] = set()
        for link in data.get("dead_links") or ():
            parsed = _ints(link, 4)
            if parsed is not None:
                links.add((parsed[0], parsed[1], parsed[2], parsed[3]))
        return cls(
            name=name,
            # Servers hold tags in a set: sort them so the output does not vary.
            tags=tuple(sorted(str(t) for t in tags)) if isinstance(tags, list) else (),
            width=_int(data.get("width")) or 0,
            height=_int(data.get("height")) or 0,
            dead_boards=frozenset(_boards(data.get("dead_boards")) or ()),
            dead_links=frozenset(links),
        )


def parse_machines(reply: Any) -> list[MachineRecord]:
    """Parse a ``list_machines`` reply, keeping the server's (priority) order."""
    return [MachineRecord.from_wire(item) for item in _list(reply, "list_machines")]


class JobStateRecord(NamedTuple):
    """A ``get_job_state`` reply."""

    state: int
    power: bool | None
    keepalive: float | None
    reason: str | None
    start_time: float | None
    keepalivehost: str | None

    @classmethod
    def from_wire(cls, reply: Any) -> JobStateRecord:
        """Parse a ``get_job_state`` reply."""
        data = _mapping(reply, "get_job_state")
        power = data.get("power")
        return cls(
            state=_int(data.get("state")) or 0,
            power=power if isinstance(power, bool) else None,
            keepalive=_float(data.get("keepalive")),
            reason=_str(data.get("reason")),
            start_time=_float(data.get("start_time")),
            keepalivehost=_str(data.get("keepalivehost")) or None,
        )


class MachineInfoRecord(NamedTuple):
    """A ``get_job_machine_info`` reply; every field is ``None`` until boards are allocated."""

    width: int | None
    height: int | None
    connections: tuple[tuple[Chip, str], ...] | None
    machine_name: str | None
    boards: tuple[Board, ...] | None

    @classmethod
    def from_wire(cls, reply: Any) -> MachineInfoRecord:
        """Parse a ``get_job_machine_info`` reply; connections come out sorted by chip."""
        data = _mapping(reply, "get_job_machine_info")
        raw = data.get("connections")
        connections: tuple[tuple[Chip, str], ...] | None = None
        if isinstance(raw, list):
            pairs: list[tuple[Chip, str]] = []
            for item in raw:
                if isinstance(item, list) and len(item) == 2:
                    chip = _chip(item[0])
                    host = _str(item[1])
                    if chip is not None and host is not None:
                        pairs.append((chip, host))
            connections = tuple(sorted(pairs))
        return cls(
            width=_int(data.get("width")),
            height=_int(data.get("height")),
            connections=connections,
            machine_name=_str(data.get("machine_name")),
            boards=_boards(data.get("boards")),
        )


class LocationRecord(NamedTuple):
    """A non-null ``where_is`` reply."""

    machine: str
    logical: Board
    physical: tuple[int, int, int]
    chip: Chip
    board_chip: Chip
    job_id: int | None
    job_chip: Chip | None

    @classmethod
    def from_wire(cls, reply: Any) -> LocationRecord | None:
        """Parse a ``where_is`` reply; ``None`` when the server found nothing."""
        if reply is None:
            return None
        data = _mapping(reply, "where_is")
        logical = _board(data.get("logical"))
        physical = _board(data.get("physical"))
        chip = _chip(data.get("chip"))
        board_chip = _chip(data.get("board_chip"))
        if logical is None or physical is None or chip is None or board_chip is None:
            raise ProtocolError(f"unexpected reply to where_is: {reply!r}")
        return cls(
            machine=str(data.get("machine", "")),
            logical=logical,
            physical=physical,
            chip=chip,
            board_chip=board_chip,
            job_id=_int(data.get("job_id")),
            job_chip=_chip(data.get("job_chip")),
        )
