"""The job widget without a browser: trait values, button clicks, comm traffic, HTML renderer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import comm
import pytest
from comm.base_comm import BaseComm

from spalloc.client import ProtocolClient
from spalloc.emulator import Emulator
from spalloc.job import Job
from spalloc.models import JobSnapshot
from spalloc.states import JobState
from spalloc_nb._html import Table, format_duration, job_html, job_text, job_view, table_text
from spalloc_nb._registry import registry
from spalloc_nb.widgets.job import JobWidget
from tests.conftest import wait_for

OWNER = "widget-test@example.org"


class RecordingComm(BaseComm):
    """A comm that keeps every message the kernel side would publish."""

    messages: list[dict[str, Any]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.messages = []
        super().__init__(*args, **kwargs)

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        self.messages.append({"type": msg_type, "data": data})


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> list[RecordingComm]:
    made: list[RecordingComm] = []

    def create(*args: Any, **kwargs: Any) -> RecordingComm:
        new = RecordingComm(*args, **kwargs)
        made.append(new)
        return new

    monkeypatch.setattr(comm, "create_comm", create)
    return made


def sent(comms: list[RecordingComm]) -> list[dict[str, Any]]:
    return [m for c in comms for m in c.messages if m["type"] == "comm_msg"]


@pytest.fixture
def make_job(emulator: Emulator) -> Iterator[Callable[..., Job]]:
    made: list[Job] = []

    def make(*args: int, **kwargs: Any) -> Job:
        kwargs.setdefault("keepalive", 60.0)
        job = Job(
            *args,
            hostname=emulator.host,
            port=emulator.port,
            owner=OWNER,
            config_filenames=[],
            **kwargs,
        )
        made.append(job)
        return job

    yield make
    for job in made:
        job.destroy("test over")


@pytest.fixture
def other(emulator: Emulator) -> Iterator[ProtocolClient]:
    """A second client: changes made through it are server-side changes for the widget."""
    client = ProtocolClient(emulator.host, emulator.port, timeout=5.0)
    client.connect()
    yield client
    client.close()


def test_traits_follow_the_job(make_job: Callable[..., Job], comms: list[RecordingComm]) -> None:
    job = make_job(3)
    job.wait_until_ready(timeout=5)
    widget = JobWidget(job)
    assert widget.job_id == job.id
    assert widget.state == "ready" and widget.power == "on" and widget.health == "ok"
    assert widget.reason is None
    html = widget._summary.value
    assert str(job.hostname) in html and str(job.machine_name) in html
    assert "Ethernet-connected chips" in html  # three boards: the IP table is shown
    assert not widget._power_off.disabled and not widget._destroy.disabled
    widget.close()


def test_server_side_changes_reach_the_traits(
    make_job: Callable[..., Job],
    comms: list[RecordingComm],
    other: ProtocolClient,
    capfd: pytest.CaptureFixture[str],
) -> None:
    job = make_job(1)
    job.wait_until_ready(timeout=5)
    widget = JobWidget(job)
    changed_on: list[str] = []
    widget.observe(lambda _c: changed_on.append(threading.current_thread().name), "power")
    other.call("power_off_job_boards", job.id)
    wait_for(lambda: widget.power == "off")
    assert changed_on and threading.main_thread().name not in changed_on
    assert any(
        m["data"].get("state", {}).get("value", "").count("off")
        for m in sent(comms)
        if isinstance(m["data"], dict)
    )
    other.call("destroy_job", job.id, reason="taken away")
    wait_for(lambda: widget.state == "destroyed")
    assert widget.reason == "taken away"
    assert widget._power_on.disabled and widget._destroy.disabled
    assert "taken away" in widget._summary.value
    # Background threads only assigned traits: nothing was printed.
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    widget.close()


def test_buttons_act_on_the_boards(
    make_job: Callable[..., Job], emulator: Emulator, comms: list[RecordingComm]
) -> None:
    job = make_job(1)
    job.wait_until_ready(timeout=5)
    assert job.boards is not None and job.machine_name is not None
    board = (job.boards[0][0], job.boards[0][1], job.boards[0][2])
    widget = JobWidget(job)
    widget._power_off.click()
    wait_for(lambda: widget.state == "ready" and widget.power == "off")
    # The click was acknowledged as soon as the kernel took it up.
    states = [m["data"]["state"] for m in sent(comms) if m["data"].get("method") == "update"]
    assert {"busy": "Powering off\u2026"} in [
        {k: v for k, v in st.items() if k == "busy"} for st in states
    ]
    assert emulator.board_power(job.machine_name, board) is False
    widget._power_on.click()
    wait_for(lambda: widget.state == "ready" and widget.power == "on")
    assert emulator.board_power(job.machine_name, board) is True
    acks = widget._summary.ack
    widget._reset.click()
    wait_for(lambda: widget.state == "ready" and widget.power == "on")
    # Feedback even where a reset changes nothing visible: it is said to be done.
    assert "Reset: done at " in widget._message.value
    assert widget._summary.ack == acks + 1 and widget._summary.busy == ""
    widget.close()


def test_destroy_needs_confirmation(
    make_job: Callable[..., Job], emulator: Emulator, comms: list[RecordingComm]
) -> None:
    job = make_job(1)
    registry.add_job(job)
    widget = JobWidget(job)
    widget._destroy.click()
    assert widget._confirm.layout.display == "flex"
    assert job.id in {j.job_id for j in emulator.jobs()}
    widget._confirm_no.click()
    assert widget._confirm.layout.display == "none"
    assert job.id in {j.job_id for j in emulator.jobs()}
    widget._destroy.click()
    widget._confirm_yes.click()
    assert emulator.retired_jobs()[job.id] == "Destroyed from the notebook."
    assert widget.state == "destroyed" and not registry.owns(job)
    widget.close()


def test_failed_action_is_shown_in_the_widget(
    emulator_factory: Callable[..., Emulator], comms: list[RecordingComm]
) -> None:
    server = emulator_factory()
    job = Job(
        1,
        hostname=server.host,
        port=server.port,
        owner=OWNER,
        keepalive=60.0,
        timeout=0.5,
        reconnect_delay=0.2,
        config_filenames=[],
    )
    try:
        job.wait_until_ready(timeout=5)
        widget = JobWidget(job)
        server.stop()
        assert widget.power_off() is False
        assert "Power off failed" in widget._message.value
        wait_for(lambda: widget.health.startswith("disconnected"))
        widget.close()
    finally:
        job.destroy()


def test_no_comm_traffic_while_nothing_changes(
    make_job: Callable[..., Job], comms: list[RecordingComm], other: ProtocolClient
) -> None:
    # A short keepalive makes the Job refresh its snapshot every 0.15 s.
    job = make_job(1, keepalive=0.3)
    job.wait_until_ready(timeout=5)
    widget = JobWidget(job)
    first_ok = job.snapshot.last_keepalive_ok
    before = len(sent(comms))
    deadline = time.monotonic() + 5
    while job.snapshot.last_keepalive_ok == first_ok and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # several more keepalives
    assert job.snapshot.last_keepalive_ok != first_ok
    assert len(sent(comms)) == before
    other.call("power_off_job_boards", job.id)
    wait_for(lambda: widget.power == "off")
    assert len(sent(comms)) > before
    widget.close()


def test_mimebundle_has_three_renderings(
    make_job: Callable[..., Job], comms: list[RecordingComm]
) -> None:
    import spalloc_nb

    job = make_job(1)
    job.wait_until_ready(timeout=5)
    widget = spalloc_nb.job_widget(job)
    assert spalloc_nb.job_widget(job) is widget
    data = widget._repr_mimebundle_()
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == widget.model_id
    assert data["text/plain"].startswith(f"Job {job.id}: ready")
    assert data["text/html"].startswith('<div class="spalloc-job spalloc-job-live"')
    widget.close()


def test_close_stops_updates(
    make_job: Callable[..., Job], comms: list[RecordingComm], other: ProtocolClient
) -> None:
    job = make_job(1)
    job.wait_until_ready(timeout=5)
    widget = JobWidget(job)
    watcher = JobWidget(job)
    widget.close()
    other.call("power_off_job_boards", job.id)
    wait_for(lambda: watcher.power == "off")
    assert widget.power == "on"
    watcher.close()


# -- the static renderer ----------------------------------------------------------------


def snapshot(**changes: Any) -> JobSnapshot:
    values: dict[str, Any] = dict(
        job_id=7,
        owner="a <b>@example.org",
        state=JobState.ready,
        power=True,
        reason=None,
        keepalive=60.0,
        start_time=1_795_000_000.0,
        keepalivehost="127.0.0.1",
        machine_name="m",
        boards=((0, 0, 0), (0, 0, 1)),
        width=16,
        height=8,
        connections={(0, 0): "10.0.0.1", (4, 8): "10.0.0.2"},
        connected=True,
        last_keepalive_ok=1_795_000_030.0,
        keepalive_error=None,
    )
    values.update(changes)
    return JobSnapshot(**values)


def test_job_html_escapes_and_shows_the_ip_table() -> None:
    text = job_html(job_view(snapshot()))
    assert "a &lt;b&gt;@example.org" in text and "<b>@" not in text
    assert "<strong>Ethernet-connected chips</strong>" in text
    assert "10.0.0.2" in text and "16\u00d78 chips" in text
    assert "<script" not in text


def test_job_text_lines() -> None:
    assert (
        job_text(job_view(snapshot()))
        == "Job 7: ready, power on, 2 boards on m, 10.0.0.1 (16\u00d78 chips)"
    )
    destroyed = snapshot(
        state=JobState.destroyed, reason="Job timed out.", power=None, boards=None, connections=None
    )
    assert job_text(job_view(destroyed)) == "Job 7 \u2014 destroyed: Job timed out"
    assert "destroyed: Job timed out" in job_html(job_view(destroyed))
    queued = snapshot(state=JobState.queued, power=None, boards=None, connections=None)
    assert job_text(job_view(queued, emulated=True)) == "Job 7: queued [emulated]"


def test_health_is_a_category() -> None:
    assert job_view(snapshot()).health == "ok"
    assert job_view(snapshot(last_keepalive_ok=1.0)).health == "ok"
    assert job_view(snapshot(keepalive_error="timed out")).health == "failing: timed out"
    assert job_view(snapshot(connected=False)).health.startswith("disconnected")
    assert job_view(snapshot(keepalive=None)).health.startswith("none")
    assert job_view(snapshot(state=JobState.destroyed)).health == "stopped"


def test_tables_and_durations() -> None:
    assert format_duration(0.213) == "0.21 s"
    assert format_duration(42) == "42 s"
    assert format_duration(185) == "3 min 5 s"
    assert format_duration(7440) == "2 h 4 min"
    assert table_text(("ID", "Name"), [(7, "a"), (12, "bb")]) == "ID  Name\n 7  a\n12  bb"
    table = Table(("ID", "Name"), ((7, "<x>"),), "T")
    assert "&lt;x&gt;" in table._repr_html_() and str(table).startswith("T\nID")


def test_map_button_shows_the_board_map(
    make_job: Callable[..., Job], comms: list[RecordingComm]
) -> None:
    job = make_job(1)
    job.wait_until_ready(timeout=5)
    widget = JobWidget(job)
    board_map = widget.show_map()
    assert board_map is not None
    assert board_map.highlight_job == job.id
    wait_for(lambda: board_map.machine == job.machine_name and board_map.boards)
    widget.show_map(False)
    assert widget._map_box.children == ()
    widget.close()


def test_machine_summary_carries_a_live_map(
    make_job: Callable[..., Job], emulator: Emulator, comms: list[RecordingComm]
) -> None:
    import spalloc_nb

    job = make_job(1)
    job.wait_until_ready(timeout=5)
    summary = spalloc_nb.machine(str(job.machine_name), hostname=emulator.host, port=emulator.port)
    try:
        assert summary.board_map is not None
        data = summary._repr_mimebundle_()
        # The map is shown inside a one-child box (which the front end marks when the
        # kernel is gone).
        box = summary.board_map._box
        assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == box.model_id
        assert box.children == (summary.board_map,)
        assert f"A:{job.id}" in data["text/plain"] and "<pre>" not in data["text/html"]
        # The static picture is the live map's drawing: one hexagon per board, as SVG.
        assert data["text/html"].count("<polygon") == 24
        wait_for(lambda: any(j.get("id") == job.id for j in summary.board_map.jobs))
    finally:
        summary.board_map.close()


def test_a_queued_job_says_what_it_waits_for(
    make_job: Callable[..., Job], other: ProtocolClient, comms: list[RecordingComm]
) -> None:
    blocker = other.create_job(owner="hal", keepalive=60, machine="board1")
    first = make_job(machine="board1")
    second = make_job(machine="board1")
    try:
        widget = JobWidget(second)
        wait_for(lambda: "Waiting" in widget._summary.value)
        assert "free boards on board1; 1 queued job ahead (checked " in widget._summary.value
        assert first.state is JobState.queued and widget.state == "queued"
        widget.close()
    finally:
        other.destroy_job(blocker)
