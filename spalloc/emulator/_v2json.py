"""The v2 service's documents: parsing create requests, rendering jobs, machines and places.

Pure functions (no aiohttp, no sockets): kebab-case keys, ISO-8601 times and durations,
states as strings, coordinates as arrays, ``BoardCoords`` as objects (V2_PROTOCOL.md §1.2).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any

from spalloc.emulator._jobs import CommandError, Job
from spalloc.emulator._where import board_with_ip
from spalloc.geometry import Board, Link, Machine
from spalloc.states import JobState

__all__ = [
    "KEEPALIVE_MAX",
    "KEEPALIVE_MIN",
    "CreateRequest",
    "iso_time",
    "job_state",
    "machine_detail",
    "machine_summary",
    "parse_create",
    "parse_duration",
    "sub_machine",
    "where_is",
]

#: ``spalloc.keepalive.min`` / ``max`` of the Java server, in seconds.
KEEPALIVE_MIN = 30.0
KEEPALIVE_MAX = 300.0

_DURATION = re.compile(
    r"(?P<sign>[-+]?)P(?:(?P<d>[-+]?\d+)D)?"
    r"(?:T(?:(?P<h>[-+]?\d+)H)?(?:(?P<m>[-+]?\d+)M)?(?:(?P<s>[-+]?\d+(?:[.,]\d{0,9})?)S)?)?",
    re.IGNORECASE,
)

# Chip-link directions (the v1 model) as the board-to-board directions of v2's DownLink.
_DIRECTION = {
    Link.north: "N",
    Link.east: "E",
    Link.south_west: "SE",
    Link.south: "S",
    Link.west: "W",
    Link.north_east: "NW",
}

_FIELDS = frozenset(
    {
        "owner",
        "group",
        "nmpi-collab",
        "nmpi-job-id",
        "keepalive-interval",
        "num-boards",
        "dimensions",
        "board",
        "machine-name",
        "tags",
        "max-dead-boards",
    }
)


def iso_time(seconds: float | None) -> str | None:
    """UNIX seconds as an ISO-8601 UTC instant (``2021-10-11T12:13:14.5Z``), or None."""
    if seconds is None:
        return None
    text = datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z").replace(".000Z", "Z")


def iso_duration(seconds: float) -> str:
    """Seconds as Java's ``Duration.toString()`` would give them (``PT2M``, ``PT30S``)."""
    whole = int(seconds)
    text = "PT"
    if whole >= 3600:
        text += f"{whole // 3600}H"
    if whole % 3600 >= 60:
        text += f"{whole % 3600 // 60}M"
    rest = seconds - 60 * (whole // 60)
    if rest or text == "PT":
        text += (f"{rest:.9f}".rstrip("0").rstrip(".")) + "S"
    return text


def parse_duration(value: Any, name: str) -> float:
    """An ISO-8601 duration (``PT120S``) or a number of seconds, as seconds.

    Raises:
        CommandError: neither, or not finite.
    """
    if isinstance(value, bool):
        raise CommandError(f"{name} must be an ISO-8601 duration such as PT60S")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif (
        isinstance(value, str)
        and (match := _DURATION.fullmatch(value.strip()))
        and (any(match.group(g) for g in "dhms"))
    ):
        parts = {g: float((match.group(g) or "0").replace(",", ".")) for g in "dhms"}
        seconds = parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
        if match.group("sign") == "-":
            seconds = -seconds
    else:
        raise CommandError(f"{name} must be an ISO-8601 duration such as PT60S")
    if not math.isfinite(seconds):
        raise CommandError(f"{name} must be finite")
    return seconds


def _int(body: dict[str, Any], key: str, *, minimum: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise CommandError(f"{key} must be a whole number")
    if value < minimum:
        raise CommandError(f"{key} must be at least {minimum}")
    return value


class CreateRequest:
    """A checked v2 create request: what to hand the controller and what to echo back."""

    def __init__(
        self, args: list[Any], kwargs: dict[str, Any], original: dict[str, Any], group: str | None
    ) -> None:
        self.args = args
        self.kwargs = kwargs
        self.original = original
        self.group = group


def parse_create(
    body: Any,
    *,
    user: str,
    groups: tuple[str, ...],
    admin: bool,
    machines: tuple[Machine, ...],
    keepalive_cap: float | None = None,
) -> CreateRequest:
    """Check a ``CreateJobRequest`` the way ``SpallocServiceImpl`` does.

    Raises:
        CommandError: the text of the 400 reply.
    """
    if not isinstance(body, dict):
        raise CommandError("request must be supplied as a JSON object")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise CommandError(f"unknown field in job request: {unknown[0]}")
    owner = body.get("owner")
    if owner is not None and not isinstance(owner, str):
        raise CommandError("owner must be a string")
    if owner is not None and owner.strip() and not admin:
        raise CommandError("Only admin and NMPI users can specify an owner")
    owner = (owner or "").strip() or user
    if body.get("keepalive-interval") is None:
        raise CommandError(f"keepalive interval must be at least {iso_duration(KEEPALIVE_MIN)}")
    keepalive = parse_duration(body["keepalive-interval"], "keepalive-interval")
    if keepalive < KEEPALIVE_MIN:
        raise CommandError(f"keepalive interval must be at least {iso_duration(KEEPALIVE_MIN)}")
    if keepalive > KEEPALIVE_MAX:
        raise CommandError(f"keepalive interval must be no more than {iso_duration(KEEPALIVE_MAX)}")
    machine = body.get("machine-name")
    if machine is not None and not isinstance(machine, str):
        raise CommandError("machine-name must be a string")
    tags = body.get("tags")
    if tags is not None and (
        not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)
    ):
        raise CommandError("tags must be a list of strings")
    if tags is None:
        tags = [] if machine is not None else ["default"]
    if machine is not None and tags:
        raise CommandError("must not specify machine name and tags together")
    max_dead = body.get("max-dead-boards")
    if max_dead is None:
        max_dead = 0
    elif isinstance(max_dead, bool) or not isinstance(max_dead, int):
        raise CommandError("max-dead-boards must be a whole number")
    elif max_dead < 0:
        raise CommandError("the maximum number of dead boards must not be negative")
    accounts = [k for k in ("group", "nmpi-collab", "nmpi-job-id") if body.get(k) is not None]
    if len(accounts) > 1:
        raise CommandError("At most one of group, nmpiCollabId or nmpiJobId can be specified")
    if accounts and accounts[0] != "group":
        raise CommandError("NMPI accounting is not supported by the emulator")
    group = body.get("group")
    if group is not None:
        if not isinstance(group, str):
            raise CommandError("group must be a string")
        if group not in groups:
            raise CommandError(f"not a member of group {group}")
    elif len(groups) == 1:
        group = groups[0]
    elif groups:
        raise CommandError("User is a member of more than one group; specify which to use")
    args = _size_args(body, machine, tags, machines)
    kwargs: dict[str, Any] = {
        "owner": owner,
        "max_dead_boards": max_dead,
        "keepalive": keepalive if keepalive_cap is None else min(keepalive, keepalive_cap),
    }
    if machine is not None:
        kwargs["machine"] = machine
    else:
        kwargs["tags"] = tags
    original = dict(body, owner=owner, tags=tags)
    original["max-dead-boards"] = max_dead
    if group is not None:
        original["group"] = group
    return CreateRequest(args, kwargs, original, group)


def _size_args(
    body: dict[str, Any], machine: str | None, tags: list[str], machines: tuple[Machine, ...]
) -> list[Any]:
    count = _int(body, "num-boards", minimum=1)
    dims = body.get("dimensions")
    board = body.get("board")
    if count is not None and (dims is not None or board is not None):
        raise CommandError("num-boards must not be given with dimensions or board")
    if count is not None:
        return [count]
    if dims is not None:
        if not isinstance(dims, dict) or set(dims) - {"width", "height"}:
            raise CommandError("dimensions must be an object with width and height")
        width = _int(dims, "width", minimum=1)
        height = _int(dims, "height", minimum=1)
        if width is None or height is None:
            raise CommandError("dimensions must be an object with width and height")
        if board is not None:
            raise CommandError("rectangles rooted at a board are not supported by the emulator")
        return [width, height]
    if board is not None:
        return list(_find_board(board, machine, tags, machines))
    return []


def _find_board(
    board: Any, machine: str | None, tags: list[str], machines: tuple[Machine, ...]
) -> Board:
    if not isinstance(board, dict):
        raise CommandError("board must be an object")
    keys = set(board)
    candidates = [
        m for m in machines if (m.name == machine if machine is not None else set(tags) <= m.tags)
    ]
    if keys == {"x", "y", "z"}:
        x, y, z = (_int(board, k, minimum=0) for k in ("x", "y", "z"))
        assert x is not None and y is not None and z is not None
        return (x, y, z)
    if keys == {"cabinet", "frame", "board"}:
        location = tuple(_int(board, k, minimum=0) for k in ("cabinet", "frame", "board"))
        for candidate in candidates:
            found = candidate.board_at(location)  # type: ignore[arg-type]
            if found is not None:
                return found
        raise CommandError("no such board")
    if keys == {"address"}:
        address = board["address"]
        if not isinstance(address, str):
            raise CommandError("board address must be a string")
        for candidate in candidates:
            found = board_with_ip(candidate, address)
            if found is not None:
                return found
        raise CommandError("no such board")
    raise CommandError("board must be given as {x, y, z}, {cabinet, frame, board} or {address}")


def _triads(job: Job) -> tuple[int, int, int]:
    assert job.allocation is not None
    boards = job.allocation.boards
    if len(boards) == 1:
        return 1, 1, 1
    return (
        max(1, math.ceil(job.allocation.width / 12)),
        max(1, math.ceil(job.allocation.height / 12)),
        3,
    )


def job_state(job: Job, base: str, *, proxy_base: str | None) -> dict[str, Any]:
    """A ``JobStateResponse``; *base* is the service root URL ending in ``/``."""
    ref = f"{base}jobs/{job.job_id}/"
    destroyed = job.state is JobState.destroyed
    doc: dict[str, Any] = {
        "state": job.state.name.upper(),
        "owner": job.spec.owner,
        "start-time": iso_time(job.start_time),
    }
    optional = {
        "finish-time": iso_time(job.finish_time),
        "reason": job.reason if destroyed else None,
        "keepalive-host": None if destroyed else job.keepalive_host,
        "keep-alive-time": None if destroyed else iso_time(job.keepalive_time),
    }
    doc.update({k: v for k, v in optional.items() if v is not None})
    doc.update(
        {
            "keepalive-ref": ref + "keepalive",
            "machine-ref": ref + "machine",
            "power-ref": ref + "machine/power",
            "chip-ref": ref + "chip",
        }
    )
    if proxy_base is not None and job.state in (JobState.power, JobState.ready):
        doc["proxy-ref"] = f"{proxy_base}{job.job_id}"
    if job.original is not None:
        doc["original-request"] = job.original
    return doc


def sub_machine(job: Job, base: str) -> dict[str, Any]:
    """A ``SubMachineResponse`` of an allocated job."""
    assert job.allocation is not None and job.machine is not None
    machine = job.machine
    width, height, depth = _triads(job)
    return {
        "width": width,
        "height": height,
        "depth": depth,
        "machine-name": machine.name,
        "connections": [[list(chip), ip] for chip, ip in job.connections()],
        "boards": [list(b) for b in job.allocation.boards],
        "power": f"{base}jobs/{job.job_id}/machine/power",
        "machine-ref": f"{base}machines/{machine.name}",
    }


def _board_coords(machine: Machine, board: Board, *, admin: bool) -> dict[str, Any]:
    location = machine.location(board)
    cabinet, frame, number = location if location is not None else (None, None, None)
    coords: dict[str, Any] = {
        "x": board[0],
        "y": board[1],
        "z": board[2],
        "cabinet": cabinet,
        "frame": frame,
        "board": number,
    }
    if admin:
        coords["address"] = machine.ip(board)
    return coords


def _down_links(machine: Machine, *, admin: bool) -> list[list[dict[str, Any]]]:
    from spalloc.geometry import neighbour

    links = []
    for x, y, z, link in sorted(machine.dead_links):
        direction = Link(link)
        other, _, _ = neighbour((x, y, z), direction, machine.width, machine.height)
        links.append(
            [
                {
                    "board": _board_coords(machine, (x, y, z), admin=admin),
                    "direction": _DIRECTION[direction],
                },
                {
                    "board": _board_coords(machine, other, admin=admin),
                    "direction": _DIRECTION[direction.opposite],
                },
            ]
        )
    return links


def machine_summary(machine: Machine, base: str, *, admin: bool) -> dict[str, Any]:
    """One entry of the machines list (``dead-*`` keys)."""
    return {
        "name": machine.name,
        "tags": sorted(machine.tags),
        "uri": f"{base}machines/{machine.name}",
        "width": machine.width,
        "height": machine.height,
        "dead-boards": [
            _board_coords(machine, b, admin=admin) for b in sorted(machine.dead_boards)
        ],
        "dead-links": _down_links(machine, admin=admin),
    }


def machine_detail(machine: Machine, base: str, *, admin: bool) -> dict[str, Any]:
    """A ``MachineResponse`` (``down-*`` keys and look-up links)."""
    ref = f"{base}machines/{machine.name}/"
    return {
        "name": machine.name,
        "tags": sorted(machine.tags),
        "width": machine.width,
        "height": machine.height,
        "down-boards": [
            _board_coords(machine, b, admin=admin) for b in sorted(machine.dead_boards)
        ],
        "down-links": _down_links(machine, admin=admin),
        "lookup-by-physical-board": ref + "physical-board",
        "lookup-by-logical-board": ref + "logical-board",
        "lookup-by-chip": ref + "chip",
        "lookup-by-address": ref + "board-ip",
    }


def where_is(found: dict[str, Any], base: str) -> dict[str, Any]:
    """A ``WhereIsResponse`` from a v1-style ``where_is`` answer (nulls left out)."""
    doc = {
        "machine": found["machine"],
        "machine-ref": f"{base}machines/{found['machine']}",
        "chip": found["chip"],
        "board-chip": found["board_chip"],
        "logical-board-coordinates": found["logical"],
        "physical-board-coordinates": found["physical"],
        "job-id": found["job_id"],
        "job-ref": None if found["job_id"] is None else f"{base}jobs/{found['job_id']}",
        "job-chip": found["job_chip"],
    }
    return {k: v for k, v in doc.items() if v is not None}
