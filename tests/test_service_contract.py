"""The contract of :class:`spalloc.service.Service`, run against every implementation with the
same tests (v1 over TCP, v2 over HTTPS) on a real emulator over loopback.

Where v2 differs the tests take the common ground: keepalives of 30-300 s (all v2 accepts), and
a connection loss seen while a job is followed (v2 has no standing connection: a loss shows
on a request, such as the follow long-poll).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from spalloc._deadline import deadline_of
from spalloc.emulator import Emulator
from spalloc.exceptions import (
    JobDestroyedError,
    ProtocolError,
    ServerConnectionError,
    SpallocServerException,
)
from spalloc.service import JobRequest, Service, open_service
from spalloc.states import JobState
from tests._v2 import long_polls, running_v2_server
from tests.conftest import job_request

WAIT = 5.0


def request(*args: int, keepalive: float | None = 60.0, **changes: Any) -> JobRequest:
    return job_request(*args, owner="contract", keepalive=keepalive, **changes)


@pytest.fixture(params=["v1", "v1light", "v2"])
def opened(
    request: pytest.FixtureRequest,
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Service, Emulator]]:
    if request.param in ("v1", "v1light"):
        service = open_service(
            emulator.host, emulator.port, timeout=WAIT, light=request.param == "v1light"
        )
        service.connect(deadline_of(WAIT))
        yield service, emulator
        service.close()
        return
    # The default machines (as the v1 emulator's), served over HTTPS too.
    with running_v2_server(
        tmp_path / "v2", machines=None, power_delay=0.0, free_delay=0.01
    ) as server:
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_path))
        alice = server.users["alice"]
        service = open_service(
            server.base_url, None, timeout=WAIT, user=alice.name, password=alice.password
        )
        service.connect(deadline_of(WAIT))
        yield service, server.emulator
        service.close()


def machine_poll_held(emulator: Emulator, name: str) -> None:
    """Over v2, wait until the emulator holds the long-poll of machine *name* (its document
    does not show allocations: a change made before the long-poll arrives is reported only
    with a later one). Over v1, nothing to wait for."""
    long_polls(emulator, lambda rest: rest._machine_waiters.get(name))


def wait_state(service: Service, job_id: int, wanted: JobState) -> JobState:
    state = JobState.unknown
    for _ in range(200):
        state = service.send_fetch(job_id, deadline_of(WAIT)).wait().state.state
        if state is wanted:
            break
        threading.Event().wait(0.02)
    return state


def test_create_fetch_and_destroy(opened: tuple[Service, Emulator]) -> None:
    service, _ = opened
    assert service.connected
    calls: list[int] = []
    job_id = service.create_job(request(1), deadline_of(WAIT), meanwhile=lambda: calls.append(1))
    assert calls == [1]  # once, while the server works
    assert wait_state(service, job_id, JobState.ready) is JobState.ready
    status = service.send_fetch(job_id, deadline_of(WAIT), keepalive=True).wait()
    assert status.state.power is True and status.info is not None
    assert status.info.width == 8 and status.info.height == 8  # one board, in chips
    assert status.info.connections and (0, 0) in status.info.connections
    after = service.send_destroy(job_id, "contract over", deadline_of(WAIT)).wait()
    assert after.state is JobState.destroyed and after.reason == "contract over"


def test_power_and_where_is(opened: tuple[Service, Emulator]) -> None:
    service, _ = opened
    job_id = service.create_job(request(1), deadline_of(WAIT))
    wait_state(service, job_id, JobState.ready)
    service.set_power(job_id, False, deadline_of(WAIT))
    status = service.send_fetch(job_id, deadline_of(WAIT)).wait()
    assert status.state.state in (JobState.power, JobState.ready)
    found = service.where_is(deadline_of(WAIT), job_id=job_id, chip_x=0, chip_y=0)
    assert found is not None and found.job_id == job_id and found.job_chip == (0, 0)
    board = service.where_is(deadline_of(WAIT), machine="m4x2", x=1, y=0, z=0)
    assert board is not None and board.logical == (1, 0, 0)


def test_lists(opened: tuple[Service, Emulator]) -> None:
    service, _ = opened
    job_id = service.create_job(request(1), deadline_of(WAIT))
    assert [j.job_id for j in service.list_jobs(deadline_of(WAIT))] == [job_id]
    names = [m.name for m in service.list_machines(deadline_of(WAIT))]
    assert "m4x2" in names


def test_resume(opened: tuple[Service, Emulator]) -> None:
    service, _ = opened
    job_id = service.create_job(request(1, keepalive=45.0), deadline_of(WAIT))
    assert service.resume_job(job_id, deadline_of(WAIT)) == 45.0
    with pytest.raises(JobDestroyedError):
        service.resume_job(job_id + 1000, deadline_of(WAIT))
    service.send_destroy(job_id, None, deadline_of(WAIT)).wait()
    with pytest.raises(JobDestroyedError):
        service.resume_job(job_id, deadline_of(WAIT))


def test_a_refused_request_is_a_server_exception(opened: tuple[Service, Emulator]) -> None:
    service, _ = opened
    with pytest.raises(SpallocServerException):
        service.create_job(request(1, machine="m4x2"), deadline_of(WAIT))  # and tags


def test_following_a_job_reports_its_changes(opened: tuple[Service, Emulator]) -> None:
    service, _ = opened
    changed: list[int] = []
    seen = threading.Event()

    def note(ids: Sequence[int]) -> None:
        changed.extend(ids)
        seen.set()

    remove = service.on_job_changed(note)
    job_id = service.create_job(request(1), deadline_of(WAIT))
    service.send_fetch(job_id, deadline_of(WAIT), follow=True).wait()
    service.set_power(job_id, False, deadline_of(WAIT))
    # Listeners run on the thread that reads the server: the connection's own, or (a driver
    # on the caller's thread) inside wait_for_change.
    for _ in range(50):
        if seen.is_set() or not service.wait_for_change(0.1):
            break
    assert seen.wait(WAIT) and job_id in changed
    remove()


def test_losing_the_server_is_reported(opened: tuple[Service, Emulator]) -> None:
    service, emulator = opened
    lost: list[ProtocolError] = []
    gone = threading.Event()

    def note_lost(error: ProtocolError) -> None:
        lost.append(error)
        gone.set()

    service.on_connection_lost(note_lost)
    job_id = service.create_job(request(1), deadline_of(WAIT))
    service.send_fetch(job_id, deadline_of(WAIT), follow=True).wait()  # in use
    emulator.stop()
    with pytest.raises(ProtocolError):
        # A driver on the caller's thread notices when it next reads (bounded: 20 s, for
        # a loaded machine; a v2 long-poll notices when the server ends it).
        for _ in range(200):
            service.wait_for_change(0.1)
    assert gone.wait(WAIT) and isinstance(lost[0], ProtocolError)
    assert not service.connected
    with pytest.raises(ServerConnectionError):
        service.connect(deadline_of(WAIT))
    emulator.start()
    service.connect(deadline_of(WAIT))
    assert service.connected


def test_disconnect_and_close_are_idempotent(opened: tuple[Service, Emulator]) -> None:
    service, _ = opened
    service.disconnect()
    service.disconnect()
    assert not service.connected
    with pytest.raises(ProtocolError):
        service.list_jobs(deadline_of(WAIT))
    service.close()
    service.close()


def test_job_state_and_machine_info_alone(opened: tuple[Service, Emulator]) -> None:
    service, _ = opened
    job_id = service.create_job(request(1), deadline_of(WAIT))
    wait_state(service, job_id, JobState.ready)
    assert service.job_state(job_id, deadline_of(WAIT)).state is JobState.ready
    info = service.job_machine_info(job_id, deadline_of(WAIT))
    assert info is not None and info.boards is not None and len(info.boards) == 1
    assert service.job_state(job_id + 1000, deadline_of(WAIT)).state is JobState.unknown
    queued = service.create_job(request(4, 2), deadline_of(WAIT))  # the machine is taken
    assert service.job_machine_info(queued, deadline_of(WAIT)) is None


def test_following_and_waiting_for_changes(opened: tuple[Service, Emulator]) -> None:
    service, emulator = opened

    def polls_held() -> None:
        # Over v2 a change made before the long-polls reach the server is reported only when
        # they run out, 30 s on (the job list changes), or with a later change (the machine's
        # document does not).
        long_polls(emulator, lambda rest: rest._list_waiters)
        machine_poll_held(emulator, "m4x2")

    assert service.wait_for_change(0.05) is False  # nothing followed, nothing changes
    service.follow_jobs(deadline_of(WAIT))
    service.follow_machines(deadline_of(WAIT), "m4x2")
    polls_held()
    job_id = service.create_job(request(1), deadline_of(WAIT))
    assert service.wait_for_change(WAIT) is True
    polls_held()  # the long-polls the creation answered are sent again
    service.send_destroy(job_id, None, deadline_of(WAIT)).wait()
    assert service.wait_for_change(WAIT) is True


def test_board_locations(opened: tuple[Service, Emulator]) -> None:
    service, emulator = opened
    machine = next(m for m in emulator.machines if m.name == "m4x2")
    found = service.board_locations("m4x2", deadline_of(WAIT))
    assert dict(found) == {board: tuple(loc) for board, loc in machine.board_locations.items()}
    assert len(found) == 24
    assert dict(service.board_locations("no such machine", deadline_of(WAIT))) == {}


def test_board_locations_leave_dead_boards_out(opened: tuple[Service, Emulator]) -> None:
    service, emulator = opened
    board1 = next(m for m in emulator.machines if m.name == "board1")
    assert board1.dead_boards == {(0, 0, 1), (0, 0, 2)}
    found = service.board_locations("board1", deadline_of(WAIT))
    assert dict(found) == {(0, 0, 0): tuple(board1.board_locations[(0, 0, 0)])}


def test_following_a_machine_reports_its_changes(opened: tuple[Service, Emulator]) -> None:
    service, emulator = opened
    removed: list[str] = []
    kept: list[str] = []

    remove = service.on_machine_changed(lambda names: removed.extend(names))
    service.on_machine_changed(lambda names: kept.extend(names))
    service.follow_machines(deadline_of(WAIT), "m4x2")
    machine_poll_held(emulator, "m4x2")
    job_id = service.create_job(request(1, machine="m4x2", tags=None), deadline_of(WAIT))

    def wait_for(names: list[str], count: int) -> None:
        # Listeners run on the connection's thread, or inside wait_for_change (light driver).
        for _ in range(100):
            if len(names) >= count:
                return
            service.wait_for_change(0.05)
        pytest.fail(f"no machine change reported: {names}")

    wait_for(kept, 1)
    assert "m4x2" in kept and "m4x2" in removed
    remove()
    before, seen = len(removed), len(kept)
    machine_poll_held(emulator, "m4x2")
    service.send_destroy(job_id, None, deadline_of(WAIT)).wait()
    wait_for(kept, seen + 1)  # listeners are called in turn: the removed one would be first
    assert len(removed) == before


def test_an_unknown_job_reads_unknown(opened: tuple[Service, Emulator]) -> None:
    service, _ = opened
    missing = 12345
    status = service.send_fetch(missing, deadline_of(WAIT), keepalive=True).wait()
    assert status.state.state is JobState.unknown
    after = service.send_destroy(missing, "never was", deadline_of(WAIT)).wait()
    assert after.state is JobState.unknown


def test_a_sibling_is_a_second_connection_to_the_same_server(
    opened: tuple[Service, Emulator],
) -> None:
    service, _ = opened
    job_id = service.create_job(request(1), deadline_of(WAIT))
    twin = service.sibling()
    try:
        assert not twin.connected and twin.address == service.address
        twin.connect(deadline_of(WAIT))
        assert twin.job_state(job_id, deadline_of(WAIT)).state is not JobState.unknown
        twin.close()
        assert service.connected  # closing the sibling leaves this one alone
        assert service.job_state(job_id, deadline_of(WAIT)).state is not JobState.unknown
    finally:
        twin.close()
