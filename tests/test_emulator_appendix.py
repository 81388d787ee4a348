"""Replay PROTOCOL.md Appendix A against the emulator.

Every answer that does not depend on time is compared with the reference's (list orders are
compared as sets). Differences on purpose: ``version`` (5.0.0, quirk 1), the machine+tags
request uses no job ID (quirk 3), error texts of our own for arity errors (quirk 23), and
shorter delays (power 0.05 s, quarantine 0.1 s, keepalive 0.3 s) to keep the test quick.
"""

from __future__ import annotations

import pytest

from tests.conftest import NO_INFO, UNKNOWN, destroyed, wait_for


def canonical_info(info):
    """Machine info with its arbitrary-order lists turned into sets."""
    return dict(
        info,
        connections={(tuple(c), ip) for c, ip in info["connections"]},
        boards={tuple(b) for b in info["boards"]},
    )


def live_state(client, job_id):
    """A job's state read via list_jobs, which does not refresh its keepalive."""
    for entry in client.call("list_jobs"):
        if entry["job_id"] == job_id:
            return entry["state"]
    return None


@pytest.fixture
def session(emulator_factory, appendix_machines, connect):
    emulator = emulator_factory(appendix_machines, power_delay=0.05, free_delay=0.1)
    return emulator, connect(emulator), connect(emulator)


def test_appendix_a(session, connect):
    emulator, a, w = session
    assert a.call("version") == "5.0.0"
    assert w.call("notify_job") is None
    assert w.call("notify_machine") is None
    assert a.call("list_machines") == [
        {
            "name": "m",
            "tags": ["default"],
            "width": 2,
            "height": 2,
            "dead_boards": [],
            "dead_links": [],
        },
        {
            "name": "md",
            "tags": ["dead"],
            "width": 2,
            "height": 2,
            "dead_boards": [[1, 1, 1]],
            "dead_links": [[0, 0, 0, 2], [0, 0, 2, 5]],
        },
        {
            "name": "board",
            "tags": ["single"],
            "width": 1,
            "height": 1,
            "dead_boards": [[0, 0, 1], [0, 0, 2]],
            "dead_links": [],
        },
    ]

    # Rows 9-19: a single board, powering on then ready.
    assert a.call("create_job", owner="alice") == 1
    state = a.call("get_job_state", 1)
    assert state["state"] in (2, 3) and state["power"] is True
    assert (state["keepalive"], state["reason"], state["keepalivehost"]) == (
        60.0,
        None,
        "127.0.0.1",
    )
    assert isinstance(state["start_time"], float)
    wait_for(lambda: a.call("get_job_state", 1)["state"] == 3)
    assert emulator.board_power("m", (0, 0, 0)) is True
    assert a.call("get_job_machine_info", 1) == {
        "width": 8,
        "height": 8,
        "connections": [[[0, 0], "10.11.0.1"]],
        "machine_name": "m",
        "boards": [[0, 0, 0]],
    }

    # Rows 20-39: the same triad, then two triads, then a queued whole machine and a
    # free specific board queued behind it (strict FIFO per machine).
    assert a.call("create_job", 1, owner="alice") == 2
    assert a.call("create_job", 4, owner="bob", keepalive=None) == 3
    assert a.call("create_job", 2, 2, owner="carol", keepalive=None) == 4
    assert a.call("create_job", 0, 1, 2, machine="m", owner="dave", keepalive=None) == 5
    for job in (4, 5):
        state = a.call("get_job_state", job)
        assert (state["state"], state["power"], state["keepalive"]) == (1, None, None)

    # Row 41.
    assert canonical_info(a.call("get_job_machine_info", 3)) == canonical_info(
        {
            "width": 16,
            "height": 24,
            "connections": [
                [[8, 4], "10.11.0.57"],
                [[0, 12], "10.11.0.73"],
                [[4, 20], "10.11.0.89"],
                [[0, 0], "10.11.0.49"],
                [[4, 8], "10.11.0.65"],
                [[8, 16], "10.11.0.81"],
            ],
            "machine_name": "m",
            "boards": [[1, 0, 1], [1, 1, 0], [1, 1, 2], [1, 0, 0], [1, 0, 2], [1, 1, 1]],
        }
    )

    # Row 43 (start times and states that depend on timing left out).
    listed = a.call("list_jobs")
    assert [
        (
            e["job_id"],
            e["owner"],
            e["keepalive"],
            e["args"],
            e["kwargs"],
            e["allocated_machine_name"],
            e["keepalivehost"],
        )
        for e in listed
    ] == [
        (1, "alice", 60.0, [], {}, "m", "127.0.0.1"),
        (2, "alice", 60.0, [1], {}, "m", "127.0.0.1"),
        (3, "bob", None, [4], {}, "m", "127.0.0.1"),
        (4, "carol", None, [2, 2], {}, None, "127.0.0.1"),
        (5, "dave", None, [0, 1, 2], {"machine": "m"}, None, "127.0.0.1"),
    ]
    assert [e["boards"] and sorted(e["boards"]) for e in listed] == [
        [[0, 0, 0]],
        [[0, 0, 1]],
        [[1, 0, 0], [1, 0, 1], [1, 0, 2], [1, 1, 0], [1, 1, 1], [1, 1, 2]],
        None,
        None,
    ]
    assert [e["power"] for e in listed] == [True, True, True, None, None]

    # Rows 44-59: where_is in every form, board positions.
    assert a.call("where_is", job_id=3, chip_x=13, chip_y=14) is None
    j3_chip = {
        "machine": "m",
        "logical": [1, 1, 0],
        "physical": [0, 0, 9],
        "chip": [13, 14],
        "board_chip": [1, 2],
        "job_id": 3,
        "job_chip": [1, 14],
    }
    assert a.call("where_is", job_id=3, chip_x=1, chip_y=14) == j3_chip
    assert a.call("where_is", machine="m", chip_x=13, chip_y=14) == j3_chip
    assert a.call("where_is", machine="m", x=1, y=1, z=2) == {
        "machine": "m",
        "logical": [1, 1, 2],
        "physical": [0, 0, 11],
        "chip": [16, 20],
        "board_chip": [0, 0],
        "job_id": 3,
        "job_chip": [4, 20],
    }
    free_board = {
        "machine": "m",
        "logical": [0, 1, 0],
        "physical": [0, 0, 3],
        "chip": [0, 12],
        "board_chip": [0, 0],
        "job_id": None,
        "job_chip": None,
    }
    assert a.call("where_is", machine="m", cabinet=0, frame=0, board=3) == free_board
    assert a.call("where_is", machine="m", x=0, y=1, z=0) == free_board
    assert a.call("get_board_position", "m", 1, 1, 2) == [0, 0, 11]
    assert a.call("get_board_at_position", "m", 0, 0, 11) == [1, 1, 2]

    # Rows 60-73: power off (power reports the request), then on again.
    assert a.call("power_off_job_boards", 1) is None
    state = a.call("get_job_state", 1)
    assert state["state"] in (2, 3) and state["power"] is False
    wait_for(lambda: a.call("get_job_state", 1)["state"] == 3)
    assert a.call("get_job_state", 1)["power"] is False
    assert emulator.board_power("m", (0, 0, 0)) is False
    assert a.call("power_on_job_boards", 1) is None
    wait_for(lambda: a.call("get_job_state", 1)["state"] == 3)
    assert emulator.board_power("m", (0, 0, 0)) is True
    assert a.call("job_keepalive", 1) is None

    # Rows 74-84: cancelling the queued head lets the specific board start at once.
    assert a.call("destroy_job", 4, "not needed") is None
    assert a.call("get_job_state", 4) == destroyed("Cancelled: not needed")
    state = a.call("get_job_state", 5)
    assert state["state"] in (2, 3) and state["power"] is True
    assert a.call("get_job_machine_info", 5) == {
        "width": 8,
        "height": 8,
        "connections": [[[0, 0], "10.11.0.41"]],
        "machine_name": "m",
        "boards": [[0, 1, 2]],
    }

    # Rows 85-98: destroy with and without a reason.
    assert a.call("destroy_job", 1) is None
    assert a.call("destroy_job", 2, "finished") is None
    assert a.call("get_job_state", 1) == destroyed(None)
    assert a.call("get_job_state", 2) == destroyed("finished")
    assert a.call("get_job_machine_info", 1) == NO_INFO

    # Rows 99-126: a whole-machine torus waits for power-off plus quarantine.
    assert (
        a.call("create_job", 12, machine="m", require_torus=True, owner="erin", keepalive=None) == 6
    )
    assert a.call("destroy_job", 3) is None
    assert a.call("destroy_job", 5) is None
    assert a.call("get_job_state", 6)["state"] == 1
    wait_for(lambda: a.call("get_job_state", 6)["state"] == 3)
    assert canonical_info(a.call("get_job_machine_info", 6)) == canonical_info(
        {
            "width": 24,
            "height": 24,
            "connections": [
                [[20, 4], "10.11.0.57"],
                [[12, 12], "10.11.0.73"],
                [[0, 12], "10.11.0.25"],
                [[0, 0], "10.11.0.1"],
                [[16, 20], "10.11.0.89"],
                [[12, 0], "10.11.0.49"],
                [[4, 8], "10.11.0.17"],
                [[4, 20], "10.11.0.41"],
                [[16, 8], "10.11.0.65"],
                [[8, 4], "10.11.0.9"],
                [[20, 16], "10.11.0.81"],
                [[8, 16], "10.11.0.33"],
            ],
            "machine_name": "m",
            "boards": [
                [1, 0, 1],
                [1, 1, 0],
                [0, 1, 0],
                [0, 0, 0],
                [1, 1, 2],
                [1, 0, 0],
                [0, 0, 2],
                [0, 1, 2],
                [1, 0, 2],
                [0, 0, 1],
                [1, 1, 1],
                [0, 1, 1],
            ],
        }
    )

    # Rows 127-137: the faulty machine gives 11 boards at 24x24.
    assert a.call("destroy_job", 6) is None
    assert a.call("create_job", 2, 2, tags=["dead"], owner="f", keepalive=None) == 7
    wait_for(lambda: a.call("get_job_state", 7)["state"] == 3)
    assert canonical_info(a.call("get_job_machine_info", 7)) == canonical_info(
        {
            "width": 24,
            "height": 24,
            "connections": [
                [[20, 4], "10.13.5.57"],
                [[12, 12], "10.13.5.73"],
                [[0, 12], "10.13.5.25"],
                [[0, 0], "10.13.5.1"],
                [[16, 20], "10.13.5.89"],
                [[12, 0], "10.13.5.49"],
                [[4, 8], "10.13.5.17"],
                [[4, 20], "10.13.5.41"],
                [[16, 8], "10.13.5.65"],
                [[8, 4], "10.13.5.9"],
                [[8, 16], "10.13.5.33"],
            ],
            "machine_name": "md",
            "boards": [
                [1, 0, 1],
                [1, 1, 0],
                [0, 1, 0],
                [0, 0, 0],
                [1, 1, 2],
                [1, 0, 0],
                [0, 0, 2],
                [0, 1, 2],
                [1, 0, 2],
                [0, 0, 1],
                [0, 1, 1],
            ],
        }
    )

    # Rows 138-146: an impossible request is cancelled at once, yet gets an ID.
    assert a.call("destroy_job", 7) is None
    assert a.call("create_job", 12, tags=["dead"], max_dead_boards=0, owner="f") == 8
    assert a.call("get_job_state", 8) == destroyed("Cancelled: No suitable machines available.")

    # Rows 147-159: max_dead_links=0 avoids the triad with the dead link pair.
    assert (
        a.call("create_job", 1, 1, tags=["dead"], max_dead_links=0, owner="f", keepalive=None) == 9
    )
    wait_for(lambda: a.call("get_job_state", 9)["state"] == 3)
    assert canonical_info(a.call("get_job_machine_info", 9)) == canonical_info(
        {
            "width": 16,
            "height": 16,
            "connections": [[[4, 8], "10.13.5.41"], [[0, 0], "10.13.5.25"], [[8, 4], "10.13.5.33"]],
            "machine_name": "md",
            "boards": [[0, 1, 2], [0, 1, 0], [0, 1, 1]],
        }
    )
    assert a.call("destroy_job", 9) is None
    assert a.call("where_is", machine="md", x=1, y=1, z=1) is None

    # Rows 162-170: keepalive expiry (0.3 s here instead of 1 s), never refreshed.
    assert a.call("create_job", machine="board", owner="g", keepalive=0.3) == 10
    wait_for(lambda: live_state(a, 10) is None)
    assert a.call("get_job_state", 10) == destroyed("Job timed out.")

    # Rows 171-186: errors.
    assert a.error("create_job", 2) == "owner must be specified for all jobs"
    assert a.error("create_job", owner="h", tags=["x"], machine="m", keepalive=None) == (
        "Only one of machine and tags may be specified for a job."
    )
    assert a.call("get_job_state", 11) == UNKNOWN  # no zombie (quirk 3 FIX)
    assert a.call("get_job_state", 9999) == UNKNOWN
    assert "positional" in a.error("version", 1)
    assert w.call("no_notify_job") is None
    assert w.call("no_notify_machine") is None

    # Every job and machine was announced to W at some point.
    seen_jobs: set[int] = set()
    seen_machines: set[str] = set()
    for message in w.wait_notifications(0.2):
        seen_jobs.update(message.get("jobs_changed", []))
        seen_machines.update(message.get("machines_changed", []))
    assert seen_jobs == set(range(1, 11))
    assert seen_machines == {"m", "md", "board"}

    # Rows 187-190: bad input closes the connection.
    bad = connect(emulator)
    bad.send("no_such_command")
    assert bad.read() is None
    bad = connect(emulator)
    bad.send_raw(b'{"command": "version"\n')
    assert bad.read() is None
