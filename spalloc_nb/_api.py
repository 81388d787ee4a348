"""The Python API under the magics: the same features for VS Code, scripts and marimo.

Each function takes explicit server settings (``hostname``, ``port``, ``timeout``; unset ones
come from the spalloc config file) and returns an object that displays itself as HTML in a
notebook and as text elsewhere.
"""

from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spalloc_nb._config import ServerAddress, resolve_server
from spalloc_nb._displays import show
from spalloc_nb._html import Table, final_view, job_html, job_text, job_view
from spalloc_nb._registry import registry

if TYPE_CHECKING:
    from spalloc.service import Service
    from spalloc.ui._layout import Cell

__all__ = [
    "MachineSummary",
    "Message",
    "destroy",
    "display_job",
    "job_widget",
    "machine",
    "machines",
    "mark_emulated",
    "ps",
    "where_is",
]

_widgets_lock = threading.Lock()
_widgets: dict[int, Any] = {}
_emulated: set[int] = set()


@dataclass(frozen=True)
class Message:
    """A one-line result (e.g. of ``destroy``), shown as text or HTML."""

    text: str

    def __str__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return f"<span>{html.escape(self.text)}</span>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text)


@dataclass(frozen=True)
class MachineSummary:
    """One machine: its figures, its jobs, a board map as text and SVG, and a live map.

    The static HTML draws the same hexagons as the live map (inline SVG), so nbconvert,
    nbviewer and GitHub show the machine as the notebook did.
    """

    name: str
    details: Table
    jobs: Table
    board_map_text: str
    board_map: Any = field(default=None, compare=False)
    board_map_svg: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.board_map_text}\n\n{self.jobs}"

    def _repr_html_(self) -> str:
        picture = self.board_map_svg or f"<pre>{html.escape(self.board_map_text)}</pre>"
        return f"<div>{self.details._repr_html_()}{picture}{self.jobs._repr_html_()}</div>"

    def _final_bundle(self, reason: str) -> dict[str, Any]:
        # Only the map's last picture: the tables were true when shown, not at the end.
        if self.board_map is None:
            return {"text/html": self._repr_html_(), "text/plain": str(self)}
        bundle: dict[str, Any] = self.board_map.final_bundle(reason)
        return bundle

    def _ipython_display_(self) -> None:
        # With a live map, a display id lets the output end as a static picture.
        data = self._repr_mimebundle_()
        if self.board_map is None:
            from IPython.display import display

            display(data, raw=True)
            return
        show(self.board_map, data, self._final_bundle)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.board_map is not None:
            data.update(self.board_map.live_bundle())
        data["text/html"] = self._repr_html_()
        data["text/plain"] = str(self)
        return data


def _server(
    hostname: str | None, port: int | None, timeout: float | None, **defaults: Any
) -> ServerAddress:
    return resolve_server(defaults, {"hostname": hostname, "port": port, "timeout": timeout})


@contextlib.contextmanager
def _session(address: ServerAddress) -> Iterator[tuple[Service, float | None]]:
    """A connected service for one question, and the deadline all its steps share.

    The one-thread driver: a question or two, then the connection is closed.
    """
    from spalloc._deadline import deadline_of
    from spalloc.service import open_service

    deadline = deadline_of(address.timeout)
    # No version check, as the listings never needed one: any spalloc server answers them.
    service = open_service(
        address.hostname, address.port, timeout=address.timeout, check_version=False, light=True
    )
    try:
        service.connect(deadline)
        yield service, deadline
    finally:
        service.close()


def _plain(cell: Any) -> Any:
    # The CLI's rows carry (text, style) pairs; a table here has no styles.
    return cell[0] if isinstance(cell, tuple) else cell


def _table(rows: Sequence[Sequence[Cell]], title: str | None = None) -> Table:
    """A table of the CLI's cells (header row first), without their styles."""
    headers = tuple(str(_plain(cell)) for cell in rows[0])
    body = tuple(tuple(_plain(cell) for cell in row) for row in rows[1:])
    return Table(headers, body, title)


def ps(
    owner: str | None = None,
    machine: str | None = None,
    *,
    hostname: str | None = None,
    port: int | None = None,
    timeout: float | None = None,
) -> Table:
    """The live jobs on the server, like ``spalloc-ps``."""
    from spalloc.ui.render import ps_rows

    address = _server(hostname, port, timeout)
    with _session(address) as (service, deadline):
        jobs = service.list_jobs(deadline)
    rows = ps_rows(list(jobs), machine=machine, owner=owner)
    from spalloc.service import is_v2_url

    where = (
        address.hostname if is_v2_url(address.hostname) else f"{address.hostname}:{address.port}"
    )
    title = f"Jobs on {where}"
    if address.emulated:
        title += " (emulated)"
    return _table(rows, title)


def machines(
    *, hostname: str | None = None, port: int | None = None, timeout: float | None = None
) -> Table:
    """The machines and their load, like ``spalloc-machine`` with no argument."""
    from spalloc.ui.render import machine_rows

    address = _server(hostname, port, timeout)
    with _session(address) as (service, deadline):
        found = service.list_machines(deadline)
        jobs = list(service.list_jobs(deadline))
    return _table(
        machine_rows(found, jobs), "Machines" + (" (emulated)" if address.emulated else "")
    )


def machine(
    name: str,
    *,
    hostname: str | None = None,
    port: int | None = None,
    timeout: float | None = None,
    live_map: bool = True,
    owner: str | None = None,
) -> MachineSummary:
    """One machine, like ``spalloc-machine NAME``, with the board map widget when available.

    Raises:
        LookupError: no machine of that name.
    """
    from spalloc.ui.render import machine_detail, machine_items, machine_job_rows, plain

    address = _server(hostname, port, timeout)
    with _session(address) as (service, deadline):
        listed = service.list_machines(deadline)
        jobs = list(service.list_jobs(deadline))
    found = next((m for m in listed if m.name == name), None)
    if found is None:
        raise LookupError(f"No machine {name!r} was found")
    items = machine_items(found, jobs)
    details = Table(
        tuple(key for key, _ in items), (tuple(value for _, value in items),), f"Machine {name}"
    )
    text_map = plain(machine_detail(found, jobs, detailed=False))
    board_map = _board_map(name, address, owner) if live_map else None
    return MachineSummary(
        name,
        details,
        _table(machine_job_rows(found, jobs)),
        text_map,
        board_map,
        _svg_map(found, jobs, owner),
    )


def _svg_map(found: Any, jobs: Any, owner: str | None) -> str:
    try:
        from spalloc_nb.widgets.boardmap import machine_records, static_html
    except ImportError:  # no anywidget: the text map stands in
        return ""
    boards, records = machine_records(found, jobs, owner)
    return static_html(found.name, boards, records, [list(lk) for lk in sorted(found.dead_links)])


def _board_map(name: str, address: ServerAddress, owner: str | None) -> Any:
    from spalloc_nb.widgets.job import board_map_class

    cls = board_map_class()
    if cls is None:
        return None
    target: Any = (address.hostname, address.port)
    if address.emulated:
        from spalloc._local import local_emulator

        target = local_emulator()  # also knows the machines' geometry and board IPs
    try:
        board_map = cls.for_machine(target, name, owner, timeout=address.timeout)
    except Exception:  # the map is a bonus; the tables already answer the question
        return None
    registry.add_closer(board_map, board_map.close)
    return board_map


def where_is(
    *,
    machine: str | None = None,
    x: int | None = None,
    y: int | None = None,
    z: int | None = None,
    cabinet: int | None = None,
    frame: int | None = None,
    board: int | None = None,
    chip_x: int | None = None,
    chip_y: int | None = None,
    job_id: int | None = None,
    hostname: str | None = None,
    port: int | None = None,
    timeout: float | None = None,
) -> Table:
    """Locate a board or chip, like ``spalloc-where-is`` (give exactly one form's keys).

    Raises:
        LookupError: nothing is at that location.
    """
    given = {
        "machine": machine,
        "x": x,
        "y": y,
        "z": z,
        "cabinet": cabinet,
        "frame": frame,
        "board": board,
        "chip_x": chip_x,
        "chip_y": chip_y,
        "job_id": job_id,
    }
    kwargs = {key: value for key, value in given.items() if value is not None}
    forms = (
        {"machine", "x", "y", "z"},
        {"machine", "cabinet", "frame", "board"},
        {"machine", "chip_x", "chip_y"},
        {"job_id", "chip_x", "chip_y"},
    )
    if set(kwargs) not in forms:
        raise TypeError(
            "give machine+x,y,z, machine+cabinet,frame,board, machine+chip_x,chip_y "
            "or job_id+chip_x,chip_y"
        )
    address = _server(hostname, port, timeout)
    with _session(address) as (service, deadline):
        location = service.where_is(deadline, **kwargs)
    if location is None:
        raise LookupError("No boards at the specified location")
    from spalloc.ui.render import where_is_items

    items = where_is_items(location, show_board_chip="chip_x" in kwargs)
    return Table(("Where", "Value"), tuple((key, str(value)) for key, value in items))


def destroy(
    job_id: int,
    reason: str | None = None,
    *,
    hostname: str | None = None,
    port: int | None = None,
    timeout: float | None = None,
) -> Message:
    """Destroy any job by id, like ``spalloc-job ID --destroy [REASON]``."""
    address = _server(hostname, port, timeout)
    with _session(address) as (service, deadline):
        service.send_destroy(job_id, reason, deadline).wait()
    return Message(
        f"Job {job_id} destroyed." if reason is None else f"Job {job_id} destroyed: {reason}"
    )


def mark_emulated(job: Any) -> None:
    """Remember that ``job`` runs on the embedded emulator (its renderings say so)."""
    with _widgets_lock:
        _emulated.add(id(job))


def _is_emulated(job: Any) -> bool:
    with _widgets_lock:
        return id(job) in _emulated


def job_widget(job: Any, *, emulated: bool | None = None) -> Any:
    """The live widget of ``job`` (one per job: displaying it twice shows the same model)."""
    from spalloc_nb.widgets.job import JobWidget

    with _widgets_lock:
        widget = _widgets.get(id(job))
        if widget is not None and widget.job is job and widget.comm is not None:
            return widget
        flag = id(job) in _emulated if emulated is None else emulated
        widget = JobWidget(job, emulated=flag)
        _widgets[id(job)] = widget
    key = id(job)
    registry.add_closer(widget.job, lambda: _forget(key))
    return widget


def _forget(key: int) -> None:
    with _widgets_lock:
        _widgets.pop(key, None)
        _emulated.discard(key)


def _static_bundle(job: Any, reason: str | None = None) -> dict[str, Any]:
    view = job_view(job.snapshot, emulated=_is_emulated(job))
    if reason is not None or not view.live:
        view = final_view(view, reason or view.reason or "Job ended.")
    return {"text/html": job_html(view), "text/plain": job_text(view)}


def display_job(job: Any, *, widget: bool) -> str | None:
    """Display ``job`` with a display id, so that its output ends as a true final view.

    Returns the display id (``None`` for a job that already ended: shown static).
    """
    if widget:
        shown: str | None = job_widget(job).show()
        return shown
    from spalloc_nb._displays import displays, show_static

    if not job.snapshot.state.is_live:
        show_static(_static_bundle(job))
        return None
    display_id = show(job, _static_bundle(job), lambda reason: _static_bundle(job, reason))
    if not registry.owns(job):
        return display_id

    def ended(changed: Any) -> None:
        if not changed.snapshot.state.is_live:
            displays.finish(job, changed.snapshot.reason or "Job ended.")

    remove = job.add_state_listener(ended)
    registry.add_closer(ended, remove)
    return display_id
