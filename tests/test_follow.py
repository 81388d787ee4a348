"""The follower's timetable (spalloc.follow.Plan) on a fake clock, and the thread on a real one."""

from __future__ import annotations

import threading

import pytest

from spalloc.follow import Follower, Plan


def test_beats_every_interval_from_the_end_of_the_last() -> None:
    plan = Plan(interval=1.5, reconnect_delay=5.0, now=100.0)
    assert plan.idle_wait(100.0) == 1.5 and not plan.beat_due(101.0)
    assert plan.beat_due(101.5)
    plan.beaten(101.7)  # the beat took 0.2 s
    assert plan.idle_wait(102.0) == pytest.approx(1.2)


def test_no_interval_means_no_beat() -> None:
    plan = Plan(interval=None, reconnect_delay=5.0, now=0.0)
    assert plan.idle_wait(0.0) is None and not plan.beat_due(1e9)
    plan.reconnected(10.0, ok=True)
    assert plan.idle_wait(10.0) is None


def test_a_lost_connection_is_replaced_at_once_then_after_the_delay() -> None:
    plan = Plan(interval=1.5, reconnect_delay=5.0, now=0.0)
    assert plan.reconnect_wait(2.25) == 0.0  # a stall noticed: try now, not 5 s later
    plan.reconnected(2.26, ok=True)
    assert plan.beat_due(2.26)  # and beat at once on the new connection


def test_failed_attempts_wait_the_delay() -> None:
    plan = Plan(interval=1.5, reconnect_delay=5.0, now=0.0)
    assert plan.reconnect_wait(1.0) == 0.0
    plan.reconnected(1.0, ok=False)
    assert plan.reconnect_wait(1.0) == 5.0
    plan.reconnected(6.0, ok=False)
    assert plan.reconnect_wait(6.0) == 5.0
    plan.reconnected(11.0, ok=True)
    # Working again for longer than the delay: the next loss is retried at once.
    assert plan.reconnect_wait(30.0) == 0.0


def test_a_server_that_drops_every_connection_is_not_hammered() -> None:
    plan = Plan(interval=None, reconnect_delay=5.0, now=0.0)
    waits = []
    now = 0.0
    for _ in range(6):  # connect works, the connection drops 0.1 s later, again and again
        wait = plan.reconnect_wait(now)
        waits.append(wait)
        now += wait
        plan.reconnected(now, ok=True)
        now += 0.1
    assert waits[0] == 0.0 and all(w == 5.0 for w in waits[1:])


def test_the_thread_merges_a_burst_of_changes_and_stops_at_once() -> None:
    refreshed = threading.Semaphore(0)
    calls: list[str] = []
    gate = threading.Event()

    def refresh() -> None:
        calls.append("refresh")
        refreshed.release()
        gate.wait(5.0)  # hold the first refresh while more changes arrive

    follower = Follower(
        "test-follower",
        None,
        5.0,
        beat=lambda: calls.append("beat"),
        refresh=refresh,
        reconnect=lambda: calls.append("reconnect"),
        is_connected=lambda: True,
    )
    follower.start()
    try:
        follower.changed()
        assert refreshed.acquire(timeout=5.0)
        for _ in range(50):
            follower.changed()  # a burst while the first refresh runs
        gate.set()
        assert refreshed.acquire(timeout=5.0)
        assert not refreshed.acquire(timeout=0.2)  # the burst cost one refresh
        assert calls == ["refresh", "refresh"]
    finally:
        follower.stop(timeout=5.0)
    assert not follower.alive
