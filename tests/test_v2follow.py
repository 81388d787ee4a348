"""Following a job over spalloc v2 when the long-poll and the server do not line up: a
long-poll that reaches the server after the change it should report, and a server that
answers every long-poll at once (it ignores ``wait=true``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from spalloc._deadline import deadline_of
from spalloc.service import JobRequest, _v2follow, open_service
from spalloc.service.v2 import V2Service
from tests._v2 import running_v2_server
from tests.conftest import job_request

WAIT = 5.0


def one_board() -> JobRequest:
    return job_request(1, owner="follow")


def open_alice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **options: Any
) -> Iterator[V2Service]:
    with running_v2_server(tmp_path / "v2", machines=None, power_delay=0.0, **options) as server:
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_path))
        alice = server.users["alice"]
        service = open_service(
            server.base_url, None, timeout=WAIT, user=alice.name, password=alice.password
        )
        assert isinstance(service, V2Service)
        service.connect(deadline_of(WAIT))
        try:
            yield service
        finally:
            service.close()


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[V2Service]:
    yield from open_alice(tmp_path, monkeypatch)


@pytest.fixture
def impatient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[V2Service]:
    """A service on a server whose long-polls answer at once."""
    yield from open_alice(tmp_path, monkeypatch, wait_limit=0.0)


def test_a_power_change_is_reported_when_the_long_poll_reaches_the_server_after_it(
    service: V2Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The long-poll is held back until the power change is done: on arriving, the server waits
    # for the next change (up to 30 s), so the long-poll alone would not report this one.
    powered = threading.Event()
    job_doc = V2Service._job_doc

    def late_long_poll(
        self: V2Service, job_id: int, deadline: float | None, *, wait: bool = False
    ) -> Any:
        if wait:
            powered.wait(WAIT)
        return job_doc(self, job_id, deadline, wait=wait)

    monkeypatch.setattr(V2Service, "_job_doc", late_long_poll)
    changed: list[int] = []
    seen = threading.Event()

    def note(ids: Sequence[int]) -> None:
        changed.extend(ids)
        seen.set()

    service.on_job_changed(note)
    job_id = service.create_job(one_board(), deadline_of(WAIT))
    service.send_fetch(job_id, deadline_of(WAIT), follow=True).wait()
    service.set_power(job_id, False, deadline_of(WAIT))
    powered.set()
    assert seen.wait(WAIT) and changed == [job_id]
    assert service.wait_for_change(WAIT)


def test_a_server_ignoring_wait_is_polled_slowly_and_only_changes_are_reported(
    impatient: V2Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What counts as answered at once, raised from 50 ms so that a loaded machine's slow
    # answers cannot pass for woken long-polls (test_the_judge_of_a_long_poll covers _FAST).
    monkeypatch.setattr(_v2follow, "_FAST", 1.0)
    polls: list[str] = []
    json = V2Service._json

    def counted(self: V2Service, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("poll"):
            polls.append(path)
        return json(self, method, path, *args, **kwargs)

    monkeypatch.setattr(V2Service, "_json", counted)
    jobs: list[int] = []
    machines: list[str] = []
    impatient.on_job_changed(jobs.extend)
    impatient.on_machine_changed(machines.extend)
    job_id = impatient.create_job(one_board(), deadline_of(WAIT))
    impatient.send_fetch(job_id, deadline_of(WAIT), follow=True).wait()
    impatient.follow_machines(deadline_of(WAIT), "m4x2")
    # Each follow answers at once, unchanged: after _IGNORED such answers, one poll per
    # _POLL_RETRY s. Unpaced, this would be hundreds of polls.
    time.sleep(2 * _v2follow._POLL_RETRY)
    job_polls = sum(path.startswith("srv/spalloc/jobs/") for path in polls)
    machine_polls = len(polls) - job_polls
    # Twice the count on a quiet machine (a slow answer starts the count again).
    most = 2 * (_v2follow._IGNORED + 3)
    assert 0 < job_polls <= most and 0 < machine_polls <= most
    assert len(jobs) < most and len(machines) < most


def test_the_judge_of_a_long_poll() -> None:
    judge = _v2follow._Judge({"a": 1})
    now = time.monotonic()
    quiet = now - _v2follow._QUIET_POLL - 1
    assert judge.changed({"a": 2}, now)  # a new document
    assert not judge.changed({"a": 2}, quiet)  # the longest wait, nothing new
    assert judge.changed({"a": 2}, now - 1)  # woken early: a change not in the document
    # Answered at once, the same, again and again: ignoring wait; only new documents count.
    answers = [judge.changed({"a": 2}, time.monotonic()) for _ in range(_v2follow._IGNORED + 2)]
    assert answers[: _v2follow._IGNORED - 1] == [True] * (_v2follow._IGNORED - 1)
    assert answers[_v2follow._IGNORED - 1 :] == [False] * 3
    assert judge.ignoring
    assert judge.changed({"a": 3}, time.monotonic())
    assert judge.changed({"a": 3}, now - 1)  # the count started again
    assert not judge.ignoring
