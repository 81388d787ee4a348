"""Command-by-command behaviour (PROTOCOL.md §2) on Appendix A's machines."""

from __future__ import annotations

import pytest

from tests.conftest import NO_INFO, UNKNOWN, destroyed, wait_for

NO_MACHINE = "Cancelled: No suitable machines available."


@pytest.fixture
def emu(emulator_factory, appendix_machines):
    return emulator_factory(appendix_machines, power_delay=0.0, free_delay=0.01)


@pytest.fixture
def client(emu, connect):
    return connect(emu)


def info(client, job_id):
    wait_for(lambda: client.call("get_job_state", job_id)["state"] == 3)
    return client.call("get_job_machine_info", job_id)


def test_domain_error_texts_match_the_reference(client):
    assert client.error("create_job") == "owner must be specified for all jobs"
    assert client.error("create_job", owner=None) == "owner must be specified for all jobs"
    assert client.error("create_job", owner="x", machine="m", tags=["default"]) == (
        "Only one of machine and tags may be specified for a job."
    )
    assert client.error("create_job", 4, owner="x", min_ratio=-0.5) == (
        "Aspect ratio cannot be negative."
    )
    for args in ([], [1], [0, 0, 1]):
        assert client.error("create_job", *args, owner="x", require_torus=True) == (
            "require_torus must be False when allocating boards."
        )
    assert client.error("where_is", machine="m", x=0) == "Invalid arguments: machine, x"
    assert client.error("where_is") == "Invalid arguments: "


@pytest.mark.parametrize(
    ("args", "kwargs", "fragment"),
    [
        ([], {"owner": "x", "foo": 1}, "foo"),
        ([1, 2, 3, 4], {"owner": "x"}, "positional"),
        (["2"], {"owner": "x"}, "number"),
        ([True], {"owner": "x"}, "number"),
        ([1, "a"], {"owner": "x"}, "height"),
        ([1.5, 1], {"owner": "x"}, "whole"),
        ([0, 0, "z"], {"owner": "x"}, "z"),
        ([], {"owner": "x", "keepalive": "7"}, "keepalive"),
        ([], {"owner": "x", "keepalive": True}, "keepalive"),
        ([], {"owner": "x", "tags": 5}, "tags"),
        ([], {"owner": "x", "tags": [1]}, "tags"),
        ([], {"owner": "x", "machine": 5}, "machine"),
        ([4], {"owner": "x", "min_ratio": "0.5"}, "min_ratio"),
        ([4], {"owner": "x", "max_dead_boards": "1"}, "max_dead_boards"),
        ([4], {"owner": "x", "max_dead_links": [1]}, "max_dead_links"),
        ([4], {"owner": "x", "require_torus": "yes"}, "require_torus"),
    ],
)
def test_bad_create_job_arguments_use_no_id(client, args, kwargs, fragment):
    assert fragment in client.error("create_job", *args, **kwargs)
    assert client.call("create_job", owner="ok") == 1  # no ID was used, no zombie left
    assert [job["job_id"] for job in client.call("list_jobs")] == [1]


def test_nulls_mean_defaults(client):
    # What the official clients send when the caller sets nothing (quirk 5 FIX).
    nulls = {
        "keepalive": 5.0,
        "machine": None,
        "tags": None,
        "min_ratio": None,
        "max_dead_boards": None,
        "max_dead_links": None,
        "require_torus": None,
    }
    single = client.call("create_job", owner="c", **nulls)
    several = client.call("create_job", 4, owner="c", **nulls)
    assert info(client, single)["boards"] == [[0, 0, 0]]
    assert len(info(client, several)["boards"]) == 6
    listed = client.call("list_jobs")
    assert listed[0]["kwargs"] == {k: v for k, v in nulls.items() if k != "keepalive"}


def test_positional_nulls_stop_the_argument_list(client):
    assert len(info(client, client.call("create_job", None, None, None, owner="x"))["boards"]) == 1
    assert len(info(client, client.call("create_job", 2, None, owner="x"))["boards"]) == 3


def test_owner_is_stored_as_text(client):
    client.call("create_job", owner=123)
    client.call("create_job", owner="")
    assert [job["owner"] for job in client.call("list_jobs")] == ["123", ""]


def test_tags_as_a_string_is_one_tag(client):
    job = client.call("create_job", owner="x", tags="single")  # quirk 16 FIX
    assert info(client, job)["machine_name"] == "board"
    assert client.call("list_jobs")[0]["kwargs"] == {"tags": ["single"]}


def test_machine_ignores_tags_and_empty_tags_match_everything(client):
    assert (
        info(client, client.call("create_job", owner="x", machine="board"))["machine_name"]
        == "board"
    )
    assert info(client, client.call("create_job", owner="x", tags=[]))["machine_name"] == "m"


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ([13], {}),
        ([0], {}),
        ([-1], {}),
        ([3, 1], {}),
        ([0, 0], {}),
        ([0, 1], {}),
        ([2, 0, 0], {}),
        ([0, 0, 3], {}),
        ([], {"machine": "nope"}),
        ([], {"tags": ["nope"]}),
        ([1, 1], {"require_torus": True}),
        ([12], {"tags": ["dead"], "max_dead_boards": 0}),
        ([2, 2], {"tags": ["dead"], "max_dead_links": 1}),
        ([1, 1, 1], {"machine": "md"}),
    ],
)
def test_impossible_requests_are_cancelled_at_once(client, args, kwargs):
    job = client.call("create_job", *args, owner="x", **kwargs)
    assert client.call("get_job_state", job) == destroyed(NO_MACHINE)
    assert client.call("list_jobs") == []


@pytest.mark.parametrize(
    ("args", "kwargs", "size", "count"),
    [
        ([], {}, (8, 8), 1),
        ([1], {}, (8, 8), 1),
        ([1.0], {}, (8, 8), 1),
        ([2], {}, (16, 16), 3),
        ([3], {}, (16, 16), 3),
        ([1.5], {}, (16, 16), 3),
        ([4], {}, (24, 16), 6),
        ([6], {}, (24, 16), 6),
        ([4], {"min_ratio": 1.0}, (24, 24), 12),
        ([4], {"min_ratio": 0.5}, (24, 16), 6),
        ([7], {}, (24, 24), 12),
        ([12], {"require_torus": True}, (24, 24), 12),
        ([1, 1], {}, (16, 16), 3),
        ([2, 1], {}, (24, 16), 6),
        ([1, 2], {}, (16, 24), 6),
        ([2, 2], {}, (24, 24), 12),
        ([0, 1, 2], {}, (8, 8), 1),
        ([11], {"tags": ["dead"], "max_dead_boards": 0}, (24, 24), 11),
        ([2, 2], {"tags": ["dead"], "max_dead_links": 2}, (24, 24), 11),
    ],
)
def test_allocation_sizes_on_an_empty_machine(client, args, kwargs, size, count):
    job = client.call("create_job", *args, owner="x", **kwargs)
    result = info(client, job)
    assert (result["width"], result["height"]) == size
    assert len(result["boards"]) == len(result["connections"]) == count


def test_unknown_job_ids_are_never_errors(client):
    for job_id in (9999, "abc", 1.5, None):
        assert client.call("get_job_state", job_id) == UNKNOWN
        assert client.call("get_job_machine_info", job_id) == NO_INFO
        for command in (
            "job_keepalive",
            "power_on_job_boards",
            "power_off_job_boards",
            "destroy_job",
        ):
            assert client.call(command, job_id) is None
    assert "job_id" in client.error("get_job_state", [1])


def test_job_ids_match_by_equality(client):
    job = client.call("create_job", owner="x")
    assert client.call("get_job_state", 1.0)["state"] in (2, 3)
    assert client.call("get_job_state", True)["state"] in (2, 3)
    assert client.call("get_job_state", "1") == UNKNOWN
    assert job == 1


def test_queued_job_has_no_machine_info_and_ignores_power(client):
    whole = client.call("create_job", 2, 2, owner="x")
    queued = client.call("create_job", owner="y", machine="m")
    assert client.call("get_job_machine_info", queued) == NO_INFO
    assert client.call("power_on_job_boards", queued) is None
    state = client.call("get_job_state", queued)
    assert (state["state"], state["power"]) == (1, None)
    client.call("destroy_job", queued)
    assert client.call("get_job_state", queued)["reason"] == "Cancelled: "
    assert client.call("get_job_state", whole)["state"] in (2, 3)


def test_destroying_twice_keeps_the_first_reason(client):
    job = client.call("create_job", owner="x")
    client.call("destroy_job", job, reason="first")
    client.call("destroy_job", job, reason="second")
    assert client.call("get_job_state", job)["reason"] == "first"
    assert "reason" in client.error("destroy_job", job, 5)


def test_power_requests_add_up(emulator_factory, appendix_machines, connect):
    emu = emulator_factory(appendix_machines, power_delay=0.2)
    client = connect(emu)
    job = client.call("create_job", owner="x")
    client.call("power_off_job_boards", job)
    client.call("power_on_job_boards", job)
    client.call("power_off_job_boards", job)
    state = client.call("get_job_state", job)
    assert (state["state"], state["power"]) == (2, False)
    wait_for(lambda: client.call("get_job_state", job)["state"] == 3)
    assert client.call("get_job_state", job)["power"] is False
    assert emu.board_power("m", (0, 0, 0)) is False


def test_boards_are_really_off_after_destroy(emu, client):
    job = client.call("create_job", 2, owner="x")
    boards = [tuple(b) for b in info(client, job)["boards"]]
    assert all(emu.board_power("m", b) for b in boards)
    assert not emu.board_power("m", (1, 1, 1))
    client.call("destroy_job", job)
    wait_for(lambda: not any(emu.board_power("m", b) for b in boards))
    with pytest.raises(KeyError):
        emu.board_power("nope", (0, 0, 0))


def test_list_machines_and_board_positions(client):
    assert [m["name"] for m in client.call("list_machines")] == ["m", "md", "board"]
    assert client.call("get_board_position", "m", 1, 1, 2) == [0, 0, 11]
    assert client.call("get_board_position", "m", 2, 0, 0) is None  # no wrapping here
    assert client.call("get_board_position", "md", 1, 1, 1) is None  # dead, no location
    assert client.call("get_board_position", "nope", 0, 0, 0) is None
    assert client.call("get_board_position", "md", 0, 0, 0) == [1, 0, 0]
    assert client.call("get_board_at_position", "m", 0, 0, 11) == [1, 1, 2]
    assert client.call("get_board_at_position", "m", 0, 0, 12) is None
    assert client.call("get_board_at_position", "md", 1, 0, 5) == [0, 1, 2]
    assert "x" in client.error("get_board_position", "m", "a", 0, 0)


def test_where_is_forms(client):
    job = client.call("create_job", 0, 0, 1, owner="x")
    info(client, job)
    # §5.8: a single board on (0,0,1); on a 2x2 machine job chip (7,7) is chip (15,11).
    assert client.call("where_is", job_id=job, chip_x=7, chip_y=7) == {
        "machine": "m",
        "logical": [0, 0, 1],
        "physical": [0, 0, 1],
        "chip": [15, 11],
        "board_chip": [7, 7],
        "job_id": job,
        "job_chip": [7, 7],
    }
    assert client.call("where_is", job_id=job, chip_x=5, chip_y=0) is None
    assert client.call("where_is", job_id=job, chip_x=0, chip_y=4) is None
    assert client.call("where_is", job_id=9999, chip_x=0, chip_y=0) is None
    # Logical coordinates wrap and z outside {1, 2} behaves as 0 (quirk 18, matched).
    wrapped = client.call("where_is", machine="m", x=2, y=0, z=3)
    assert wrapped["logical"] == [0, 0, 0] and wrapped["job_id"] is None
    assert client.call("where_is", machine="m", chip_x=26, chip_y=18)["board_chip"] == [6, 2]
    assert client.call("where_is", machine="nope", x=0, y=0, z=0) is None
    assert client.call("where_is", machine="m", cabinet=9, frame=0, board=0) is None
    assert client.call("where_is", machine="md", chip_x=16, chip_y=20)["logical"] == [1, 1, 2]
    assert client.call("where_is", machine="md", x=1, y=1, z=1) is None


def test_subscriptions_accept_anything_hashable(client):
    assert client.call("notify_job", "abc") is None
    assert client.call("no_notify_machine", "zzz") is None
    assert "job_id" in client.error("notify_job", [1])
    assert "machine_name" in client.error("notify_machine", {"a": 1})
