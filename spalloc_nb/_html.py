"""Static renderings of jobs and tables: ``text/html`` and ``text/plain``, no widgets.

Everything here is a pure function of plain data, so the live widget, the static fallback
saved in notebooks (GitHub, nbviewer, nbconvert, stale widgets after a restart) and the
tests all share one renderer.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spalloc.models import JobSnapshot

__all__ = [
    "JobView",
    "Table",
    "final_view",
    "format_duration",
    "format_time",
    "job_html",
    "job_text",
    "job_view",
    "table_html",
    "table_text",
    "traffic_text",
]

# Each at least 5:1 against the white badge text (WCAG AA asks 4.5:1).
_STATE_COLOURS = {
    "queued": "#1565c0",
    "power": "#9a5b00",
    "ready": "#2e7d32",
    "destroyed": "#c62828",
    "unknown": "#616161",
}


@dataclass(frozen=True)
class JobView:
    """What a rendering shows of a job: derived once from a snapshot, then only displayed."""

    job_id: int | None
    owner: str | None
    state: str
    power: str
    reason: str | None
    machine: str | None
    boards: tuple[tuple[int, int, int], ...]
    hostname: str | None
    width: int | None
    height: int | None
    connections: tuple[tuple[int, int, str], ...]
    keepalive: float | None
    health: str
    created_at: float | None
    ready_at: float | None = None
    queued_for: float | None = None
    emulated: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)
    #: the boards the job held before it ended (its final view lists them)
    held: tuple[tuple[int, int, int], ...] = ()
    #: True in the static view that replaces a live output for good
    final: bool = False
    #: True while the hostnames are the loopback addresses of the job's proxy bridge
    bridged: bool = False
    #: what the bridge carried: "12 packets (340 B) out, ..." ("" without a bridge)
    traffic: str = ""
    #: why the bridge cannot carry traffic now ("" when it can)
    bridge_error: str = ""

    @property
    def live(self) -> bool:
        """True while the job holds or waits for boards."""
        return self.state in ("queued", "power", "ready")


def _power_text(state: str, power: Any) -> str:
    if state in ("destroyed", "unknown", "queued") or power is None:
        return ""
    if state == "power":
        return "powering on" if power else "powering off"
    return "on" if power else "off"


def _health(snapshot: JobSnapshot) -> str:
    """Keepalive health as a category, so a routine keepalive does not change the rendering."""
    if not snapshot.state.is_live:
        return "stopped"
    if not snapshot.connected:
        return "disconnected, reconnecting"
    if snapshot.keepalive_error:
        return f"failing: {snapshot.keepalive_error}"
    if snapshot.keepalive is None:
        return "none (the job never expires)"
    return "ok"


def traffic_text(traffic: Any) -> str:
    """A bridge's counters (:class:`~spalloc.models.BridgeTraffic`) in one short line."""
    if traffic is None:
        return ""
    t = traffic
    return (
        f"{t.packets_out} packets ({t.bytes_out} B) out, {t.packets_in} packets "
        f"({t.bytes_in} B) in, {t.errors_out + t.errors_in} errors"
        + (f", {t.reconnects} reconnections" if t.reconnects else "")
    )


def job_view(
    snapshot: JobSnapshot,
    *,
    ready_at: float | None = None,
    queued_for: float | None = None,
    emulated: bool = False,
) -> JobView:
    """Build a :class:`JobView` from a job's :class:`~spalloc.models.JobSnapshot`."""
    state = snapshot.state.name
    connections = tuple(
        sorted((int(x), int(y), str(host)) for (x, y), host in (snapshot.connections or {}).items())
    )
    boards = tuple(sorted(tuple(int(c) for c in b) for b in snapshot.boards or ()))
    return JobView(
        job_id=snapshot.job_id,
        owner=snapshot.owner,
        state=state,
        power=_power_text(state, snapshot.power),
        reason=snapshot.reason,
        machine=snapshot.machine_name,
        boards=boards,  # type: ignore[arg-type]
        hostname=snapshot.hostname,
        width=snapshot.width,
        height=snapshot.height,
        connections=connections,
        keepalive=snapshot.keepalive,
        health=_health(snapshot),
        created_at=snapshot.start_time,
        ready_at=ready_at,
        queued_for=queued_for,
        emulated=emulated,
        bridged=snapshot.bridged,
        traffic=traffic_text(snapshot.traffic),
        bridge_error=snapshot.bridge_error or "",
    )


def final_view(view: JobView, reason: str) -> JobView:
    """The view that replaces a live output when it stops following the job.

    A job that ended says why; one still alive as far as we know (its destroy was not
    confirmed, or it is kept) is shown as ``unknown`` with ``reason``, never as live.
    """
    held = view.held or view.boards
    if view.state == "destroyed":
        return replace(view, held=held, final=True, reason=view.reason or reason, health="stopped")
    if view.live:
        note = f"{reason} This output no longer follows the job."
        return replace(
            view,
            state="unknown",
            power="",
            reason=note,
            held=held,
            final=True,
            health="not followed",
        )
    return replace(view, held=held, final=True, reason=view.reason or reason)


def format_time(stamp: float | None) -> str:
    """Local wall-clock time as ``YYYY-MM-DD HH:MM:SS`` (blank when unknown)."""
    if stamp is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def format_duration(seconds: float | None) -> str:
    """A short human duration: ``0.21 s``, ``42 s``, ``3 min 5 s``, ``2 h 4 min``."""
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.2f} s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def _size(view: JobView) -> str:
    if view.width is None or view.height is None:
        return ""
    return f"{view.width}\u00d7{view.height} chips"


def job_text(view: JobView) -> str:
    """One line of plain text, e.g. ``Job 7: ready, power on, 3 boards on m, 10.2.0.1 (...)``."""
    if not view.live:
        return _ended_text(view)
    parts = [view.state]
    if view.power:
        parts.append(f"power {view.power}")
    if view.boards:
        count = len(view.boards)
        parts.append(f"{count} board{'s' if count != 1 else ''} on {view.machine}")
    if view.hostname:
        parts.append(f"{view.hostname} ({_size(view)})")
    label = "Job" if view.job_id is not None else "Job (not created)"
    ident = f" {view.job_id}" if view.job_id is not None else ""
    if view.bridged:
        parts.append("bridged" + (f" ({view.traffic})" if view.traffic else ""))
    suffix = " [emulated]" if view.emulated else ""
    return f"{label}{ident}: {', '.join(parts)}{suffix}"


def _ended_title(view: JobView) -> str:
    ident = f"Job {view.job_id}" if view.job_id is not None else "Job"
    reason = (view.reason or "").rstrip(".")
    state = view.state if view.state != "unknown" or not view.final else "no longer followed"
    return f"{ident} \u2014 {state}" + (f": {reason}" if reason else "")


def _ended_text(view: JobView) -> str:
    held = view.held or view.boards
    text = _ended_title(view)
    if held:
        where = f" on {view.machine}" if view.machine else ""
        text += f"; it held {len(held)} board{'s' if len(held) != 1 else ''}{where}"
    return text + (" [emulated]" if view.emulated else "")


def _timing_rows(view: JobView) -> list[tuple[str, str]]:
    rows = [("Created", format_time(view.created_at))]
    if view.queued_for is not None:
        rows.append(("Time queued", format_duration(view.queued_for)))
    if view.ready_at is not None and view.state == "ready":
        rows.append(("Ready since", format_time(view.ready_at)))
    return [row for row in rows if row[1]]


def _badge(state: str) -> str:
    colour = _STATE_COLOURS.get(state, "#616161")
    return (
        f'<span style="color:white;background:{colour};border-radius:3px;'
        f'padding:0 5px;font-weight:bold">{html.escape(state)}</span>'
    )


def job_html(view: JobView) -> str:
    """A self-contained HTML summary of a job (no scripts, inline styles only)."""
    esc = html.escape
    title = f"Job {view.job_id}" if view.job_id is not None else "Job"
    if not view.live:
        title = _ended_title(view)
    if view.emulated:
        title += " (emulated boards)"
    rows: list[tuple[str, str]] = [
        ("Owner", esc(view.owner or "")),
        ("Machine", esc(view.machine or "")),
        ("State", _badge(view.state)),
    ]
    rows.append(("Power", esc(view.power)))
    rows.extend((esc(label), esc(value)) for label, value in view.extra.items())
    rows.extend((label, esc(value)) for label, value in _timing_rows(view))
    shown_boards = view.boards if view.live else (view.held or view.boards)
    if shown_boards:
        boards = ", ".join(f"({x}, {y}, {z})" for x, y, z in shown_boards)
        label = "Boards" if view.live else "Boards held"
        rows.append((label, f"{len(shown_boards)}: {esc(boards)}"))
    if view.hostname and view.live:
        rows.append(("Hostname", f"<code>{esc(view.hostname)}</code>"))
        rows.append(("Size", esc(_size(view))))
    if view.bridged and view.live:
        note = "through the job's websocket proxy"
        if view.bridge_error:
            note += f"; {view.bridge_error}"
        rows.append(("Bridged", esc(note)))
        rows.append(("Traffic", esc(view.traffic)))
    if view.live:
        keepalive = "None" if view.keepalive is None else f"{view.keepalive:g} s"
        rows.append(("Keepalive", f"{esc(keepalive)}; {esc(view.health)}"))
    # Rows that only a live view may show; a disconnected front end hides them.
    live_only = (
        {"State", "Power", "Keepalive", "Ready since", "Bridged", "Traffic", *view.extra}
        if view.live
        else set()
    )
    live_class = ' class="spalloc-live-row"'
    body = "".join(
        f"<tr{live_class if label in live_only else ''}>"
        # A fixed label width: the values do not jump as rows come and go between states.
        f'<th style="text-align:right;padding:1px 1em 1px 0;width:7.5em">{label}</th>'
        f'<td style="text-align:left;padding:1px 0">{value}</td></tr>'
        for label, value in rows
        if value
    )
    # Inline styles only: notebook front ends strip <style> and classes mean nothing on GitHub.
    # The line height undoes the tall rows ipywidgets gives HTML widgets.
    kind = "spalloc-job" + (" spalloc-job-live" if view.live else " spalloc-job-ended")
    parts = [
        f'<div class="{kind}" style="line-height:1.4"><strong>{esc(title)}</strong>',
        f'<table style="border-collapse:collapse">{body}</table>',
    ]
    if view.live and (len(view.connections) > 1 or (view.connections and view.hostname is None)):
        parts.append("<div><strong>Ethernet-connected chips</strong></div>")
        parts.append(
            table_html(("x", "y", "hostname"), [(x, y, host) for x, y, host in view.connections])
        )
    parts.append("</div>")
    return "".join(parts)


def table_html(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, caption: str | None = None
) -> str:
    """An escaped HTML table; ``None`` cells are blank, numbers are right-aligned."""
    esc = html.escape
    head = "".join(
        f'<th style="text-align:left;padding:1px 0.8em 1px 0">{esc(str(h))}</th>' for h in headers
    )
    lines = []
    for row in rows:
        cells = []
        for cell in row:
            align = (
                "right" if isinstance(cell, int | float) and not isinstance(cell, bool) else "left"
            )
            text = "" if cell is None else str(cell)
            cells.append(f'<td style="text-align:{align};padding:1px 0.8em 1px 0">{esc(text)}</td>')
        lines.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (
        f'<table class="spalloc-table" style="border-collapse:collapse">{cap}'
        f"<thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(lines)}</tbody></table>"
    )


def table_text(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The same table as aligned plain text (numbers right-aligned, two-space gutters)."""
    texts = [["" if c is None else str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in texts:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    out = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for raw, row in zip(rows, texts, strict=True):
        cells = []
        for i, cell in enumerate(row):
            numeric = isinstance(raw[i], int | float) and not isinstance(raw[i], bool)
            cells.append(cell.rjust(widths[i]) if numeric else cell.ljust(widths[i]))
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


@dataclass(frozen=True)
class Table:
    """A titled table that displays as HTML in a notebook and as text elsewhere."""

    headers: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    title: str | None = None

    def _repr_html_(self) -> str:
        title = f"<strong>{html.escape(self.title)}</strong>" if self.title else ""
        return f"<div>{title}{table_html(self.headers, self.rows)}</div>"

    def __str__(self) -> str:
        text = table_text(self.headers, self.rows)
        return f"{self.title}\n{text}" if self.title else text

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))
