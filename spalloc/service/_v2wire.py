"""spalloc v2's JSON documents as the v1 records :class:`~spalloc.job.Job` and the tools read.

Pure functions, no I/O (V2_PROTOCOL.md §1.2-§1.7): states are strings, times ISO-8601 instants,
the keepalive an ISO-8601 duration, sizes in triads, ``BoardCoords`` objects. Each becomes the
value a v1 server gives for the same allocation: the size in chips (8x8 for one board, else
12 per triad plus 4 unless the allocation wraps, :func:`~spalloc.geometry.allocation_size`),
states as :class:`~spalloc.states.JobState`, times as UNIX seconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from spalloc.exceptions import ProtocolError
from spalloc.geometry import Link, allocation_size
from spalloc.models import JobDescription, JobMachineInfo, JobStateInfo, MachineDescription, WhereIs
from spalloc.service.base import JobRequest
from spalloc.states import JobState

__all__ = [
    "KEEPALIVE_MAX",
    "KEEPALIVE_MIN",
    "accounting",
    "check_keepalive",
    "create_body",
    "iso_duration",
    "job_description",
    "job_ids",
    "job_state",
    "keepalive_of",
    "machine_description",
    "machine_info",
    "parse_duration",
    "parse_time",
    "state_of",
    "where_is",
]

#: The keepalive intervals a v2 server accepts (``spalloc.keepalive.min``/``max``), seconds.
KEEPALIVE_MIN = 30.0
KEEPALIVE_MAX = 300.0

_DURATION = re.compile(
    r"P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:[.,]\d*)?)S)?)?",
    re.IGNORECASE,
)

_INSTANT = re.compile(
    r"(?P<base>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:[.,](?P<fraction>\d+))?"
    r"(?P<zone>[Zz]|[+-]\d\d:\d\d)?"
)

# v2's board-to-board DownLink directions as the v1 link numbers the emulator's v1 side uses
# (the inverse of the emulator's own mapping, so one dead link reads the same both ways).
_LINKS = {
    "N": Link.north,
    "E": Link.east,
    "SE": Link.south_west,
    "S": Link.south,
    "W": Link.west,
    "NW": Link.north_east,
}


def _fail(what: str, value: Any) -> ProtocolError:
    return ProtocolError(f"malformed {what} from the v2 server: {value!r}")


def iso_duration(seconds: float) -> str:
    """Seconds as an ISO-8601 duration (``PT60S``, ``PT45.5S``)."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"PT{text}S"


def parse_duration(value: Any) -> float | None:
    """An ISO-8601 duration (or a number of seconds) in seconds; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or not any(match.group(g) for g in "dhms"):
        raise _fail("duration", value)
    parts = {g: float((match.group(g) or "0").replace(",", ".")) for g in "dhms"}
    return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]


def parse_time(value: Any) -> float | None:
    """An ISO-8601 instant (``2021-10-11T12:13:14Z``) as UNIX seconds; ``None`` stays ``None``."""
    if value is None:
        return None
    match = _INSTANT.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise _fail("time", value)
    # Java's Instant writes 0 to 9 digits of fraction and "Z"; Python 3.10's fromisoformat
    # reads neither all of those nor "Z": hand it 6 digits and "+00:00".
    fraction = (match.group("fraction") or "").ljust(6, "0")[:6]
    zone = match.group("zone") or "Z"
    zone = "+00:00" if zone.upper() == "Z" else zone
    try:
        return datetime.fromisoformat(f"{match.group('base')}.{fraction}{zone}").timestamp()
    except ValueError:
        raise _fail("time", value) from None


def check_keepalive(keepalive: float | None) -> float:
    """The keepalive interval a v2 job gets, or a clear error.

    Raises:
        ValueError: ``None`` (v2 jobs always expire) or outside 30-300 s.
    """
    if (
        keepalive is None
        or not math.isfinite(keepalive)
        or not (KEEPALIVE_MIN <= keepalive <= KEEPALIVE_MAX)
    ):
        raise ValueError(
            f"keepalive must be between {KEEPALIVE_MIN:g} and {KEEPALIVE_MAX:g} seconds for a "
            f"spalloc v2 server (got {keepalive!r}); v2 jobs always expire"
        )
    return float(keepalive)


def create_body(request: JobRequest) -> dict[str, Any]:
    """A ``CreateJobRequest`` for *request*; ``owner`` is never sent (the login owns the job).

    Raises:
        ValueError: a keepalive v2 cannot accept, or both a machine and tags.
    """
    body: dict[str, Any] = {"keepalive-interval": iso_duration(check_keepalive(request.keepalive))}
    args = request.args
    if len(args) == 1:
        body["num-boards"] = args[0]
    elif len(args) == 2:
        body["dimensions"] = {"width": args[0], "height": args[1]}
    elif len(args) == 3:
        body["board"] = {"x": args[0], "y": args[1], "z": args[2]}
    # Both a machine and tags go as asked: the server's refusal says what is wrong.
    if request.machine is not None:
        body["machine-name"] = request.machine
    if request.tags is not None:
        body["tags"] = list(request.tags)
    if request.max_dead_boards is not None:
        body["max-dead-boards"] = request.max_dead_boards
    return body


def accounting(group: str | None, collab: str | None, environ: Mapping[str, str]) -> dict[str, Any]:
    """The create request's accounting fields: a group, a collab, or the NMPI job the
    environment names (``NMPI_JOB_ID``, and ``NMPI_USER`` as its owner); at most one.

    Raises:
        ValueError: both a group and a collab, or an NMPI_JOB_ID that is not a number.
    """
    if group is not None and collab is not None:
        raise ValueError("give a group or a collab to charge, not both")
    if group is not None:
        return {"group": group}
    if collab is not None:
        return {"nmpi-collab": collab}
    job = environ.get("NMPI_JOB_ID", "").strip()
    if not job:
        return {}
    if not job.isdigit():
        raise ValueError(f"NMPI_JOB_ID must be a job number, not {job!r}")
    fields: dict[str, Any] = {"nmpi-job-id": int(job)}
    if environ.get("NMPI_USER"):
        fields["owner"] = environ["NMPI_USER"]  # only NMPI_EXEC accounts may name an owner
    return fields


def state_of(doc: Mapping[str, Any]) -> JobState:
    """The state of a ``JobStateResponse`` (``"READY"`` → :attr:`JobState.ready`)."""
    name = doc.get("state")
    if not isinstance(name, str):
        raise _fail("job state", name)
    return JobState.__members__.get(name.strip().lower(), JobState.unknown)


def keepalive_of(doc: Mapping[str, Any]) -> float | None:
    """The job's keepalive interval, from the request the server echoes back."""
    original = doc.get("original-request")
    if not isinstance(original, Mapping):
        return None
    return parse_duration(original.get("keepalive-interval"))


def job_state(doc: Any, power: bool | None) -> JobStateInfo:
    """A ``JobStateResponse`` (and the job's power, fetched apart) as ``get_job_state``'s reply.

    ``keepalive`` is the interval, as the v1 reference server reports it.
    """
    if not isinstance(doc, Mapping):
        raise _fail("job state", doc)
    state = state_of(doc)
    reason = doc.get("reason")
    host = doc.get("keepalive-host")
    return JobStateInfo(
        state=state,
        power=power if state in (JobState.power, JobState.ready) else None,
        keepalive=keepalive_of(doc),
        reason=reason if isinstance(reason, str) else None,
        start_time=parse_time(doc.get("start-time")),
        keepalivehost=host if isinstance(host, str) else None,
    )


def _board(value: Any) -> tuple[int, int, int]:
    if (
        not isinstance(value, Sequence)
        or len(value) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise _fail("board", value)
    return (value[0], value[1], value[2])


def _chip(value: Any) -> tuple[int, int]:
    if (
        not isinstance(value, Sequence)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise _fail("chip", value)
    return (value[0], value[1])


def machine_info(doc: Any, machine_size: tuple[int, int]) -> JobMachineInfo:
    """A ``SubMachineResponse`` as ``get_job_machine_info``'s reply, sizes in chips.

    Args:
        doc: the response.
        machine_size: the whole machine's width and height in triads (for wrap-around).
    """
    if not isinstance(doc, Mapping):
        raise _fail("job machine", doc)
    boards = tuple(_board(b) for b in doc.get("boards") or [])
    connections: dict[tuple[int, int], str] = {}
    for item in doc.get("connections") or []:
        if not isinstance(item, Sequence) or len(item) != 2 or not isinstance(item[1], str):
            raise _fail("connection", item)
        connections[_chip(item[0])] = item[1]
    name = doc.get("machine-name")
    if not isinstance(name, str) or not boards:
        raise _fail("job machine", doc)
    width, height = allocation_size(boards, *machine_size)
    return JobMachineInfo(
        width=width, height=height, connections=connections, machine_name=name, boards=boards
    )


def where_is(doc: Any) -> WhereIs:
    """A ``WhereIsResponse`` as ``where_is``'s reply."""
    if not isinstance(doc, Mapping):
        raise _fail("where-is", doc)
    job_chip = doc.get("job-chip")
    job_id = doc.get("job-id")
    machine = doc.get("machine")
    return WhereIs(
        machine=machine if isinstance(machine, str) else "",
        logical=_board(doc.get("logical-board-coordinates")),
        physical=_board(doc.get("physical-board-coordinates")),
        chip=_chip(doc.get("chip")),
        board_chip=_chip(doc.get("board-chip")),
        job_id=job_id if isinstance(job_id, int) else None,
        job_chip=None if job_chip is None else _chip(job_chip),
    )


def _coords(value: Any) -> tuple[int, int, int]:
    if not isinstance(value, Mapping):
        raise _fail("board coordinates", value)
    return _board([value.get("x"), value.get("y"), value.get("z")])


def machine_description(doc: Any) -> MachineDescription:
    """One entry of ``GET /machines`` as a ``list_machines`` entry.

    Each dead link is reported once, from the end the server lists first.
    """
    if not isinstance(doc, Mapping) or not isinstance(doc.get("name"), str):
        raise _fail("machine", doc)
    links = []
    for link in doc.get("dead-links") or []:
        if not isinstance(link, Sequence) or not link or not isinstance(link[0], Mapping):
            raise _fail("dead link", link)
        end = link[0]
        direction = _LINKS.get(str(end.get("direction")))
        if direction is None:
            raise _fail("dead link", link)
        links.append((*_coords(end.get("board")), int(direction)))
    width, height = doc.get("width"), doc.get("height")
    if not isinstance(width, int) or not isinstance(height, int):
        raise _fail("machine", doc)
    return MachineDescription(
        name=doc["name"],
        tags=tuple(sorted(str(t) for t in doc.get("tags") or [])),
        width=width,
        height=height,
        dead_boards=tuple(_coords(b) for b in doc.get("dead-boards") or []),
        dead_links=tuple(links),
    )


def _original_args(original: Mapping[str, Any]) -> tuple[int, ...]:
    if isinstance(original.get("num-boards"), int):
        return (original["num-boards"],)
    dims = original.get("dimensions")
    if isinstance(dims, Mapping):
        return (dims.get("width"), dims.get("height"))  # type: ignore[return-value]
    board = original.get("board")
    if isinstance(board, Mapping) and {"x", "y", "z"} <= set(board):
        return (board["x"], board["y"], board["z"])
    return ()


def job_description(
    job_id: int, state: JobStateInfo, doc: Mapping[str, Any], info: JobMachineInfo | None
) -> JobDescription:
    """One ``list_jobs`` entry from a job's state document and its machine information."""
    original = doc.get("original-request")
    original = original if isinstance(original, Mapping) else {}
    kwargs: dict[str, Any] = {"keepalive": state.keepalive}
    if original.get("machine-name") is not None:
        kwargs["machine"] = original["machine-name"]
    elif original.get("tags"):
        kwargs["tags"] = list(original["tags"])
    owner = doc.get("owner")
    return JobDescription(
        job_id=job_id,
        owner=owner if isinstance(owner, str) else None,
        start_time=state.start_time,
        keepalive=state.keepalive,
        state=state.state,
        power=state.power,
        args=_original_args(original),
        kwargs=kwargs,
        allocated_machine_name=None if info is None else info.machine_name,
        boards=None if info is None else info.boards,
        keepalivehost=state.keepalivehost,
    )


def job_ids(refs: Any) -> list[int]:
    """The job IDs of a job list's references (``…/jobs/7``); anything else is skipped."""
    tails = (str(ref).rstrip("/").rsplit("/", 1)[-1] for ref in refs or ())
    return [int(tail) for tail in tails if tail.isdigit()]
