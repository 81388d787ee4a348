"""Pure functions turning parsed server data into styled lines of text.

Everything the command-line tools print is built here, without I/O, so the notebook can show
the same rows and tests can compare exact text. A rendered document is a list of lines; a
line is a tuple of ``(text, style)`` spans, where ``style`` is a rich style string (``""`` =
plain). :func:`plain` joins the text and drops the styles; :mod:`spalloc.cli._output` turns
the spans into colour on a terminal.

The layouts match the official spalloc tools (1!6.0.0) so that scripts parsing their output
keep working: tables with two-space gaps and right-aligned numbers, definition lists with
right-aligned keys, and the hexagonal board map.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from spalloc._namedtuple import NamedTuple
from spalloc.models import (
    JobDescription,
    JobMachineInfo,
    JobStateInfo,
    MachineDescription,
    WhereIs,
)
from spalloc.states import JobState

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
    "machine_list",
    "plain",
    "ps_rows",
    "ps_table",
    "render_boards",
    "render_cells",
    "render_definitions",
    "render_table",
    "render_timestamp",
    "where_is_info",
]

Span = tuple[str, str]
Line = tuple[Span, ...]
Lines = list[Line]
#: A table cell: text (left-aligned), an int (right-aligned) or either with a style.
Cell = str | int | tuple[str | int, str]

HEADER = "bold underline"
DIM = "dim"
BRIGHT = "bold"

#: Per-job colours of the machine map, indexed by ``job_id % 15`` as the official tool does.
JOB_COLOURS = (
    "green",
    "blue",
    "magenta",
    "yellow",
    "cyan",
    "dim green",
    "dim blue",
    "dim magenta",
    "dim yellow",
    "dim cyan",
    "bold green",
    "bold blue",
    "bold magenta",
    "bold yellow",
    "bold cyan",
)


def plain(lines: Iterable[Line]) -> str:
    """The text of a document without styles, lines joined by newlines."""
    return "\n".join("".join(text for text, _ in line) for line in lines)


def _text_line(text: str, style: str = "") -> Line:
    return ((text, style),) if text else ()


def _rstrip(spans: list[Span]) -> Line:
    """Drop trailing whitespace from a line, however it is split into spans."""
    while spans:
        text, style = spans[-1]
        stripped = text.rstrip()
        if stripped:
            spans[-1] = (stripped, style)
            break
        spans.pop()
    return tuple(spans)


def render_timestamp(timestamp: float | None) -> str:
    """Local time as ``dd/mm/YYYY HH:MM:SS`` (empty when unknown)."""
    if timestamp is None:
        return ""
    return time.strftime("%d/%m/%Y %H:%M:%S", time.localtime(timestamp))


# --------------------------------------------------------------------------- generic layouts


def render_table(rows: Sequence[Sequence[Cell]], separator: str = "  ") -> Lines:
    """Align cells in columns: strings to the left, ints to the right; trailing space stripped."""
    parsed: list[list[tuple[str, str, bool]]] = []
    for row in rows:
        out = []
        for cell in row:
            value, style = cell if isinstance(cell, tuple) else (cell, "")
            right = isinstance(value, int) and not isinstance(value, bool)
            out.append((str(value), style, right))
        parsed.append(out)
    widths: dict[int, int] = {}
    for row_cells in parsed:
        for i, (text, _, _) in enumerate(row_cells):
            widths[i] = max(widths.get(i, 0), len(text))
    lines: Lines = []
    for row_cells in parsed:
        spans: list[Span] = []
        for i, (text, style, right) in enumerate(row_cells):
            if i:
                spans.append((separator, ""))
            pad = " " * (widths[i] - len(text))
            if right:
                spans += [(pad, ""), (text, style)]
            else:
                spans += [(text, style), (pad, "")]
        lines.append(_rstrip([s for s in spans if s[0]]))
    return lines


#: A definition value: anything printable with ``str`` or an already-styled document.
Value = str | int | float | None | tuple[int, ...] | Lines


def render_definitions(items: Sequence[tuple[str, Value]], separator: str = ": ") -> Lines:
    """Right-align the keys; continuation lines of a value line up under its first line."""
    if not items:
        return []
    width = max(len(key) for key, _ in items)
    indent = " " * (width + len(separator))
    lines: Lines = []
    for key, value in items:
        if isinstance(value, list):
            body = value or [()]
        else:
            body = [_text_line(text) for text in str(value).split("\n")]
        first = ((key.rjust(width) + separator, ""),)
        lines.append(_rstrip(list(first + body[0])))
        lines.extend(_rstrip([(indent, ""), *rest]) for rest in body[1:])
    return lines


def render_cells(cells: Sequence[Line], width: int = 80, spacing: int = 2) -> Lines:
    """Flow short styled cells into columns of equal width, wrapping at *width*."""
    if not cells:
        return []
    lengths = [sum(len(text) for text, _ in cell) for cell in cells]
    column = max(lengths) + spacing
    lines: list[list[Span]] = [[]]
    used = 0
    for cell, length in zip(cells, lengths, strict=True):
        if used + length > width:
            lines.append([])
            used = 0
        lines[-1] += [*cell, (" " * (column - length), "")]
        used += column
    return [_rstrip(line) for line in lines]


# --------------------------------------------------------------------------- the board map

#: Edge characters of a board: 0 = bottom, 1 = lower-left, 2 = upper-left.
EDGES = ("___", "\\", "/")
_BLANK_EDGES = ("   ", " ", " ")
_BLANK_LABEL = "   "
# Neighbour offsets in map cells for the links east, north-east, north, west, south-west,
# south, and which (cell offset, edge number) draws the side facing that link.
_LINK_DELTA = ((1, -1), (1, 1), (0, 2), (-1, 1), (-1, -1), (0, -2))
_LINK_EDGE = ((1, -1, 2), (1, 0, 1), (0, 1, 0), (0, 0, 2), (0, -1, 1), (0, -1, 0))


class BoardGroup(NamedTuple):
    """Boards drawn with one label and edge style (later groups draw over earlier ones)."""

    boards: Iterable[tuple[int, int, int]]
    label: Span
    inner: str = ""
    outer: str = ""


def board_cell(x: int, y: int, z: int) -> tuple[int, int]:
    """The map cell ``(column, row)`` of board (x, y, z), rows counted upwards.

    Each triad is two map columns wide and three rows high; board 1 sits one column right.
    The notebook's board map uses the same cells (rows flipped for SVG).
    """
    return 2 * x - y + (1 if z == 1 else 0), 3 * y + z


def render_boards(
    groups: Sequence[BoardGroup],
    dead_links: Iterable[tuple[int, int, int, int]] = (),
    dead_style: str = "red",
) -> Lines:
    """Draw boards as hexagons, three map cells per triad, highest row first."""
    labels: dict[tuple[int, int], Span] = {}
    edges: dict[tuple[int, int, int], Span] = {}
    for group in groups:
        cells = {board_cell(*board) for board in group.boards}
        for x, y in cells:
            labels[(x, y)] = group.label
            for (dx, dy), (ex, ey, edge) in zip(_LINK_DELTA, _LINK_EDGE, strict=True):
                style = group.inner if (x + dx, y + dy) in cells else group.outer
                edges[(x + ex, y + ey, edge)] = (EDGES[edge], style)
    for bx, by, bz, link in dead_links:
        if not 0 <= link < 6:
            continue
        x, y = board_cell(bx, by, bz)
        ex, ey, edge = _LINK_EDGE[link]
        edges[(x + ex, y + ey, edge)] = (EDGES[edge], dead_style)
    points = list(labels) + [(x, y) for x, y, _ in edges]
    if not points:
        return []
    x_min = min(x for x, _ in points)
    x_max = max(x for x, _ in points)
    y_min = min(y for _, y in points)
    y_max = max(y for _, y in points)
    lines: Lines = []
    for y in range(y_max, y_min - 1, -1):
        spans: list[Span] = []
        for x in range(x_min, x_max + 1):
            if (x % 2) == (y % 2):
                spans.append(edges.get((x, y, 2), (_BLANK_EDGES[2], "")))
                spans.append(labels.get((x, y), (_BLANK_LABEL, "")))
            else:
                spans.append(edges.get((x, y, 1), (_BLANK_EDGES[1], "")))
                spans.append(edges.get((x, y, 0), (_BLANK_EDGES[0], "")))
        line = _rstrip(spans)
        if line:
            lines.append(line)
    return lines


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


def job_key(index: int) -> str:
    """Spreadsheet-style key of the *index*-th job: A … Z, AA, AB, …"""
    letter = chr(ord("A") + index % 26)
    return letter if index < 26 else job_key(index // 26 - 1) + letter


def job_colour(job_id: int) -> str:
    """The style a job is drawn in on the machine map."""
    return JOB_COLOURS[job_id % len(JOB_COLOURS)]


def _jobs_on(machine: str, jobs: Iterable[JobDescription]) -> list[JobDescription]:
    return [job for job in jobs if job.allocated_machine_name == machine]


def _in_use(jobs: Iterable[JobDescription]) -> int:
    return sum(len(job.boards or ()) for job in jobs)


def machine_list(machines: Iterable[MachineDescription], jobs: Sequence[JobDescription]) -> Lines:
    """The ``spalloc-machine`` table of every machine and its load."""
    rows: list[list[Cell]] = [
        [(name, HEADER) for name in ("Name", "Num boards", "In-use", "Jobs", "Tags")]
    ]
    for machine in machines:
        on_it = _jobs_on(machine.name, jobs)
        rows.append(
            [machine.name, machine.num_boards, _in_use(on_it), len(on_it), ", ".join(machine.tags)]
        )
    return render_table(rows)


def machine_detail(
    machine: MachineDescription,
    jobs: Sequence[JobDescription],
    *,
    detailed: bool = False,
    width: int = 80,
) -> Lines:
    """One machine: summary, hexagonal map of its boards and jobs, then a key to the jobs."""
    on_it = _jobs_on(machine.name, jobs)
    lines = render_definitions(
        [
            ("Name", machine.name),
            ("Tags", ", ".join(machine.tags)),
            ("In-use", f"{_in_use(on_it)} of {machine.num_boards}"),
            ("Jobs", len(on_it)),
        ]
    )
    groups = [BoardGroup(machine.boards(), (" . ", DIM), DIM, DIM)]
    keys = [job_key(i) for i in range(len(on_it))]
    for key, job in zip(keys, on_it, strict=True):
        colour = job_colour(job.job_id)
        groups.append(BoardGroup(job.boards or (), (key.center(3), colour), colour, BRIGHT))
    lines.append(())
    lines += render_boards(groups, sorted(machine.dead_links))
    lines.append(())
    if detailed:
        rows: list[list[Cell]] = [
            [(name, HEADER) for name in ("Key", "Job ID", "Num boards", "Owner (Host)")]
        ]
        for key, job in zip(keys, on_it, strict=True):
            rows.append(
                [(key, job_colour(job.job_id)), job.job_id, len(job.boards or ()), _owner_host(job)]
            )
        lines += render_table(rows)
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


def where_is_info(location: WhereIs, *, show_board_chip: bool) -> Lines:
    """The ``spalloc-where-is`` block."""
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
    return render_definitions(items)


def machine_by_name(machines: Iterable[MachineDescription], name: str) -> MachineDescription | None:
    """The machine called *name*, or ``None``."""
    return next((m for m in machines if m.name == name), None)
