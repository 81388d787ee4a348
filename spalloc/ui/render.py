"""Pure functions turning parsed server data into styled lines of text.

Everything the command-line tools print is built here, without I/O, so the notebook can show
the same rows and tests can compare exact text. A rendered document is a list of lines; a
line is a tuple of ``(text, style)`` spans, where ``style`` is a rich style string (``""`` =
plain). :func:`plain` joins the text and drops the styles; :mod:`spalloc.cli._output` turns
the spans into colour on a terminal.

The layouts match the official spalloc tools (1!6.0.0) so that scripts parsing their output
keep working: tables with two-space gaps and right-aligned numbers, definition lists with
right-aligned keys, and the hexagonal board map. This module holds each tool's document
(``ps``, ``machine``, ``job``, ``spalloc``, ``where-is``); the generic layouts live in
:mod:`spalloc.ui._layout` and the board map in :mod:`spalloc.ui._boardmap`, and their public
names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from spalloc.models import (
    JobDescription,
    JobMachineInfo,
    JobStateInfo,
    MachineDescription,
    WhereIs,
)
from spalloc.states import JobState
from spalloc.ui._boardmap import BoardGroup, board_cell, job_colour, job_key, render_boards
from spalloc.ui._layout import (
    BRIGHT,
    DIM,
    HEADER,
    Cell,
    Line,
    Lines,
    Span,
    Value,
    plain,
    render_cells,
    render_definitions,
    render_table,
    render_timestamp,
)

__all__ = [
    "BoardGroup",
    "Line",
    "Lines",
    "Span",
    "alloc_info",
    "board_cell",
    "ethernet_csv",
    "job_colour",
    "job_info",
    "job_key",
    "machine_by_name",
    "machine_detail",
    "machine_items",
    "machine_job_rows",
    "machine_list",
    "machine_rows",
    "plain",
    "ps_rows",
    "ps_table",
    "render_boards",
    "render_cells",
    "render_definitions",
    "render_table",
    "render_timestamp",
    "where_is_info",
    "where_is_items",
]

# --------------------------------------------------------------------------- spalloc-ps

_STATE_CELLS: dict[int, tuple[str, str]] = {
    JobState.queued: ("queue", "blue"),
    JobState.power: ("power", "yellow"),
    JobState.ready: ("ready", "green"),
}


def _owner_host(job: JobDescription) -> str:
    owner = job.owner or ""
    return f"{owner} ({job.keepalivehost})" if job.keepalivehost else owner


def _state_cell(job: JobDescription) -> Cell:
    cell = _STATE_CELLS.get(job.state)
    if cell is not None:
        return cell
    # A state this client does not know shows as the number sent, not as unknown's 0.
    sent = job.get("state")
    if job.state is JobState.unknown and isinstance(sent, int) and not isinstance(sent, bool):
        return str(sent)
    return str(int(job.state))


def ps_rows(
    jobs: Iterable[JobDescription], *, machine: str | None = None, owner: str | None = None
) -> list[list[Cell]]:
    """The ``spalloc-ps`` table as cells, header first, filtered by machine and owner."""
    rows: list[list[Cell]] = [
        [
            (name, HEADER)
            for name in (
                "ID",
                "State",
                "Power",
                "Boards",
                "Machine",
                "Created at",
                "Keepalive",
                "Owner (Host)",
            )
        ]
    ]
    for job in jobs:
        if machine is not None and job.allocated_machine_name != machine:
            continue
        if owner is not None and job.owner != owner:
            continue
        state = _state_cell(job)
        power: Cell = ""
        if job.power is not None:
            power = ("on", "green") if job.power else ("off", "red")
            if job.state == JobState.power:
                power = (power[0], "yellow")
        rows.append(
            [
                job.job_id,
                state,
                power,
                "" if job.boards is None else len(job.boards),
                job.allocated_machine_name or "",
                render_timestamp(job.start_time),
                str(job.keepalive),
                _owner_host(job),
            ]
        )
    return rows


def ps_table(
    jobs: Iterable[JobDescription], *, machine: str | None = None, owner: str | None = None
) -> Lines:
    """The ``spalloc-ps`` output."""
    return render_table(ps_rows(jobs, machine=machine, owner=owner))


# --------------------------------------------------------------------------- spalloc-machine


def _jobs_on(machine: str, jobs: Iterable[JobDescription]) -> list[JobDescription]:
    return [job for job in jobs if job.allocated_machine_name == machine]


def _in_use(jobs: Iterable[JobDescription]) -> int:
    return sum(len(job.boards or ()) for job in jobs)


def machine_rows(
    machines: Iterable[MachineDescription], jobs: Sequence[JobDescription]
) -> list[list[Cell]]:
    """The ``spalloc-machine`` table of every machine and its load as cells, header first."""
    rows: list[list[Cell]] = [
        [(name, HEADER) for name in ("Name", "Num boards", "In-use", "Jobs", "Tags")]
    ]
    for machine in machines:
        on_it = _jobs_on(machine.name, jobs)
        rows.append(
            [machine.name, machine.num_boards, _in_use(on_it), len(on_it), ", ".join(machine.tags)]
        )
    return rows


def machine_list(machines: Iterable[MachineDescription], jobs: Sequence[JobDescription]) -> Lines:
    """The ``spalloc-machine`` table of every machine and its load."""
    return render_table(machine_rows(machines, jobs))


def machine_items(
    machine: MachineDescription, jobs: Sequence[JobDescription]
) -> list[tuple[str, Value]]:
    """The summary above one machine's map: name, tags, boards in use, number of jobs."""
    on_it = _jobs_on(machine.name, jobs)
    return [
        ("Name", machine.name),
        ("Tags", ", ".join(machine.tags)),
        ("In-use", f"{_in_use(on_it)} of {machine.num_boards}"),
        ("Jobs", len(on_it)),
    ]


def machine_job_rows(
    machine: MachineDescription, jobs: Sequence[JobDescription]
) -> list[list[Cell]]:
    """The key to the jobs on one machine's map as cells, header first (keys in job colours)."""
    rows: list[list[Cell]] = [
        [(name, HEADER) for name in ("Key", "Job ID", "Num boards", "Owner (Host)")]
    ]
    for i, job in enumerate(_jobs_on(machine.name, jobs)):
        rows.append(
            [
                (job_key(i), job_colour(job.job_id)),
                job.job_id,
                len(job.boards or ()),
                _owner_host(job),
            ]
        )
    return rows


def machine_detail(
    machine: MachineDescription,
    jobs: Sequence[JobDescription],
    *,
    detailed: bool = False,
    width: int = 80,
) -> Lines:
    """One machine: summary, hexagonal map of its boards and jobs, then a key to the jobs."""
    on_it = _jobs_on(machine.name, jobs)
    lines = render_definitions(machine_items(machine, jobs))
    groups = [BoardGroup(machine.boards(), (" . ", DIM), DIM, DIM)]
    keys = [job_key(i) for i in range(len(on_it))]
    for key, job in zip(keys, on_it, strict=True):
        colour = job_colour(job.job_id)
        groups.append(BoardGroup(job.boards or (), (key.center(3), colour), colour, BRIGHT))
    lines.append(())
    lines += render_boards(groups, sorted(machine.dead_links))
    lines.append(())
    if detailed:
        lines += render_table(machine_job_rows(machine, jobs))
    else:
        cells: list[Line] = [
            ((key, job_colour(job.job_id)), (f":{job.job_id}", ""))
            for key, job in zip(keys, on_it, strict=True)
        ]
        lines += render_cells(cells, width) or [()]
    return lines


# --------------------------------------------------------------------------- spalloc-job


def _request(job: JobDescription) -> str:
    # Positional arguments as sent, then the keywords sorted by name, one per line.
    parts = [", ".join(str(arg) for arg in job.args)] if job.args else []
    parts += [f"{key}={value!r}" for key, value in sorted(job.kwargs.items())]
    return "Job(" + ",\n    ".join(parts) + ")"


def job_info(
    job_id: int,
    job: JobDescription | None,
    state: JobStateInfo,
    machine_info: JobMachineInfo | None,
) -> Lines:
    """The ``spalloc-job`` information block.

    ``job`` is the job's ``list_jobs`` entry, ``None`` when the job is not live; then only
    its state (and the reason it was destroyed) is shown.
    """
    items: list[tuple[str, Value]] = [("Job ID", job_id)]
    if job is None:
        items.append(("State", state.state.name))
        if state.reason is not None:
            items.append(("Reason", state.reason))
        return render_definitions(items)
    items += [("Owner", job.owner or ""), ("State", job.state.name)]
    if job.start_time is not None:
        items.append(("Start time", render_timestamp(job.start_time)))
    items.append(("Keepalive", job.keepalive))
    if job.keepalivehost:
        items.append(("Owner host", job.keepalivehost))
    items.append(("Request", _request(job)))
    if job.boards is not None:
        items.append(
            ("Allocation", render_boards([BoardGroup(job.boards, (" . ", DIM), DIM, BRIGHT)]))
        )
    info = machine_info
    if info is not None and info.connections:
        items.append(("Hostname", min(info.connections.items())[1]))
    if info is not None and info.width is not None:
        items.append(("Width", info.width))
    if info is not None and info.height is not None:
        items.append(("Height", info.height))
    if job.boards is not None:
        items.append(("Num boards", len(job.boards)))
    if job.power is not None:
        items.append(("Board power", "on" if job.power else "off"))
    if job.allocated_machine_name is not None:
        items.append(("Running on", job.allocated_machine_name))
    return render_definitions(items)


def ethernet_csv(connections: Iterable[tuple[tuple[int, int], str]]) -> str:
    """The Ethernet-chip CSV: header ``x,y,hostname``, rows sorted by chip, LF endings."""
    rows = ["x,y,hostname"]
    rows += [f"{x},{y},{host}" for (x, y), host in sorted(connections)]
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------- spalloc


def alloc_info(info: JobMachineInfo, csv_path: str | None) -> Lines:
    """The block ``spalloc`` prints once a job is ready."""
    connections = sorted((info.connections or {}).items())
    items: list[tuple[str, Value]] = []
    if connections:
        items.append(("Hostname", [((connections[0][1], BRIGHT),)]))
    items += [("Width", info.width), ("Height", info.height)]
    if len(connections) > 1:
        # "Num boards" counts Ethernet chips, as the official tool does.
        items.append(("Num boards", len(connections)))
        if csv_path is not None:
            items.append(("All hostnames", csv_path))
    items.append(("Running on", info.machine_name))
    return render_definitions(items)


# --------------------------------------------------------------------------- spalloc-where-is


def where_is_items(location: WhereIs, *, show_board_chip: bool) -> list[tuple[str, Value]]:
    """The ``spalloc-where-is`` facts as (key, value) pairs, in the order shown."""
    cabinet, frame, board = location.physical
    items: list[tuple[str, Value]] = [
        ("Machine", location.machine),
        ("Physical location", f"Cabinet {cabinet}, Frame {frame}, Board {board}"),
        ("Board coordinate", location.logical),
        ("Machine chip coordinates", location.chip),
    ]
    if show_board_chip:
        items.append(("Coordinates within board", location.board_chip))
    items.append(("Job using board", location.job_id))
    if location.job_id is not None and location.job_chip is not None:
        items.append(("Coordinates within job", location.job_chip))
    return items


def where_is_info(location: WhereIs, *, show_board_chip: bool) -> Lines:
    """The ``spalloc-where-is`` block."""
    return render_definitions(where_is_items(location, show_board_chip=show_board_chip))


def machine_by_name(machines: Iterable[MachineDescription], name: str) -> MachineDescription | None:
    """The machine called *name*, or ``None``."""
    return next((m for m in machines if m.name == name), None)
