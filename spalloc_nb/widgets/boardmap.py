"""An interactive map of one spalloc machine: every board a hexagon (an anywidget).

The map follows the server live through its own connection and subscription
(``notify_machine``): nothing is polled, and nothing is sent to the browser while nothing
changes. Background threads only assign traits; the ES module beside this file draws them,
writes back what the user picks (``selected``, ``selected_chip``, ``chip_query``,
``highlight_job``) and sends one message per question, which the query thread answers
with the server's ``where_is`` into ``answer``.

Board IPs: the v1 protocol has no per-board IP query, and ``get_job_machine_info`` would
refresh other users' keepalives, so IPs are shown only where they are known without it:
from a :class:`spalloc.geometry.Machine` passed in (or an in-process emulator) and from the
connections of the job given to :meth:`BoardMap.for_job`.
"""

from __future__ import annotations

import colorsys
import contextlib
import html
import itertools
import math
import queue
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from spalloc.exceptions import ProtocolError, ProtocolTimeoutError, SpallocError
from spalloc.geometry import Board, Machine, ethernet_chip, job_connections
from spalloc.ui.render import board_cell, job_key

if TYPE_CHECKING:
    from spalloc.client import ProtocolClient
    from spalloc.models import MachineDescription, WhereIs

__all__ = [
    "FOLD_MIN_BOARDS", "JOB_COLOURS", "BoardMap", "fold_column", "hex_cell", "job_colour",
    "job_key", "job_records", "machine_records", "static_html",
]

_HERE = Path(__file__).resolve().parent

#: Fill colours for jobs, picked by ``job_id % 15`` as ``spalloc-machine`` picks its colours;
#: light enough for black labels, none of them the grey of free or dead boards.
JOB_COLOURS = (
    "#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5",
    "#f4a582", "#bc80bd", "#ccebc5", "#ffed6f", "#a6cee3", "#e5c494", "#66c2a5",
)

_STOP = object()


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


#: Machines with at least this many boards are drawn folded into a rectangle (boardmap.js).
FOLD_MIN_BOARDS = 100


def fold_column(col: int, width: int, fold: bool) -> int:
    """A layout column folded modulo ``2 * width`` (see ``foldColumn`` in boardmap.js)."""
    return col % (2 * width) if fold and width else col


def _board(value: Any) -> Board:
    x, y, z = (int(v) for v in value)
    return (x, y, z)


def _where_is_answer(query: str, reply: WhereIs | None, *, chip_form: bool) -> dict[str, Any]:
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

_R = 10.0  # hexagon circumradius, as in boardmap.js
_FREE, _DEAD, _LINE, _ALERT = "#eef0f2", "#9a9a9a", "#999999", "#d32f2f"


def _centre(col: int, row: int) -> tuple[float, float]:
    return 1.5 * _R * col, math.sqrt(3) / 2 * _R * row


def _hexagon(cx: float, cy: float, radius: float) -> str:
    return " ".join(f"{cx + radius * math.cos(math.pi / 3 * k):.1f},"
                    f"{cy - radius * math.sin(math.pi / 3 * k):.1f}" for k in range(6))


def machine_records(entry: MachineDescription, jobs: Iterable[Any], owner: str | None = None
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Board and job records of one machine, as the map's ``boards`` and ``jobs`` traits.

    Board locations and IPs are left out (``None``): they need more than the two lists.
    """
    dead = frozenset(entry.dead_boards)
    boards = []
    for x, y, z in itertools.product(range(entry.width), range(entry.height), range(3)):
        col, row = hex_cell((x, y, z))
        boards.append({"x": x, "y": y, "z": z, "col": col, "row": row, "loc": None, "ip": None,
                       "dead": (x, y, z) in dead})
    return boards, job_records(entry.name, jobs, owner)


def job_records(machine: str, jobs: Iterable[Any], owner: str | None = None
                ) -> list[dict[str, Any]]:
    """The map's ``jobs`` trait: the jobs holding boards of ``machine``, keyed A, B, ..."""
    on_machine = [j for j in jobs if j.allocated_machine_name == machine and j.boards]
    return [
        {"id": j.job_id, "key": job_key(i), "owner": j.owner or "",
         "boards": [list(b) for b in sorted(j.boards or ())],
         "colour": job_colour(i), "mine": bool(owner) and j.owner == owner}
        for i, j in enumerate(on_machine)
    ]


def static_html(machine: str, boards: list[dict[str, Any]], jobs: list[dict[str, Any]],
                dead_links: list[list[int]], *, note: str | None = None) -> str:
    """The map as self-contained HTML (inline SVG and a legend) for renderers without widgets.

    The same hexagons, colours and keys as the live map draws; ``note`` says what the
    picture is (e.g. that it no longer follows the server).
    """
    owner = {tuple(b): j for j in jobs for b in j["boards"]}
    fold = len(boards) >= FOLD_MIN_BOARDS
    width = 1 + max((b["x"] for b in boards), default=0)
    where = {(b["x"], b["y"], b["z"]): _centre(fold_column(b["col"], width, fold), b["row"])
             for b in boards}
    shapes: list[str] = []
    for b in boards:
        cx, cy = where[(b["x"], b["y"], b["z"])]
        job = None if b["dead"] else owner.get((b["x"], b["y"], b["z"]))
        fill = _DEAD if b["dead"] else job["colour"] if job else _FREE
        stroke = ' stroke="#222" stroke-width="2"' if job and job.get("mine") else ""
        tip = html.escape(f"board ({b['x']}, {b['y']}, {b['z']})"
                          + (f": job {job['id']} ({job['owner']})" if job else ""))
        shapes.append(f'<polygon points="{_hexagon(cx, cy, _R * 0.97)}" fill="{fill}"{stroke}>'
                      f"<title>{tip}</title></polygon>")
        if job:
            shapes.append(f'<text x="{cx:.1f}" y="{cy + 2:.1f}" font-size="6" stroke="none" '
                          f'fill="#000" text-anchor="middle">{html.escape(job["key"])}</text>')
    for x, y, z, link in dead_links:
        if (x, y, z) not in where:
            continue
        cx, cy = where[(x, y, z)]
        (x1, y1), (x2, y2) = ((cx + 0.8 * _R * math.cos(math.pi / 3 * k),
                               cy - 0.8 * _R * math.sin(math.pi / 3 * k))
                              for k in ((link + 5) % 6, link))
        shapes.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                      f'stroke="{_ALERT}" stroke-width="2"/>')
    xs = [c[0] for c in where.values()] or [0.0]
    ys = [c[1] for c in where.values()] or [0.0]
    pad = 1.3 * _R
    w, h = max(xs) - min(xs) + 2 * pad, max(ys) - min(ys) + 2 * pad
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{min(xs) - pad:.1f} '
           f'{min(ys) - pad:.1f} {w:.1f} {h:.1f}" '
           f'style="display:block;width:100%;max-width:{w * 4:.0f}px" '
           f'stroke="{_LINE}" stroke-width="0.6">{"".join(shapes)}</svg>')
    items = "".join(
        f'<li><span style="background:{j["colour"]};padding:0 0.4em">{html.escape(j["key"])}'
        f"</span> job {j['id']} · {html.escape(j['owner'])}"
        f"{' (you)' if j.get('mine') else ''} · {len(j['boards'])} "
        f"board{'' if len(j['boards']) == 1 else 's'}</li>"
        for j in jobs)
    caption = f" <span style=\"color:#555\">{html.escape(note)}</span>" if note else ""
    return (f'<div class="spalloc-boardmap-static"><div><b>{html.escape(machine)}</b>{caption}'
            f"</div>{svg}"
            f'<ul style="list-style:none;padding:0">{items}</ul></div>')


# --- the widget -------------------------------------------------------------------------------


class BoardMap(anywidget.AnyWidget):
    """A live, clickable hexagon map of one machine's boards, coloured by job.

    Build one with :meth:`for_machine` or :meth:`for_job`; :meth:`stop` stops following the
    server and :meth:`close` also closes the widget. Constructed directly it only draws the
    traits it is given.
    """

    _esm = _HERE / "boardmap.js"
    _css = _HERE / "boardmap.css"

    machine = traitlets.Unicode("").tag(sync=True)
    width = traitlets.Int(0).tag(sync=True)
    height = traitlets.Int(0).tag(sync=True)
    tags = traitlets.List(traitlets.Unicode()).tag(sync=True)
    #: ``[{x, y, z, col, row, loc: [c, f, b] | None, ip: str | None, dead: bool}]``
    boards = traitlets.List(traitlets.Dict()).tag(sync=True)
    #: ``[[x, y, z, link]]``, one-way as the server lists them
    dead_links = traitlets.List(traitlets.List(traitlets.Int())).tag(sync=True)
    #: ``[{id, key, owner, boards: [[x, y, z]], colour, mine}]`` in server order
    jobs = traitlets.List(traitlets.Dict()).tag(sync=True)
    my_owner = traitlets.Unicode(None, allow_none=True).tag(sync=True)
    highlight_job = traitlets.Int(None, allow_none=True).tag(sync=True)
    selected = traitlets.List(traitlets.Int(), None, allow_none=True).tag(sync=True)
    selected_chip = traitlets.List(traitlets.Int(), None, allow_none=True).tag(sync=True)
    chip_query = traitlets.List(traitlets.Int(), None, allow_none=True).tag(sync=True)
    #: the server's where-is answer for the last query, ``{"query", ...}`` or ``{"error"}``
    answer = traitlets.Dict().tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    #: model id of the box this map is shown in (its outputs are made static when a
    #: notebook is saved after the kernel went away)
    box_id = traitlets.Unicode("").tag(sync=True)

    def __init__(self, machine_name: str | None = None, server: Any = None,
                 **kwargs: Any) -> None:
        """Traits as keywords; ``BoardMap(name, server)`` is :meth:`for_machine` in short."""
        if machine_name is not None:
            kwargs.setdefault("machine", machine_name)
        super().__init__(**kwargs)
        self._follower: _Follower | None = None
        self._box: Any = None
        self.on_msg(self._on_message)
        # Clicks are answered while a cell runs (see answer_on_frontend_subshell).
        from spalloc_nb.widgets.job import answer_on_frontend_subshell

        answer_on_frontend_subshell(self)
        if server is not None:
            if not self.machine:
                raise ValueError("BoardMap(machine_name, server): a machine name is needed")
            host, port, known = _resolve_address(server)
            self._follow(_Follower(self, host, port, self.machine, geometry=None, known=known,
                                   timeout=5.0, reconnect_delay=5.0))

    @traitlets.observe("my_owner")
    def _on_owner(self, change: Mapping[str, Any]) -> None:
        # Whose jobs are "yours" is a local matter: no server call needed.
        owner = change["new"]
        self.jobs = [{**j, "mine": bool(owner) and j["owner"] == owner} for j in self.jobs]

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # Adds a static picture for nbconvert, GitHub and outputs reopened without a kernel.
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, tuple) and bundle and isinstance(bundle[0], dict):
            bundle[0]["text/html"] = static_html(self.machine, self.boards, self.jobs,
                                                 self.dead_links)
        return bundle

    def final_bundle(self, reason: str) -> dict[str, Any]:
        """The static picture that replaces this map's outputs once it stops following."""
        stamp = time.strftime("%H:%M:%S")
        note = f"as of {stamp}; no longer live: {reason}"
        return {"text/html": static_html(self.machine, self.boards, self.jobs, self.dead_links,
                                         note=note),
                "text/plain": f"{self!r} ({note})"}

    def live_bundle(self) -> dict[str, Any]:
        """The bundle for an output of this map: the live view, static HTML and text.

        The view sits in a one-child box: ipywidgets marks a container view whose kernel
        is gone with ``jupyter-widgets-disconnected`` (an anywidget view gets no such mark
        in JupyterLab 4.6), and the map's front end reads that mark to stop saying "live".
        """
        import ipywidgets

        box = self._box
        if box is None or box.comm is None:
            box = self._box = ipywidgets.VBox([self])
            box.add_class("spalloc-map-box")
            self.box_id = box.model_id
            from spalloc_nb.widgets.job import answer_on_frontend_subshell

            answer_on_frontend_subshell(box)
        bundle = box._repr_mimebundle_() or {}
        data = dict(bundle[0] if isinstance(bundle, tuple) else bundle)
        data["text/html"] = static_html(self.machine, self.boards, self.jobs, self.dead_links)
        data["text/plain"] = repr(self)
        return data

    def _ipython_display_(self) -> None:
        # A display id per output, so the output can end as a true static picture.
        from spalloc_nb._displays import show

        show(self, self.live_bundle(), self.final_bundle)

    def __repr__(self) -> str:
        # Cheap and meaningful in terminals and text/plain bundles.
        live = sum(1 for b in self.boards if not b.get("dead"))
        return (f"BoardMap(machine={self.machine!r}, boards={live}, jobs={len(self.jobs)}, "
                f"status={self.status!r})")

    # --- constructors --------------------------------------------------------------------------

    @classmethod
    def for_machine(cls, client_or_address: Any, machine_name: str, owner: str | None = None, *,
                    geometry: Machine | None = None, timeout: float | None = 5.0,
                    reconnect_delay: float = 5.0) -> BoardMap:
        """A map of ``machine_name`` that follows the server until :meth:`stop`.

        Args:
            client_or_address: a ``ProtocolClient`` (its server is used through a new
                connection of the map's own), ``(host, port)``, ``"host:port"``, or an
                object with ``address`` (and optionally ``machines``), such as an emulator.
            machine_name: the machine to draw.
            owner: jobs of this owner are highlighted as yours.
            geometry: the machine's :class:`~spalloc.geometry.Machine`, for board IPs and
                locations without asking the server board by board.
            timeout: seconds for each server call.
            reconnect_delay: seconds between reconnection attempts.

        The first picture is drawn before this returns; later changes arrive live.

        Raises:
            OSError, spalloc.ProtocolError: the server cannot be reached.
            LookupError: the server has no machine of that name.
            TypeError: ``client_or_address`` names no server.
        """
        host, port, known = _resolve_address(client_or_address)
        widget = cls(machine=machine_name, my_owner=owner)
        widget._follow(_Follower(widget, host, port, machine_name, geometry=geometry, known=known,
                                 timeout=timeout, reconnect_delay=reconnect_delay))
        return widget

    @classmethod
    def for_job(cls, job: Any, *, geometry: Machine | None = None, timeout: float | None = 5.0,
                reconnect_delay: float = 5.0) -> BoardMap:
        """A map of the machine a ``spalloc.Job`` runs on, its boards outlined.

        A queued job's map shows its machine once it is allocated.

        Raises:
            OSError, spalloc.ProtocolError: the job's server cannot be reached.
            TypeError: the job has no client (it was never created on a server).
        """
        host, port, known = _resolve_address(job.client)
        snap = getattr(job, "snapshot", None)
        owner = getattr(snap, "owner", None)
        machine_name = getattr(snap, "machine_name", None) or getattr(job, "machine_name", None)
        widget = cls(machine=machine_name or "", my_owner=owner, highlight_job=int(job.id))
        widget._follow(_Follower(widget, host, port, machine_name, job=job, geometry=geometry,
                                 known=known, timeout=timeout, reconnect_delay=reconnect_delay))
        return widget

    #: Another name for :meth:`for_job`.
    from_job = for_job

    def _follow(self, follower: _Follower) -> None:
        try:
            follower.start()  # raises if the server or the machine cannot be found
        except BaseException:
            self.close()
            raise
        self._follower = follower

    # --- user actions (also called directly by tests and scripts) -----------------------------

    def where_is_board(self, x: int, y: int, z: int, chip: tuple[int, int] | None = None) -> None:
        """Select a board (and optionally a board-local chip) and ask the server where it is.

        The answer arrives in :attr:`answer`, as after a click on the map.
        """
        with self.hold_sync():
            # set_trait: the traitlets stubs do not know these traits allow None.
            self.set_trait("selected_chip", None if chip is None else list(chip))
            self.selected = [x, y, z]
        self._ask_board((x, y, z), chip)

    def where_is_job_chip(self, x: int, y: int, job_id: int | None = None) -> None:
        """Ask where chip ``(x, y)`` of a job (default: the highlighted one) is."""
        with self.hold_sync():
            if job_id is not None:
                self.highlight_job = job_id
            self.chip_query = [x, y]
        self._ask_job_chip(self.highlight_job, x, y)

    def refresh(self) -> None:
        """Re-read the machine and its jobs now (normally notifications drive this)."""
        if self._follower is not None:
            self._follower.request_refresh()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop following the server; the map keeps what it shows. Idempotent."""
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.stop(timeout=timeout)
            from spalloc_nb._displays import displays

            displays.finish(self, "the map was stopped")

    def close(self) -> None:
        """Stop following and close the widget."""
        self.stop()
        box, self._box = self._box, None
        if box is not None:
            box.close()
        super().close()

    # --- observers: run in the kernel's thread, hand work to the follower ---------------------

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        # Each click or submitted chip is a message, so asking twice about one place works.
        if not isinstance(content, Mapping):
            return
        try:
            if content.get("ask") == "board":
                chip = content.get("chip")
                self._ask_board(_board(content["board"]),
                                None if chip is None else (int(chip[0]), int(chip[1])))
            elif content.get("ask") == "job_chip":
                job_id = content.get("job_id")
                x, y = (int(v) for v in content["chip"])
                self._ask_job_chip(None if job_id is None else int(job_id), x, y)
        except (KeyError, TypeError, ValueError):
            self.answer = {"query": "?", "error": f"malformed request from the page: {content!r}"}

    def _ask_board(self, board: Board, chip: tuple[int, int] | None) -> None:
        follower = self._follower
        if follower is None:
            self.answer = {"query": f"board {board}", "error": "the map is not following a server"}
        elif chip is None:
            follower.ask_board(board)
        else:
            follower.ask_board_chip(board, chip)

    def _ask_job_chip(self, job_id: int | None, x: int, y: int) -> None:
        follower = self._follower
        if job_id is None:
            self.answer = {"query": f"chip ({x}, {y})",
                           "error": "Pick a job first (click it in the legend)."}
        elif follower is None:
            self.answer = {"query": f"chip ({x}, {y}) of job {job_id}",
                           "error": "the map is not following a server"}
        elif (size := self._job_size(job_id)) is not None and not (
                0 <= x < size[0] and 0 <= y < size[1]):
            # The server would wrap the chip around the job; say it is outside instead.
            self.answer = {"query": f"chip ({x}, {y}) of job {job_id}",
                           "error": f"chip ({x}, {y}) is outside job {job_id}, which is "
                                    f"{size[0]}\u00d7{size[1]} chips (x < {size[0]}, "
                                    f"y < {size[1]})"}
        else:
            follower.ask_job_chip(job_id, (x, y))

    def _job_size(self, job_id: int) -> tuple[int, int] | None:
        """The followed job's size in chips, when this map follows that job."""
        follower = self._follower
        job = None if follower is None else follower._job
        if job is None or int(job.id) != job_id:
            return None
        snap = getattr(job, "snapshot", None)
        width, height = getattr(snap, "width", None), getattr(snap, "height", None)
        return (int(width), int(height)) if width and height else None


def _resolve_address(target: Any) -> tuple[str, int, list[Machine]]:
    """``(host, port, machines known locally)`` from a client, emulator, tuple or string."""
    known: list[Machine] = []
    machines = getattr(target, "machines", None)
    if isinstance(machines, list) and all(isinstance(m, Machine) for m in machines):
        known = machines
    if hasattr(target, "address") and isinstance(target.address, tuple):
        host, port = target.address
        return str(host), int(port), known
    for host_attr, port_attr in (("hostname", "port"), ("_hostname", "_port"),
                                 ("host", "port"), ("_host", "_port")):
        host = getattr(target, host_attr, None)
        port = getattr(target, port_attr, None)
        if isinstance(host, str) and isinstance(port, int):
            return host, port, known or _local_machines(host, port)
    if isinstance(target, tuple) and len(target) == 2:
        return str(target[0]), int(target[1]), known
    if isinstance(target, str):
        host, sep, port_text = target.rpartition(":")
        if sep and port_text.isdigit():
            return host, int(port_text), known
        return target, 22244, known
    raise TypeError(f"cannot tell which server {target!r} is: give a ProtocolClient, "
                    "(host, port) or 'host:port'")


def _local_machines(host: str, port: int) -> list[Machine]:
    """The machines of this process's ``hostname = local`` emulator, if that is the server."""
    from spalloc._local import running_local_emulator

    local = running_local_emulator()
    if local is not None and local.address == (host, port):
        return list(local.machines)
    return []


class _Follower:
    """The map's own connection: a notification thread and a query thread.

    The notification thread blocks in ``wait_for_notification`` (no polling) and refreshes
    the traits after each burst; the query thread answers clicks. Both only assign traits.
    """

    def __init__(self, widget: BoardMap, host: str, port: int, machine_name: str | None, *,
                 job: Any = None, geometry: Machine | None, known: list[Machine],
                 timeout: float | None, reconnect_delay: float) -> None:
        self._widget = widget
        self._known = known
        self._host = host
        self._port = port
        self._machine_name = machine_name
        self._job = job
        self._job_id: int | None = None if job is None else int(job.id)
        self._geometry = geometry
        self._timeout = timeout
        self._reconnect_delay = reconnect_delay
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._client: ProtocolClient | None = None
        self._client_lock = threading.Lock()
        self._assign_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._queries: queue.Queue[Any] = queue.Queue()
        # Per-machine cache of board locations: they change only with the machine's config.
        self._locations_key: tuple[Any, ...] | None = None
        self._locations: dict[Board, list[int] | None] = {}
        #: how many times the traits were recomputed from the server (for tests)
        self.refreshes = 0
        self._watching: str | None = None  # the machine a queued job waits for
        self._threads = [
            threading.Thread(target=self._follow_loop, name=f"spalloc-boardmap-follow-{port}",
                             daemon=True),
            threading.Thread(target=self._query_loop, name=f"spalloc-boardmap-query-{port}",
                             daemon=True),
        ]

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect and draw the first picture in the caller's thread, then follow.

        Raises:
            OSError, SpallocError: the server cannot be reached.
            LookupError: the server has no such machine.
        """
        client = self._open()
        try:
            if not self._refresh(client) and self._job_id is None:
                raise LookupError(f"no machine named {self._machine_name!r} on "
                                  f"{self._host}:{self._port}")
        except BaseException:
            client.close()
            raise
        with self._client_lock:
            self._client = client
            self._connected.set()
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stopping.set()
        self._queries.put(_STOP)
        self._drop_client()  # wakes the thread blocked in wait_for_notification
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        self._set(status="stopped")

    def _open(self) -> ProtocolClient:
        from spalloc.client import ProtocolClient

        client = ProtocolClient(self._host, self._port, timeout=self._timeout)
        try:
            client.connect(timeout=self._timeout)
            # Our own subscriptions, on our own connection.
            client.notify_machine(self._machine_name)
            if self._job_id is not None:
                client.notify_job(self._job_id)
        except BaseException:
            client.close()
            raise
        return client

    def _drop_client(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
            self._connected.clear()
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    # --- threads ------------------------------------------------------------------------------

    def _follow_loop(self) -> None:
        with self._client_lock:
            client = self._client  # opened and drawn by start()
        while not self._stopping.is_set():
            try:
                if client is None:
                    self._set(status="connecting…")
                    client = self._open()
                    with self._client_lock:
                        if self._stopping.is_set():
                            client.close()
                            return
                        self._client = client
                        self._connected.set()
                    self._refresh(client)  # sets the status: live, or why not
                while not self._stopping.is_set():
                    note = client.wait_for_notification(None)
                    if self._stopping.is_set():
                        return
                    wanted = self._interesting(note)
                    # Merge a burst into one refresh: drain what has already arrived.
                    while (more := client.wait_for_notification(-1)) is not None:
                        wanted = wanted or self._interesting(more)
                    if wanted:
                        self._refresh(client)
            except (OSError, SpallocError) as exc:
                if self._stopping.is_set():
                    return
                self._drop_client()
                client = None
                self._set(status=f"disconnected from {self._host}:{self._port} ({exc}); "
                                 "reconnecting")
                self._stopping.wait(self._reconnect_delay)

    def _interesting(self, note: Any) -> bool:
        if not isinstance(note, Mapping):
            return True
        if note.get("machines_changed"):
            return True
        changed = note.get("jobs_changed") or ()
        return self._job_id is not None and self._job_id in changed

    def _query_loop(self) -> None:
        while True:
            item = self._queries.get()
            if item is _STOP or self._stopping.is_set():
                return
            # Only the newest click matters when several queued up.
            with contextlib.suppress(queue.Empty):
                while True:
                    newer = self._queries.get_nowait()
                    if newer is _STOP:
                        return
                    item = newer
            label, kwargs, chip_form = item
            if not self._connected.wait(self._timeout):
                self._set(answer={"query": label, "error": "not connected to the server"})
                continue
            with self._client_lock:
                client = self._client
            if client is None:
                self._set(answer={"query": label, "error": "not connected to the server"})
                continue
            try:
                reply = client.where_is(**kwargs)
            except (OSError, SpallocError) as exc:
                self._set(answer={"query": label, "error": str(exc)})
                if isinstance(exc, ProtocolError) and not isinstance(exc, ProtocolTimeoutError):
                    self._drop_client()  # the follow thread notices and reconnects
                continue
            self._set(answer=_where_is_answer(label, reply, chip_form=chip_form))

    # --- requests from the widget (kernel thread) ---------------------------------------------

    def request_refresh(self) -> None:
        with self._client_lock:
            client = self._client
        if client is None:
            return
        try:
            self._refresh(client)
        except (OSError, SpallocError) as exc:
            self._set(status=f"refresh failed: {exc}")

    def _ask(self, label: str, kwargs: dict[str, Any], chip_form: bool) -> None:
        self._set(answer={"query": label, "pending": True})
        self._queries.put((label, kwargs, chip_form))

    def ask_board(self, board: Board) -> None:
        name = self._widget.machine
        x, y, z = board
        self._ask(f"board ({x}, {y}, {z})", {"machine": name, "x": x, "y": y, "z": z}, False)

    def ask_board_chip(self, board: Board, chip: tuple[int, int]) -> None:
        widget = self._widget
        ex, ey = ethernet_chip(board)
        cx = (ex + chip[0]) % max(12 * widget.width, 1)
        cy = (ey + chip[1]) % max(12 * widget.height, 1)
        self._ask(f"chip ({cx}, {cy})",
                  {"machine": widget.machine, "chip_x": cx, "chip_y": cy}, True)

    def ask_job_chip(self, job_id: int, chip: tuple[int, int]) -> None:
        x, y = chip
        self._ask(f"chip ({x}, {y}) of job {job_id}",
                  {"job_id": job_id, "chip_x": x, "chip_y": y}, True)

    # --- building the traits ------------------------------------------------------------------

    def _refresh(self, client: ProtocolClient) -> bool:
        """Re-read the machine and its jobs into the traits; False if there is no map yet."""
        with self._refresh_lock:
            return self._refresh_locked(client)

    def _refresh_locked(self, client: ProtocolClient) -> bool:
        machines = client.list_machines()
        jobs = client.list_jobs()
        self.refreshes += 1
        name = self._machine_name
        queued_for: str | None = None
        if name is None and self._job_id is not None:
            # A queued job: its machine is known once it is allocated.
            mine = next((j for j in jobs if j.job_id == self._job_id), None)
            name = None if mine is None else mine.allocated_machine_name
            if name is None:
                # Meanwhile, show the machine it waits for and what holds that machine.
                queued_for = _requested_machine(mine, machines)
                if queued_for is None:
                    self._set(status=f"job {self._job_id} is not allocated yet")
                    return False
                if queued_for != self._watching:
                    client.notify_machine(queued_for)
                    self._watching = queued_for
                name = queued_for
            else:
                self._machine_name = name
                client.notify_machine(name)
        entry = next((m for m in machines if m.name == name), None)
        if entry is None:
            self._set(status=f"no machine named {name!r} on the server", jobs=[])
            return False
        boards = self._board_records(client, entry)
        status = "live"
        if queued_for is not None:
            status = (f"live; job {self._job_id} is queued for {queued_for}: "
                      "the jobs shown hold its boards")
        extra: dict[str, Any] = {}
        if self._job_id is not None and queued_for is None and \
                not any(j.job_id == self._job_id for j in jobs):
            # The followed job ended: say so, and forget answers that still name it.
            status = f"live; job {self._job_id} has ended and holds no boards"
            if self._widget.answer.get("job_id") == self._job_id:
                extra["answer"] = {}
            if self._widget.highlight_job == self._job_id:
                extra["highlight_job"] = None
        self._set(machine=name, width=entry.width, height=entry.height, tags=list(entry.tags),
                  boards=boards, dead_links=[list(lk) for lk in sorted(entry.dead_links)],
                  jobs=job_records(entry.name, jobs, self._widget.my_owner), status=status,
                  **extra)
        return True

    def _board_records(self, client: ProtocolClient,
                       entry: MachineDescription) -> list[dict[str, Any]]:
        dead = frozenset(entry.dead_boards)
        key = (entry.name, entry.width, entry.height, dead)
        geometry = self._geometry or next((m for m in self._known if m.name == entry.name), None)
        if geometry is not None and (geometry.name, geometry.width, geometry.height) != key[:3]:
            geometry = None  # the server's machine is not the one we were told about
        if key != self._locations_key:
            self._locations = self._fetch_locations(client, entry, geometry)
            self._locations_key = key
        ips = dict(geometry.board_ips) if geometry is not None else {}
        ips.update(self._job_ips())
        records = []
        for x, y, z in itertools.product(range(entry.width), range(entry.height), range(3)):
            board = (x, y, z)
            col, row = hex_cell(board)
            records.append({"x": x, "y": y, "z": z, "col": col, "row": row,
                            "loc": self._locations.get(board), "ip": ips.get(board),
                            "dead": board in dead})
        return records

    def _fetch_locations(self, client: ProtocolClient, entry: MachineDescription,
                         geometry: Machine | None) -> dict[Board, list[int] | None]:
        if geometry is not None:
            return {b: list(loc) for b, loc in geometry.board_locations.items()}
        wanted = [b for b in itertools.product(range(entry.width), range(entry.height), range(3))
                  if b not in set(entry.dead_boards)]
        # Sent back to back and collected afterwards: one round trip for the whole machine.
        pending = [client.submit("get_board_position", machine_name=entry.name,
                                 x=x, y=y, z=z) for x, y, z in wanted]
        found: dict[Board, list[int] | None] = {}
        for board, reply in zip(wanted, pending, strict=True):
            loc = reply.result(self._timeout)
            ok = isinstance(loc, list) and len(loc) == 3 and all(isinstance(v, int) for v in loc)
            found[board] = list(loc) if ok else None
        return found

    def _job_ips(self) -> dict[Board, str]:
        # The followed job's own connections name its boards' IPs: no extra server call.
        job = self._job
        snap = getattr(job, "snapshot", None)
        boards = getattr(snap, "boards", None) or getattr(job, "boards", None)
        connections = getattr(snap, "connections", None) or getattr(job, "connections", None)
        if not boards or not connections:
            return {}
        by_chip = {tuple(chip): str(ip) for chip, ip in _pairs(connections)}
        return {board: by_chip[chip] for chip, board in job_connections(_boards(boards))
                if chip in by_chip}

    def _set(self, **values: Any) -> None:
        # The only way traits change from our threads; unchanged values send nothing.
        widget = self._widget
        with self._assign_lock, widget.hold_sync():
            for name, value in values.items():
                if getattr(widget, name) != value:
                    setattr(widget, name, value)


def _requested_machine(job: Any, machines: Any) -> str | None:
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
    return [_board(b) for b in boards]
