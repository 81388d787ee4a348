"""What the board map shows, computed from server records: hexagon layout, job keys and
colours, the trait records, where-is answers, and the static HTML picture (nbconvert, GitHub,
an output reopened without a kernel). Pure functions: no server, no threads, no widget.
"""

from __future__ import annotations

import colorsys
import html
import itertools
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from spalloc.geometry import Board, job_connections
from spalloc.ui.render import board_cell, job_key

if TYPE_CHECKING:
    from spalloc.models import MachineDescription, WhereIs

__all__ = [
    "FOLD_MIN_BOARDS",
    "JOB_COLOURS",
    "as_board",
    "board_records",
    "fold_column",
    "hex_cell",
    "job_colour",
    "job_ips",
    "job_key",
    "job_records",
    "machine_records",
    "requested_machine",
    "static_html",
    "where_is_answer",
]

#: Fill colours for jobs, picked by ``job_id % 15`` as ``spalloc-machine`` picks its colours;
#: light enough for black labels, none of them the grey of free or dead boards.
JOB_COLOURS = (
    "#8dd3c7",
    "#ffffb3",
    "#bebada",
    "#fb8072",
    "#80b1d3",
    "#fdb462",
    "#b3de69",
    "#fccde5",
    "#f4a582",
    "#bc80bd",
    "#ccebc5",
    "#ffed6f",
    "#a6cee3",
    "#e5c494",
    "#66c2a5",
)


def hex_cell(board: Board) -> tuple[int, int]:
    """The layout cell ``(column, row)`` of a board's hexagon.

    This is the triad layout of ``spalloc-machine``'s text map (the same cells as
    ``spalloc.ui.render``): flat-topped hexagons, column ``2x - y + [z == 1]``, rows
    counted in half hexagons downwards as SVG does, so ``-(3y + z)`` (north is up).
    The board across link ``l`` (when no seam is crossed) sits at the cell offset
    ``[(1, 1), (1, -1), (0, -2), (-1, -1), (-1, 1), (0, 2)][l]``.
    """
    column, row = board_cell(*board)
    return column, -row


def job_colour(index: int) -> str:
    """The fill colour of the ``index``-th job on a map (keys A, B, ... in the same order).

    Colours go by place on the map, not by job id, so the jobs on screen never share one:
    the palette first, then hues a golden angle apart (light enough for black letters).
    """
    if index < len(JOB_COLOURS):
        return JOB_COLOURS[index]
    hue = (index - len(JOB_COLOURS)) * 137.508 + 20.0
    red, green, blue = colorsys.hls_to_rgb((hue % 360.0) / 360.0, 0.74, 0.62)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


#: Machines with at least this many boards are drawn folded into a rectangle (maphex.js).
FOLD_MIN_BOARDS = 100


def fold_column(col: int, width: int, fold: bool) -> int:
    """A layout column folded modulo ``2 * width`` (see ``foldColumn`` in maphex.js)."""
    return col % (2 * width) if fold and width else col


def as_board(value: Any) -> Board:
    """A board ``(x, y, z)`` from any sequence of three integers (e.g. JSON from the page)."""
    x, y, z = (int(v) for v in value)
    return (x, y, z)


def where_is_answer(query: str, reply: WhereIs | None, *, chip_form: bool) -> dict[str, Any]:
    """The ``answer`` trait for a ``where_is`` reply (``None`` means nothing there)."""
    if reply is None:
        return {"query": query, "error": "No boards at the specified location"}
    answer: dict[str, Any] = {
        "query": query,
        "machine": reply.machine,
        "logical": list(reply.logical),
        "physical": list(reply.physical),
        "chip": list(reply.chip),
        "job_id": reply.job_id,
        "job_chip": None if reply.job_chip is None else list(reply.job_chip),
    }
    if chip_form:
        # As spalloc-where-is: "Coordinates within board" only when a chip was asked for.
        answer["board_chip"] = list(reply.board_chip)
    return answer


# --- static rendering (nbconvert, GitHub, a stale output reopened) --------------------------

_R = 10.0  # hexagon circumradius, as in maphex.js
_FREE, _DEAD, _LINE, _ALERT = "#eef0f2", "#9a9a9a", "#999999", "#d32f2f"


def _centre(col: int, row: int) -> tuple[float, float]:
    return 1.5 * _R * col, math.sqrt(3) / 2 * _R * row


def _hexagon(cx: float, cy: float, radius: float) -> str:
    return " ".join(
        f"{cx + radius * math.cos(math.pi / 3 * k):.1f},"
        f"{cy - radius * math.sin(math.pi / 3 * k):.1f}"
        for k in range(6)
    )


def machine_records(
    entry: MachineDescription, jobs: Iterable[Any], owner: str | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Board and job records of one machine, as the map's ``boards`` and ``jobs`` traits.

    Board locations and IPs are left out (``None``): they need more than the two lists.
    """
    return board_records(entry, {}, {}), job_records(entry.name, jobs, owner)


def job_records(
    machine: str, jobs: Iterable[Any], owner: str | None = None
) -> list[dict[str, Any]]:
    """The map's ``jobs`` trait: the jobs holding boards of ``machine``, keyed A, B, ..."""
    on_machine = [j for j in jobs if j.allocated_machine_name == machine and j.boards]
    return [
        {
            "id": j.job_id,
            "key": job_key(i),
            "owner": j.owner or "",
            "boards": [list(b) for b in sorted(j.boards or ())],
            "colour": job_colour(i),
            "mine": bool(owner) and j.owner == owner,
        }
        for i, j in enumerate(on_machine)
    ]


def static_html(
    machine: str,
    boards: list[dict[str, Any]],
    jobs: list[dict[str, Any]],
    dead_links: list[list[int]],
    *,
    note: str | None = None,
) -> str:
    """The map as self-contained HTML (inline SVG and a legend) for renderers without widgets.

    The same hexagons, colours and keys as the live map draws; ``note`` says what the
    picture is (e.g. that it no longer follows the server).
    """
    owner = {tuple(b): j for j in jobs for b in j["boards"]}
    fold = len(boards) >= FOLD_MIN_BOARDS
    width = 1 + max((b["x"] for b in boards), default=0)
    where = {
        (b["x"], b["y"], b["z"]): _centre(fold_column(b["col"], width, fold), b["row"])
        for b in boards
    }
    shapes: list[str] = []
    for b in boards:
        cx, cy = where[(b["x"], b["y"], b["z"])]
        job = None if b["dead"] else owner.get((b["x"], b["y"], b["z"]))
        fill = _DEAD if b["dead"] else job["colour"] if job else _FREE
        stroke = ' stroke="#222" stroke-width="2"' if job and job.get("mine") else ""
        tip = html.escape(
            f"board ({b['x']}, {b['y']}, {b['z']})"
            + (f": job {job['id']} ({job['owner']})" if job else "")
        )
        shapes.append(
            f'<polygon points="{_hexagon(cx, cy, _R * 0.97)}" fill="{fill}"{stroke}>'
            f"<title>{tip}</title></polygon>"
        )
        if job:
            shapes.append(
                f'<text x="{cx:.1f}" y="{cy + 2:.1f}" font-size="6" stroke="none" '
                f'fill="#000" text-anchor="middle">{html.escape(job["key"])}</text>'
            )
    for x, y, z, link in dead_links:
        if (x, y, z) not in where:
            continue
        cx, cy = where[(x, y, z)]
        (x1, y1), (x2, y2) = (
            (cx + 0.8 * _R * math.cos(math.pi / 3 * k), cy - 0.8 * _R * math.sin(math.pi / 3 * k))
            for k in ((link + 5) % 6, link)
        )
        shapes.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke="{_ALERT}" stroke-width="2"/>'
        )
    xs = [c[0] for c in where.values()] or [0.0]
    ys = [c[1] for c in where.values()] or [0.0]
    pad = 1.3 * _R
    w, h = max(xs) - min(xs) + 2 * pad, max(ys) - min(ys) + 2 * pad
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{min(xs) - pad:.1f} '
        f'{min(ys) - pad:.1f} {w:.1f} {h:.1f}" '
        f'style="display:block;width:100%;max-width:{w * 4:.0f}px" '
        f'stroke="{_LINE}" stroke-width="0.6">{"".join(shapes)}</svg>'
    )
    items = "".join(
        f'<li><span style="background:{j["colour"]};padding:0 0.4em">{html.escape(j["key"])}'
        f"</span> job {j['id']} · {html.escape(j['owner'])}"
        f"{' (you)' if j.get('mine') else ''} · {len(j['boards'])} "
        f"board{'' if len(j['boards']) == 1 else 's'}</li>"
        for j in jobs
    )
    caption = f' <span style="color:#555">{html.escape(note)}</span>' if note else ""
    return (
        f'<div class="spalloc-boardmap-static"><div><b>{html.escape(machine)}</b>{caption}'
        f"</div>{svg}"
        f'<ul style="list-style:none;padding:0">{items}</ul></div>'
    )


def requested_machine(job: Any, machines: Any) -> str | None:
    """The machine a queued job waits for: the one it named, else the first its tags fit."""
    if job is None:
        return None
    kwargs = getattr(job, "kwargs", None) or {}
    named = kwargs.get("machine")
    if isinstance(named, str):
        return named
    tags = set(kwargs.get("tags") or ("default",))
    return next((m.name for m in machines if tags <= set(m.tags)), None)


def _pairs(connections: Any) -> Iterable[tuple[tuple[int, int], str]]:
    if isinstance(connections, Mapping):
        return ((tuple(k), v) for k, v in connections.items())
    return ((tuple(k), v) for k, v in connections)


def _boards(boards: Iterable[Any]) -> list[Board]:
    return [as_board(b) for b in boards]


def board_records(
    entry: MachineDescription, locations: Mapping[Board, Any], ips: Mapping[Board, str]
) -> list[dict[str, Any]]:
    """The map's ``boards`` trait: every board of a machine with its layout cell, location
    (``[c, f, b]`` or ``None``) and IP (or ``None``), dead ones marked."""
    dead = frozenset(entry.dead_boards)
    records = []
    for x, y, z in itertools.product(range(entry.width), range(entry.height), range(3)):
        board = (x, y, z)
        col, row = hex_cell(board)
        where = locations.get(board)
        records.append(
            {
                "x": x,
                "y": y,
                "z": z,
                "col": col,
                "row": row,
                "loc": None if where is None else list(where),
                "ip": ips.get(board),
                "dead": board in dead,
            }
        )
    return records


def job_ips(job: Any) -> dict[Board, str]:
    """The IPs of a job's boards, from its own connections (no extra server call)."""
    snap = getattr(job, "snapshot", None)
    boards = getattr(snap, "boards", None) or getattr(job, "boards", None)
    connections = getattr(snap, "connections", None) or getattr(job, "connections", None)
    if not boards or not connections:
        return {}
    by_chip = {tuple(chip): str(ip) for chip, ip in _pairs(connections)}
    return {
        board: by_chip[chip] for chip, board in job_connections(_boards(boards)) if chip in by_chip
    }
