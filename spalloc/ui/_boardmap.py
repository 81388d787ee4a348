"""The hexagonal board map, as the official ``spalloc-machine`` draws it.

Boards are drawn as hexagons, three map cells per triad (:func:`board_cell` gives a board's
cell; the notebook's SVG map uses the same cells), in groups with their own label and edge
styles; jobs get a key letter and a colour of their own. Re-exported by
:mod:`spalloc.ui.render`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from spalloc._namedtuple import NamedTuple
from spalloc.ui._layout import Lines, Span, rstrip

__all__ = [
    "EDGES",
    "JOB_COLOURS",
    "BoardGroup",
    "board_cell",
    "job_colour",
    "job_key",
    "render_boards",
]

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
        line = rstrip(spans)
        if line:
            lines.append(line)
    return lines


def job_key(index: int) -> str:
    """Spreadsheet-style key of the *index*-th job: A … Z, AA, AB, …"""
    letter = chr(ord("A") + index % 26)
    return letter if index < 26 else job_key(index // 26 - 1) + letter


def job_colour(job_id: int) -> str:
    """The style a job is drawn in on the machine map."""
    return JOB_COLOURS[job_id % len(JOB_COLOURS)]
