"""The live job widget: state, power, boards, hostnames, keepalive health and action buttons.

The widget is a view. Its visible state is the value of a few child widgets; the job's
state listener (a background thread) only assigns those values, never prints or displays;
the buttons call ordinary methods (:meth:`JobWidget.power_on`, ...) that tests call too.
Nothing is sent while nothing changes: values are assigned only when the rendering differs.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import ipywidgets as widgets
from traitlets import Bool, Int, Unicode

from spalloc.states import JobState
from spalloc_nb._displays import displays, show, show_static
from spalloc_nb._html import JobView, final_view, job_html, job_text, job_view
from spalloc_nb._registry import registry
from spalloc_nb.widgets._esm import widget_esm

if TYPE_CHECKING:
    from spalloc.models import JobSnapshot
    from spalloc.service import Service

__all__ = ["JobStatus", "JobWidget", "answer_on_frontend_subshell", "board_map_class", "queue_note"]

_HERE = Path(__file__).resolve().parent


def answer_on_frontend_subshell(widget: Any) -> None:
    """Let the front end's messages to ``widget`` run on the subshell it sends them to.

    JupyterLab >= 4.4 sends comm messages to a kernel subshell (``commsOverSubshells``,
    default one subshell per comm target), so a click need not wait for a running cell.
    But ipykernel 7 routes an incoming comm message to the subshell that last *published*
    on that comm (``BaseComm._reply_subshell_for``, meant for a cell awaiting a widget's
    reply), and our widgets publish from the main shell, where they were created: so every
    click went back to the busy main shell and waited for the cell to end. Our handlers
    never await replies, so the front end's own choice of subshell is the right one.
    Without subshells (older kernels or front ends) the default is the main shell, as before.
    """
    comm = getattr(widget, "comm", None)
    if comm is not None and hasattr(comm, "_reply_subshell_for"):
        comm._reply_subshell_for = lambda _data, default: default


def queue_note(service: Service, job_id: int, timeout: float | None = 5.0) -> str:
    """What a queued job waits for: the machine and the queued jobs ahead of it.

    Asked through *service* (e.g. the job's own, ``job.service``), within *timeout* seconds.
    """
    from spalloc._deadline import deadline_of
    from spalloc_nb.widgets._maptraits import requested_machine

    deadline = deadline_of(timeout)
    jobs = service.list_jobs(deadline)
    machines = service.list_machines(deadline)
    mine = next((j for j in jobs if j.job_id == job_id), None)
    if mine is None:
        return "the server no longer lists this job"
    machine = requested_machine(mine, machines)
    ahead = sum(
        1
        for j in jobs
        if j.state is JobState.queued
        and j.job_id < job_id
        and (machine is None or requested_machine(j, machines) == machine)
    )
    where = f" on {machine}" if machine else ""
    return (
        f"free boards{where}; {ahead} queued job{'s' if ahead != 1 else ''} ahead "
        f"(checked {time.strftime('%H:%M:%S')})"
    )


class JobStatus(anywidget.AnyWidget):
    """The summary panel: the job's HTML, and "disconnected" once the kernel is gone."""

    _esm = widget_esm("jobstatus.js")
    _css = _HERE / "jobstatus.css"

    value = Unicode("").tag(sync=True)
    #: what the kernel is doing for a click right now ("Powering off…"), or ""
    busy = Unicode("").tag(sync=True)
    #: counts the clicks the kernel has handled; the front end clears its "sent" note
    ack = Int(0).tag(sync=True)
    #: model id of the job widget shown in outputs (its outputs are made static when a
    #: notebook is saved after the kernel went away)
    root_id = Unicode("").tag(sync=True)


def board_map_class() -> Any:
    """The board map widget class if that module is available, else ``None``."""
    try:
        from spalloc_nb.widgets.boardmap import BoardMap
    except Exception:  # not written yet, or its front-end dependencies are missing
        return None
    return BoardMap


class JobWidget(widgets.VBox):
    """A live view of one :class:`spalloc.Job` with Power on/off, Reset and Destroy buttons."""

    job_id = Int(None, allow_none=True, help="The job's id (kernel side only).")
    state = Unicode("", help="The job's state name: queued, power, ready, destroyed, unknown.")
    power = Unicode("", help="'on', 'off', 'powering on', 'powering off' or ''.")
    reason = Unicode(None, allow_none=True, help="Why the job was destroyed.")
    health = Unicode("", help="Keepalive health: ok, failing: ..., disconnected, stopped.")
    bridged = Bool(False, help="True while the hostnames are the job's proxy bridge's.")
    traffic = Unicode("", help="What the proxy bridge carried: packets, bytes, errors.")

    def __init__(
        self,
        job: Any,
        *,
        emulated: bool = False,
        destroy_reason: str = "Destroyed from the notebook.",
        **kwargs: Any,
    ) -> None:
        self._job = job
        self._emulated = emulated
        self._destroy_reason = destroy_reason
        self._lock = threading.RLock()
        self._ready_at: float | None = None
        self._queued_for: float | None = None
        self._seen_waiting = False
        self._view: JobView | None = None
        self._held: tuple[tuple[int, int, int], ...] = ()
        self._queue_note: str | None = None
        self._probing = False
        self._remove_listener: Callable[[], None] | None = None

        self._summary = JobStatus()
        self._message = widgets.HTML()
        self._power_on = widgets.Button(
            description="Power on", icon="play", tooltip="Power the job's boards on"
        )
        self._power_off = widgets.Button(
            description="Power off", icon="stop", tooltip="Power the job's boards off"
        )
        self._reset = widgets.Button(
            description="Reset", icon="refresh", tooltip="Power-cycle the job's boards"
        )
        self._destroy = widgets.Button(
            description="Destroy",
            icon="trash",
            button_style="danger",
            tooltip="Destroy the job and free its boards",
        )
        self._confirm_yes = widgets.Button(description="Yes, destroy", button_style="danger")
        self._confirm_no = widgets.Button(description="Cancel")
        self._confirm_label = widgets.HTML()
        self._confirm = widgets.HBox(
            [self._confirm_label, self._confirm_yes, self._confirm_no],
            layout=widgets.Layout(display="none"),
        )
        buttons: list[widgets.Widget] = [
            self._power_on,
            self._power_off,
            self._reset,
            self._destroy,
        ]
        self._map_box = widgets.VBox()
        self._map_button: widgets.ToggleButton | None = None
        if board_map_class() is not None:
            self._map_button = widgets.ToggleButton(
                description="Map", icon="th", tooltip="Show the job's boards on the machine"
            )
            self._map_button.observe(self._toggle_map, names="value")
            buttons.append(self._map_button)
        self._buttons = widgets.HBox(buttons)

        self._power_on.on_click(lambda _b: self.power_on())
        self._power_off.on_click(lambda _b: self.power_off())
        self._reset.on_click(lambda _b: self.reset())
        self._destroy.on_click(lambda _b: self.ask_destroy())
        self._confirm_yes.on_click(lambda _b: self.destroy())
        self._confirm_no.on_click(lambda _b: self.cancel_destroy())

        super().__init__(
            [self._summary, self._buttons, self._confirm, self._message, self._map_box], **kwargs
        )
        # The stylesheet (shipped with the status panel) greys the widget out when the
        # front end loses its kernel.
        self.add_class("spalloc-job-widget")
        self._summary.root_id = self.model_id
        for child in (
            self,
            self._summary,
            self._power_on,
            self._power_off,
            self._reset,
            self._destroy,
            self._confirm_yes,
            self._confirm_no,
            self._map_button,
        ):
            answer_on_frontend_subshell(child)
        self._apply(job.snapshot)
        self._remove_listener = job.add_state_listener(self._on_job_change)
        # The job may have changed between the first snapshot and the subscription.
        self._apply(job.snapshot)
        registry.add_closer(self, self.close)

    # -- the one update path --------------------------------------------------------------

    @property
    def job(self) -> Any:
        """The job this widget shows."""
        return self._job

    @property
    def view(self) -> JobView:
        """The current rendering data (also used by the static HTML and text)."""
        with self._lock:
            assert self._view is not None
            return self._view

    def _on_job_change(self, job: Any) -> None:
        # Called on the job's background thread: assign traits only.
        if job.snapshot.state is JobState.queued:
            self._queue_note = None  # ask again: the queue may have moved
        self._apply(job.snapshot)

    def _apply(self, snapshot: JobSnapshot) -> None:
        with self._lock:
            view = self._make_view(snapshot)
            if view.boards:
                self._held = view.boards
            view = replace(view, held=self._held)
            self._view = view
            self.job_id = view.job_id
            self.state = view.state
            self.power = view.power
            self.reason = view.reason if view.state == "destroyed" else None
            self.health = view.health
            self.bridged = view.bridged
            self.traffic = view.traffic
            self._summary.value = job_html(view)
            # Not while the boards are being powered: the click would only queue up.
            ready = view.state == "ready"
            self._power_on.disabled = not ready
            self._power_off.disabled = not ready
            self._reset.disabled = not ready
            self._destroy.disabled = not view.live
            if not view.live:
                self._confirm.layout.display = "none"
        if view.state == "queued" and self._queue_note is None:
            self._queue_note = ""  # asked once per state change (see _on_job_change)
            self._probe_queue()
        if not view.live:
            # The job is over: its outputs become the final static view, for good.
            displays.finish(self._job, view.reason or "Job ended.")

    def _make_view(self, snapshot: JobSnapshot) -> JobView:
        state = snapshot.state
        now = time.time()
        if state in (JobState.queued, JobState.power) and self._ready_at is None:
            self._seen_waiting = True
        if state is JobState.ready and self._ready_at is None:
            self._ready_at = now
            if self._seen_waiting and snapshot.start_time is not None:
                self._queued_for = max(0.0, now - snapshot.start_time)
        view = job_view(
            snapshot, ready_at=self._ready_at, queued_for=self._queued_for, emulated=self._emulated
        )
        if state is JobState.queued and self._queue_note:
            view = replace(view, extra={"Waiting": self._queue_note})
        return view

    def _probe_queue(self) -> None:
        """Find out (on a thread of its own) what the queued job waits for, and behind whom.

        Asked again at each state change of the job; the note says when it was checked.
        """
        with self._lock:
            if self._probing:
                return
            self._probing = True

        def probe() -> None:
            try:
                service = self._job.service
                if service is None:
                    raise RuntimeError("the job is not connected to a server")
                # The job's own service: it is safe to share between threads.
                note = queue_note(service, int(self._job.id))
            except Exception as exc:  # a note, not a failure: the job itself is fine
                note = f"unknown ({type(exc).__name__}: {exc})"
            finally:
                with self._lock:
                    self._probing = False
            self._queue_note = note
            self._apply(self._job.snapshot)

        threading.Thread(target=probe, name="spalloc-nb-queue", daemon=True).start()

    # -- actions (the buttons call these) -------------------------------------------------

    def _act(self, what: str, action: Callable[[], Any], doing: str = "") -> bool:
        # Said at once (from the subshell that handles the click), then the outcome.
        self._summary.busy = doing or f"{what}\u2026"
        try:
            action()
        except Exception as exc:  # shown in the widget: the user clicked, the user reads it
            self._message.value = (
                f'<span style="color:#c62828">{html.escape(what)} failed: '
                f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}"
                "</span>"
            )
            return False
        finally:
            self._summary.busy = ""
            self._summary.ack += 1
        self._message.value = (
            f'<span class="spalloc-done">{html.escape(what)}: done at '
            f"{time.strftime('%H:%M:%S')}</span>"
        )
        self._apply(self._job.snapshot)
        return True

    def power_on(self) -> bool:
        """Power the boards on (this power-cycles boards that are already on)."""
        return self._act("Power on", lambda: self._job.set_power(True), "Powering on\u2026")

    def power_off(self) -> bool:
        """Power the boards off."""
        return self._act("Power off", lambda: self._job.set_power(False), "Powering off\u2026")

    def reset(self) -> bool:
        """Reset (power-cycle) the boards."""
        return self._act("Reset", self._job.reset, "Resetting (power-cycling) the boards\u2026")

    def ask_destroy(self) -> None:
        """Show the confirmation row; nothing is destroyed until it is confirmed."""
        self._confirm_label.value = f"<b>Destroy job {html.escape(str(self.job_id))}?</b>"
        self._confirm.layout.display = "flex"

    def cancel_destroy(self) -> None:
        """Hide the confirmation row."""
        self._confirm.layout.display = "none"

    def destroy(self, reason: str | None = None) -> bool:
        """Destroy the job (also what the confirmation button does)."""
        self._confirm.layout.display = "none"
        ok = self._act(
            "Destroy", lambda: self._job.destroy(reason or self._destroy_reason), "Destroying\u2026"
        )
        if ok:
            registry.release_job(self._job)
        return ok

    def refresh(self) -> None:
        """Ask the server for the job's state now (normally notifications do this)."""
        self._act("Refresh", self._job.refresh)

    def _toggle_map(self, change: dict[str, Any]) -> None:
        """Show or hide the board map (it follows the server only while shown)."""
        for old in self._map_box.children:
            old.close()
        self._map_box.children = ()
        if not change["new"]:
            return
        try:
            board_map = board_map_class().for_job(self._job)
        except Exception as exc:  # e.g. the job is not connected: say so in the widget
            self._message.value = f"Map unavailable: {html.escape(str(exc))}"
            return
        answer_on_frontend_subshell(board_map)
        self._map_box.children = (board_map,)

    def show_map(self, show: bool = True) -> Any:
        """Show (or hide) the board map; returns the map widget or ``None``."""
        if self._map_button is None:
            return None
        self._map_button.value = show
        return self._map_box.children[0] if self._map_box.children else None

    # -- renderings and lifetime ----------------------------------------------------------

    def final_bundle(self, reason: str) -> dict[str, Any]:
        """The static bundle that replaces this widget's outputs once it stops following."""
        try:
            self._apply(self._job.snapshot)
        except Exception:  # at exit the job may be half torn down: keep the last view
            pass
        view = final_view(self.view, reason)
        return {"text/html": job_html(view), "text/plain": job_text(view)}

    def show(self) -> str | None:
        """Display this widget with a display id; returns it (``None``: the job ended)."""
        if not self.view.live:
            view = final_view(self.view, self.view.reason or "Job ended.")
            show_static({"text/html": job_html(view), "text/plain": job_text(view)})
            return None
        return show(self._job, self._repr_mimebundle_(), self.final_bundle)

    def _ipython_display_(self) -> None:
        # A display id per output, so the output can be replaced by the final view.
        self.show()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data = super()._repr_mimebundle_(**kwargs) or {}
        view = self.view
        data["text/html"] = job_html(view)
        data["text/plain"] = job_text(view)
        return data

    def __repr__(self) -> str:
        # Cheap and meaningful; the default would serialise every trait.
        return f"<JobWidget {job_text(self._view) if self._view else ''}>"

    def close(self) -> None:
        """Stop listening to the job and close the widget (the job itself is untouched)."""
        remove, self._remove_listener = self._remove_listener, None
        if remove is not None:
            try:
                remove()
            except Exception:
                pass
        registry.remove_closer(self)
        for child in (
            self._summary,
            self._message,
            self._power_on,
            self._power_off,
            self._reset,
            self._destroy,
            self._confirm_yes,
            self._confirm_no,
            self._confirm_label,
            self._confirm,
            self._buttons,
            self._map_box,
        ):
            child.close()
        for board_map in self._map_box.children:
            board_map.close()
        if self._map_button is not None:
            self._map_button.close()
        super().close()
