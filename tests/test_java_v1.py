"""Job against a server answering like the Java server's v1 compat service (tests/_javav1.py):
resuming a job keeps it alive, an unknown job is JobDestroyedError, a job without boards reads
power None and reason None."""

from __future__ import annotations

import json
import time

import pytest

from spalloc import Job, JobDestroyedError, JobState
from tests._javav1 import JavaStyleServer
from tests.conftest import WAIT, LineClient, wait_for


def make_job(server: JavaStyleServer, keepalive: float) -> int:
    with LineClient((server.host, server.port)) as raw:
        raw.send("create_job", owner="someone", keepalive=keepalive)
        line = raw.read_line(WAIT)
    assert line is not None
    return int(json.loads(line)["return"])


def one_board_job(server: JavaStyleServer) -> Job:
    """A new one-board Job on *server*, owned by ``me``."""
    return Job(
        1,
        hostname=server.host,
        port=server.port,
        owner="me",
        config_filenames=[],
        keepalive=30.0,
        timeout=WAIT,
    )


@pytest.mark.slow
def test_a_resumed_job_stays_alive_as_long_as_the_job_lives() -> None:
    with JavaStyleServer() as server:
        job_id = make_job(server, keepalive=1.0)
        job = Job(
            resume_job_id=job_id,
            hostname=server.host,
            port=server.port,
            config_filenames=[],
            timeout=WAIT,
        )
        try:
            assert job.keepalive == 1.0  # the interval, not the time of the last keepalive
            job.wait_until_ready(timeout=WAIT)
            time.sleep(3.0)  # three intervals: only the resuming Job's keepalives save it
            assert server.job_state(job_id) == int(JobState.ready)
            assert job.snapshot.keepalive == 1.0
            beats = [r for r in server.received if r["command"] == "job_keepalive"]
            assert len(beats) >= 4
        finally:
            job.close()
        # Once the Job is closed nobody keeps it alive: the server lets it go.
        wait_for(lambda: server.job_state(job_id) == int(JobState.destroyed))


def test_resuming_an_unknown_job_is_job_destroyed_error() -> None:
    with JavaStyleServer() as server:
        with pytest.raises(JobDestroyedError, match="no such job") as caught:
            Job(
                resume_job_id=4242,
                hostname=server.host,
                port=server.port,
                config_filenames=[],
                timeout=WAIT,
            )
        assert caught.value.job_id == 4242


def test_jobs_without_boards_read_power_none_and_reason_none() -> None:
    with JavaStyleServer(ready_after=0.5) as server:
        job = one_board_job(server)
        try:
            assert job.state is JobState.queued
            assert job.power is None and job.reason is None
            job.wait_until_ready(timeout=WAIT)
            assert job.power is True and job.reason is None
        finally:
            job.destroy()
        assert job.state is JobState.destroyed
        assert job.power is None and job.reason is None
        destroyed_later = one_board_job(server)
        destroyed_later.destroy("done")
        assert destroyed_later.power is None and destroyed_later.reason == "done"
