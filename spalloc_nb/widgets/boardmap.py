"""An interactive map of one spalloc machine: every board a hexagon (an anywidget).

The map follows the server live through a :class:`~spalloc.service.Service` of its own and
its subscriptions (``follow_machines``): nothing is polled, and nothing is sent to the browser
while nothing changes. Its threads (:mod:`spalloc_nb.widgets._mapfollow`) only assign traits;
the ES module beside this file draws them, writes back what the user picks (``selected``,
``selected_chip``, ``chip_query``, ``highlight_job``) and sends one message per question,
which is answered with the server's where-is into ``answer``. What the traits hold is
computed in :mod:`spalloc_nb.widgets._maptraits`.

Board IPs: the v1 protocol has no per-board IP query, and a job's machine information would
refresh other users' keepalives, so IPs are shown only where they are known without it:
from a :class:`spalloc.geometry.Machine` passed in (or an in-process emulator) and from the
connections of the job given to :meth:`BoardMap.for_job`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from spalloc.geometry import Board, Machine
from spalloc_nb.widgets._esm import widget_esm
from spalloc_nb.widgets._mapfollow import MapFollower
from spalloc_nb.widgets._maptraits import (
    FOLD_MIN_BOARDS,
    JOB_COLOURS,
    as_board,
    fold_column,
    hex_cell,
    job_colour,
    job_key,
    job_records,
    machine_records,
    static_html,
)

__all__ = [
    "FOLD_MIN_BOARDS",
    "JOB_COLOURS",
    "BoardMap",
    "fold_column",
    "hex_cell",
    "job_colour",
    "job_key",
    "job_records",
    "machine_records",
    "static_html",
]

_HERE = Path(__file__).resolve().parent


class BoardMap(anywidget.AnyWidget):
    """A live, clickable hexagon map of one machine's boards, coloured by job.

    Build one with :meth:`for_machine` or :meth:`for_job`; :meth:`stop` stops following the
    server and :meth:`close` also closes the widget. Constructed directly it only draws the
    traits it is given.
    """

    _esm = widget_esm("boardmap.js")
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

    def __init__(self, machine_name: str | None = None, server: Any = None, **kwargs: Any) -> None:
        """Traits as keywords; ``BoardMap(name, server)`` is :meth:`for_machine` in short."""
        if machine_name is not None:
            kwargs.setdefault("machine", machine_name)
        super().__init__(**kwargs)
        self._follower: MapFollower | None = None
        self._box: Any = None
        self.on_msg(self._on_message)
        # Clicks are answered while a cell runs (see answer_on_frontend_subshell).
        from spalloc_nb.widgets.job import answer_on_frontend_subshell

        answer_on_frontend_subshell(self)
        if server is not None:
            if not self.machine:
                raise ValueError("BoardMap(machine_name, server): a machine name is needed")
            self._follow(server, self.machine, geometry=None, timeout=5.0, reconnect_delay=5.0)

    @traitlets.observe("my_owner")
    def _on_owner(self, change: Mapping[str, Any]) -> None:
        # Whose jobs are "yours" is a local matter: no server call needed.
        owner = change["new"]
        self.jobs = [{**j, "mine": bool(owner) and j["owner"] == owner} for j in self.jobs]

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # Adds a static picture for nbconvert, GitHub and outputs reopened without a kernel.
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, tuple) and bundle and isinstance(bundle[0], dict):
            bundle[0]["text/html"] = static_html(
                self.machine, self.boards, self.jobs, self.dead_links
            )
        return bundle

    def final_bundle(self, reason: str) -> dict[str, Any]:
        """The static picture that replaces this map's outputs once it stops following."""
        stamp = time.strftime("%H:%M:%S")
        note = f"as of {stamp}; no longer live: {reason}"
        return {
            "text/html": static_html(
                self.machine, self.boards, self.jobs, self.dead_links, note=note
            ),
            "text/plain": f"{self!r} ({note})",
        }

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
        return (
            f"BoardMap(machine={self.machine!r}, boards={live}, jobs={len(self.jobs)}, "
            f"status={self.status!r})"
        )

    # --- constructors --------------------------------------------------------------------------

    @classmethod
    def for_machine(
        cls,
        client_or_address: Any,
        machine_name: str,
        owner: str | None = None,
        *,
        geometry: Machine | None = None,
        timeout: float | None = 5.0,
        reconnect_delay: float = 5.0,
    ) -> BoardMap:
        """A map of ``machine_name`` that follows the server until :meth:`stop`.

        Args:
            client_or_address: a :class:`~spalloc.service.Service` or a ``ProtocolClient``
                (its server is used through a new connection of the map's own),
                ``(host, port)``, ``"host:port"``, or an object with ``address`` (and
                optionally ``machines``), such as an emulator.
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
        widget = cls(machine=machine_name, my_owner=owner)
        widget._follow(
            client_or_address,
            machine_name,
            geometry=geometry,
            timeout=timeout,
            reconnect_delay=reconnect_delay,
        )
        return widget

    @classmethod
    def for_job(
        cls,
        job: Any,
        *,
        geometry: Machine | None = None,
        timeout: float | None = 5.0,
        reconnect_delay: float = 5.0,
    ) -> BoardMap:
        """A map of the machine a ``spalloc.Job`` runs on, its boards outlined.

        A queued job's map shows its machine once it is allocated.

        Raises:
            OSError, spalloc.ProtocolError: the job's server cannot be reached.
            TypeError: the job has no service (it was never created on a server).
        """
        snap = getattr(job, "snapshot", None)
        owner = getattr(snap, "owner", None)
        machine_name = getattr(snap, "machine_name", None) or getattr(job, "machine_name", None)
        widget = cls(machine=machine_name or "", my_owner=owner, highlight_job=int(job.id))
        # A connection of the map's own to the job's server: its subscriptions and its
        # reconnections must not disturb the job's.
        widget._follow(
            job.service,
            machine_name,
            job=job,
            geometry=geometry,
            timeout=timeout,
            reconnect_delay=reconnect_delay,
        )
        return widget

    #: Another name for :meth:`for_job`.
    from_job = for_job

    def _follow(
        self,
        server: Any,
        machine_name: str | None,
        *,
        job: Any = None,
        geometry: Machine | None,
        timeout: float | None,
        reconnect_delay: float,
    ) -> None:
        from spalloc.service import open_service

        try:
            if callable(getattr(server, "sibling", None)):
                # A Service (a job's, v1 or v2): the same server and login, a connection of
                # the map's own.
                service = server.sibling()
                known = _local_machines_of(service)
            else:
                host, port, known = _resolve_address(server)
                # The map reads lists, so any server version will do.
                service = open_service(host, port, timeout=timeout, check_version=False)
            follower = MapFollower(
                self,
                service,
                machine_name,
                job=job,
                geometry=geometry,
                known=known,
                timeout=timeout,
                reconnect_delay=reconnect_delay,
            )
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
                self._ask_board(
                    as_board(content["board"]),
                    None if chip is None else (int(chip[0]), int(chip[1])),
                )
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
            self.answer = {
                "query": f"chip ({x}, {y})",
                "error": "Pick a job first (click it in the legend).",
            }
        elif follower is None:
            self.answer = {
                "query": f"chip ({x}, {y}) of job {job_id}",
                "error": "the map is not following a server",
            }
        elif (size := self._job_size(job_id)) is not None and not (
            0 <= x < size[0] and 0 <= y < size[1]
        ):
            # The server would wrap the chip around the job; say it is outside instead.
            self.answer = {
                "query": f"chip ({x}, {y}) of job {job_id}",
                "error": f"chip ({x}, {y}) is outside job {job_id}, which is "
                f"{size[0]}\u00d7{size[1]} chips (x < {size[0]}, "
                f"y < {size[1]})",
            }
        else:
            follower.ask_job_chip(job_id, (x, y))

    def _job_size(self, job_id: int) -> tuple[int, int] | None:
        """The followed job's size in chips, when this map follows that job."""
        follower = self._follower
        job = None if follower is None else follower.job
        if job is None or int(job.id) != job_id:
            return None
        snap = getattr(job, "snapshot", None)
        width, height = getattr(snap, "width", None), getattr(snap, "height", None)
        return (int(width), int(height)) if width and height else None


def _resolve_address(target: Any) -> tuple[str, int, list[Machine]]:
    """``(host, port, machines known locally)`` from a service, client, emulator, tuple or
    string."""
    known: list[Machine] = []
    machines = getattr(target, "machines", None)
    if isinstance(machines, list) and all(isinstance(m, Machine) for m in machines):
        known = machines
    address = getattr(target, "address", None)
    if isinstance(address, tuple):
        host, port = address
        return str(host), int(port), known
    if isinstance(address, str) and not isinstance(target, str):
        # A Service says where its server is as "host:port".
        host, _, port_text = address.rpartition(":")
        if host and port_text.isdigit():
            return host, int(port_text), known or _local_machines(host, int(port_text))
    for host_attr, port_attr in (
        ("hostname", "port"),
        ("_hostname", "_port"),
        ("host", "port"),
        ("_host", "_port"),
    ):
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
    raise TypeError(
        f"cannot tell which server {target!r} is: give a Service, a ProtocolClient, "
        "(host, port) or 'host:port'"
    )


def _local_machines_of(service: Any) -> list[Machine]:
    """The local emulator's machines if *service* is a v1 service of it (``host:port``)."""
    host, sep, port_text = str(service.address).rpartition(":")
    return _local_machines(host, int(port_text)) if sep and port_text.isdigit() else []


def _local_machines(host: str, port: int) -> list[Machine]:
    """The machines of this process's ``hostname = local`` emulator, if that is the server."""
    from spalloc._local import running_local_emulator

    local = running_local_emulator()
    if local is not None and local.address == (host, port):
        return list(local.machines)
    return []
