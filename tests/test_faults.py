"""Fault injection on real loopback sockets: a server that stops answering, a peer that stops
reading, and a connection frozen without FIN or RST (NAT timeout, suspended VM).

The bounds checked here are the documented ones (``destroy()`` waits at most the Job's timeout,
``call(timeout=...)`` at most its timeout), with slack for a loaded machine; each scenario
would take far longer (or hang) if the bound were not kept.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from spalloc import Job, JobState, ProtocolClient, ProtocolError, ProtocolTimeoutError
from spalloc.emulator import Emulator
from spalloc.exceptions import ServerConnectionError, SpallocError
from tests._proxy import FreezingProxy
from tests.conftest import LineClient

pytestmark = pytest.mark.slow

# Scheduling slack on a loaded two-core machine; every scenario's unbounded time is ≥ 10 s.
SLACK = 2.0


@pytest.fixture
def freezer(emulator: Emulator) -> Iterator[FreezingProxy]:
    proxy = FreezingProxy(emulator.address)
    yield proxy
    proxy.close()


def job_state(emulator: Emulator, job_id: int) -> JobState:
    with LineClient(emulator.address) as raw:
        return JobState(raw.call("get_job_state", job_id)["state"])


def test_destroy_keeps_its_bound_while_a_refresh_waits_on_a_silent_server(
    emulator: Emulator, freezer: FreezingProxy
) -> None:
    job = Job(
        1,
        hostname=freezer.host,
        port=freezer.port,
        owner="me",
        keepalive=20.0,
        timeout=2.0,
        config_filenames=[],
    )
    job.wait_until_ready(timeout=5.0)
    freezer.freeze()
    # A refresh that waits (in the old code, holding the lock destroy() needs) for 30 s.
    blocked = threading.Thread(target=lambda: _quietly(job.refresh, 30.0), daemon=True)
    blocked.start()
    time.sleep(0.3)
    started = time.monotonic()
    job.destroy("bye")
    took = time.monotonic() - started
    assert took < 2.0 + SLACK, f"destroy() took {took:.1f} s against a bound of 2 s"
    assert job.snapshot.state is JobState.destroyed
    assert job.snapshot.keepalive_error and "not confirmed" in job.snapshot.keepalive_error
    blocked.join(5.0)


def _quietly(fn: Any, *args: Any, **kwargs: Any) -> None:
    with contextlib.suppress(SpallocError):
        fn(*args, **kwargs)


def test_call_with_a_large_request_to_a_peer_that_never_reads() -> None:
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(1)
    client = ProtocolClient("127.0.0.1", sink.getsockname()[1], timeout=1.0)
    try:
        client.connect()
        conn, _ = sink.accept()  # accepted, never read
        errors: list[BaseException] = []

        def other_caller() -> None:
            try:
                client.call("version", timeout=1.0)
            except SpallocError as exc:
                errors.append(exc)

        started = time.monotonic()
        with pytest.raises(ProtocolTimeoutError) as caught:
            client.call("create_job", "x" * 8_000_000, timeout=1.0)
        took = time.monotonic() - started
        assert took < 1.0 + SLACK, f"call(timeout=1) took {took:.1f} s"
        assert "not reading" in str(caught.value)
        assert isinstance(caught.value.__cause__, TimeoutError)
        # The half-sent request cost the connection; nobody else is left hanging on it.
        thread = threading.Thread(target=other_caller)
        thread.start()
        thread.join(1.0 + SLACK)
        assert not thread.is_alive() and len(errors) == 1
        assert isinstance(errors[0], ProtocolError) and not client.connected
        conn.close()
    finally:
        client.close()
        sink.close()


def test_a_second_caller_is_bounded_by_its_own_timeout_behind_a_stuck_send() -> None:
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(1)
    client = ProtocolClient("127.0.0.1", sink.getsockname()[1], timeout=None)
    try:
        client.connect()
        conn, _ = sink.accept()
        stuck = threading.Thread(
            target=lambda: _quietly(client.call, "create_job", "x" * 8_000_000, timeout=5.0),
            daemon=True,
        )
        stuck.start()
        time.sleep(0.3)  # the big send now holds the write lock
        started = time.monotonic()
        with pytest.raises(ProtocolTimeoutError):
            client.call("version", timeout=0.5)
        assert time.monotonic() - started < 0.5 + SLACK
        stuck.join(5.0 + SLACK)
        conn.close()
    finally:
        client.close()
        sink.close()


def test_connect_failure_is_in_the_tree_and_still_an_oserror() -> None:
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))
    port = unused.getsockname()[1]
    unused.close()  # nothing listens there now
    client = ProtocolClient("127.0.0.1", port, timeout=2.0)
    with pytest.raises(ServerConnectionError) as caught:
        client.connect()
    error = caught.value
    assert isinstance(error, OSError) and isinstance(error, ConnectionError)
    assert isinstance(error, ProtocolError) and isinstance(error, SpallocError)
    assert f"127.0.0.1:{port}" in str(error) and (error.host, error.port) == ("127.0.0.1", port)
    assert isinstance(error.__cause__, ConnectionRefusedError)


def test_waiters_woken_by_a_lost_connection_see_its_cause() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = ProtocolClient("127.0.0.1", listener.getsockname()[1], timeout=5.0)
    try:
        client.connect()
        conn, _ = listener.accept()
        pending = client.submit("version")
        conn.close()  # the server goes away with the request unanswered
        with pytest.raises(ServerConnectionError) as lost:
            pending.result(5.0)
        assert isinstance(lost.value.__cause__, ServerConnectionError)
        # Closed with a request unread, so a reset or a close, depending on timing.
        assert f"127.0.0.1:{listener.getsockname()[1]}" in str(lost.value)
    finally:
        client.close()
        listener.close()


# The moments of a keepalive period at which the connection freezes, as fractions of the
# period between two beats (keepalive/2): just after a beat, midway, just before the next one.
@pytest.mark.parametrize("moment", [0.05, 0.5, 0.95])
def test_a_frozen_connection_does_not_cost_the_job(
    emulator: Emulator, freezer: FreezingProxy, moment: float
) -> None:
    keepalive = 3.0
    # reconnect_delay is the default (5 s): longer than the whole keepalive.
    job = Job(
        1,
        hostname=freezer.host,
        port=freezer.port,
        owner="me",
        keepalive=keepalive,
        timeout=5.0,
        config_filenames=[],
    )
    try:
        job.wait_until_ready(timeout=5.0)
        assert job.id is not None
        beats: list[float] = []
        job.add_state_listener(lambda j: beats.append(j.snapshot.last_keepalive_ok or 0.0))
        # Line the freeze up with the keepalive thread's beats.
        first = len(set(beats))
        for _ in range(200):
            if len(set(beats)) > first:
                break
            time.sleep(0.02)
        time.sleep(moment * keepalive / 2)
        freezer.freeze()
        time.sleep(2.5 * keepalive)  # well past the server's deadline for the frozen one
        assert job_state(emulator, job.id) is JobState.ready
        assert job.snapshot.connected and freezer.accepted >= 2
        assert job.state is JobState.ready
    finally:
        job.destroy()
