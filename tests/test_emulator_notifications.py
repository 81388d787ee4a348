"""Notifications over real sockets: subscription rules (PROTOCOL.md §4.2), merging per tick,
jobs before machines, replies before the notifications of the same tick."""

from __future__ import annotations

import json

import pytest

from tests.conftest import wait_for


@pytest.fixture
def emu(emulator_factory, appendix_machines):
    return emulator_factory(appendix_machines, power_delay=0.0, free_delay=0.01)


def changed(messages, kind):
    found = set()
    for message in messages:
        found.update(message.get(kind, []))
    return found


def test_fresh_connection_gets_nothing(emu, connect):
    watcher, actor = connect(emu), connect(emu)
    watcher.call("version")
    actor.call("create_job", owner="x")
    assert watcher.wait_notifications(0.2) == []


def test_replies_come_before_the_notifications_of_their_tick(emu, connect):
    client = connect(emu)
    client.send_raw(
        b'{"command":"notify_job"}\n'
        b'{"command":"create_job","kwargs":{"owner":"x","machine":"board"}}\n'
        b'{"command":"get_job_state","args":[1]}\n'
    )
    first = [client.read() for _ in range(3)]
    assert [next(iter(m)) for m in first] == ["return", "return", "return"]
    assert 1 in changed(client.wait_notifications(0.2), "jobs_changed")


def test_jobs_changed_comes_before_machines_changed(emu, connect):
    watcher, actor = connect(emu), connect(emu)
    watcher.call("notify_job")
    watcher.call("notify_machine")
    actor.call("create_job", owner="x", keepalive=None)
    first = watcher.read()
    second = watcher.read()
    assert first == {"jobs_changed": [1]}
    assert second == {"machines_changed": ["m"]}


def test_changes_of_one_tick_are_merged(emu, connect):
    watcher, actor = connect(emu), connect(emu)
    actor.call("create_job", owner="a", machine="m")
    whole = actor.call("create_job", 2, 2, owner="b")
    board = actor.call("create_job", 1, 1, 2, owner="c", machine="m")
    watcher.call("notify_job")
    watcher.call("notify_machine")
    watcher.wait_notifications(0.1)
    # Cancelling the queued head lets the board start in the same tick.
    actor.call("destroy_job", whole)
    message = watcher.read()
    assert sorted(message["jobs_changed"]) == [whole, board]
    assert watcher.read() == {"machines_changed": ["m"]}


def test_specific_subscriptions(emu, connect):
    watcher, actor = connect(emu), connect(emu)
    watcher.call("notify_job", 2)  # does not exist yet: accepted
    watcher.call("notify_machine", "board")
    actor.call("create_job", owner="x", machine="m", keepalive=None)  # job 1 on m
    actor.call("create_job", owner="y", machine="board", keepalive=None)  # job 2 on board
    got = watcher.wait_notifications(0.2)
    assert changed(got, "jobs_changed") == {2}
    assert changed(got, "machines_changed") == {"board"}
    watcher.call("no_notify_job", 2)
    actor.call("destroy_job", 2)
    got = watcher.wait_notifications(0.2)
    assert changed(got, "jobs_changed") == set()
    assert changed(got, "machines_changed") == {"board"}


def test_unsubscribing_one_job_while_watching_all_does_nothing(emu, connect):
    watcher, actor = connect(emu), connect(emu)
    watcher.call("notify_job")
    watcher.call("notify_job", 7)
    watcher.call("no_notify_job", 1)
    actor.call("create_job", owner="x")
    assert changed(watcher.wait_notifications(0.2), "jobs_changed") == {1}
    watcher.call("no_notify_job")  # removes everything, 7 included
    actor.call("destroy_job", 1)
    for _ in range(6):
        actor.call("create_job", owner="x", machine="board")
    assert watcher.wait_notifications(0.2) == []


def test_machine_subscription_all_then_none(emu, connect):
    watcher, actor = connect(emu), connect(emu)
    watcher.call("notify_machine", None)
    actor.call("create_job", owner="x", tags=["dead"])
    assert changed(watcher.wait_notifications(0.2), "machines_changed") == {"md"}
    watcher.call("no_notify_machine")
    actor.call("create_job", owner="x", machine="board")
    assert watcher.wait_notifications(0.2) == []


def test_ready_and_destroy_and_expiry_are_announced(emulator_factory, appendix_machines, connect):
    emu = emulator_factory(appendix_machines, power_delay=0.05)
    watcher, actor = connect(emu), connect(emu)
    watcher.send_raw(
        json.dumps({"command": "notify_job", "kwargs": {"job_id": None}}).encode() + b"\n"
    )
    assert watcher.reply() == {"return": None}
    job = actor.call("create_job", owner="x", keepalive=0.2)
    seen = []

    def expired():
        seen.extend(watcher.wait_notifications(0.05))
        return emu.retired_jobs().get(job) == "Job timed out."

    wait_for(expired)
    seen.extend(watcher.wait_notifications(0.1))
    # Created+allocated, ready, destroyed: at least two separate notifications.
    assert all(m == {"jobs_changed": [job]} for m in seen) and len(seen) >= 2


def test_a_notification_can_precede_a_reply(emulator_factory, appendix_machines, connect):
    emu = emulator_factory(appendix_machines, power_delay=0.1)
    client = connect(emu)
    client.call("notify_job")
    client.call("create_job", owner="x")
    wait_for(lambda: emu.jobs()[0].state == 3)
    # The "ready" notification was sent before this command's reply.
    assert client.call("version") == "5.0.0"
    assert {"jobs_changed": [1]} in client.notifications
