"""Answers of the location commands: ``where_is`` (all four forms, PROTOCOL.md §2.14 and
§5.8), ``get_board_position`` and ``get_board_at_position``; and the one look-up of a board by
its IP address (v2's ``board-ip`` and ``{"address": ...}`` boards)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spalloc.emulator._jobs import CommandError, Job, as_int
from spalloc.geometry import (
    Board,
    Chip,
    Machine,
    ethernet_chip,
    job_chip,
    job_origin,
    resolve_chip,
    resolve_logical,
    resolve_physical,
)

__all__ = ["board_at_position", "board_position", "board_with_ip", "where_is"]

_FORMS = (
    frozenset({"machine", "x", "y", "z"}),
    frozenset({"machine", "cabinet", "frame", "board"}),
    frozenset({"machine", "chip_x", "chip_y"}),
    frozenset({"job_id", "chip_x", "chip_y"}),
)

OwnerOf = Callable[[Machine, Board], "Job | None"]


def board_position(machine: Machine | None, x: Any, y: Any, z: Any) -> list[int] | None:
    """``[cabinet, frame, board]`` of a board; no wrapping, None if unknown or unlocated."""
    board = (as_int("x", x), as_int("y", y), as_int("z", z))
    location = None if machine is None else machine.location(board)
    return None if location is None else list(location)


def board_at_position(
    machine: Machine | None, cabinet: Any, frame: Any, board: Any
) -> list[int] | None:
    """``[x, y, z]`` of the board at a physical position, or None."""
    location = (as_int("cabinet", cabinet), as_int("frame", frame), as_int("board", board))
    found = None if machine is None else machine.board_at(location)
    return None if found is None else list(found)


def where_is(
    kwargs: dict[str, Any],
    machine_named: Callable[[Any], Machine | None],
    job_with_id: Callable[[Any], Job | None],
    owner_of: OwnerOf,
) -> dict[str, Any] | None:
    """Resolve one of the four exact keyword sets to a location reply, or None.

    Raises:
        CommandError: another keyword set, or coordinates that are not whole numbers.
    """
    keys = frozenset(kwargs)
    if keys not in _FORMS:
        raise CommandError("Invalid arguments: " + ", ".join(kwargs))
    if "job_id" in keys:
        return _job_form(kwargs, job_with_id, owner_of)
    # Check every coordinate first, so that bad input is an error even on unknown machines.
    if "x" in keys:
        a, b, c = (as_int(k, kwargs[k]) for k in ("x", "y", "z"))
    elif "cabinet" in keys:
        a, b, c = (as_int(k, kwargs[k]) for k in ("cabinet", "frame", "board"))
    else:
        a, b = (as_int(k, kwargs[k]) for k in ("chip_x", "chip_y"))
    machine = machine_named(kwargs["machine"])
    if machine is None:
        return None
    if "x" in keys:
        found = resolve_logical(machine, a, b, c)
    elif "cabinet" in keys:
        found = resolve_physical(machine, a, b, c)
    else:
        found = resolve_chip(machine, a, b)
    return None if found is None else _reply(machine, *found, owner_of)


def _job_form(
    kwargs: dict[str, Any], job_with_id: Callable[[Any], Job | None], owner_of: OwnerOf
) -> dict[str, Any] | None:
    chip_x, chip_y = as_int("chip_x", kwargs["chip_x"]), as_int("chip_y", kwargs["chip_y"])
    job = job_with_id(kwargs["job_id"])
    if job is None or job.allocation is None or job.machine is None:
        return None
    machine = job.machine
    origin_x, origin_y = ethernet_chip(job_origin(list(job.allocation.boards)))
    found = resolve_chip(machine, origin_x + chip_x, origin_y + chip_y)
    if found is None or owner_of(machine, found[0]) is not job:
        return None
    return _reply(machine, *found, owner_of)


def _reply(
    machine: Machine, board: Board, chip: Chip, board_chip: Chip, owner_of: OwnerOf
) -> dict[str, Any] | None:
    location = machine.location(board)
    if location is None:
        return None
    reply: dict[str, Any] = {
        "machine": machine.name,
        "logical": list(board),
        "physical": list(location),
        "chip": list(chip),
        "board_chip": list(board_chip),
        "job_id": None,
        "job_chip": None,
    }
    owner = owner_of(machine, board)
    if owner is not None and owner.allocation is not None:
        allocation = owner.allocation
        reply["job_id"] = owner.job_id
        reply["job_chip"] = list(
            job_chip(
                board, board_chip, list(allocation.boards), allocation.width, allocation.height
            )
        )
    return reply


def board_with_ip(machine: Machine, address: str) -> Board | None:
    """The board of *machine* whose Ethernet chip has IP *address*, or None."""
    return next((board for board, ip in machine.board_ips.items() if ip == address), None)
