"""The job controller driven directly with a fake clock: keepalive expiry to the deadline,
no late revival, retired jobs forgotten by count, quarantine, power delay and FIFO queues."""

from __future__ import annotations

import pytest

from spalloc.emulator._where import board_with_ip
from spalloc.emulator.controller import CommandError, Controller, Session, UnknownCommand
from spalloc.geometry import Machine, default_board_locations, standard_ip
from spalloc.states import JobState
from tests.conftest import V1_COMMANDS, make_appendix_machines


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def make(clock, machines=None, **kwargs):
    return Controller(
        machines or make_appendix_machines(), clock=clock, wall_clock=lambda: 1.7e9, **kwargs
    )


def call(controller, command, *args, **kwargs):
    return controller.handle(SESSION, command, list(args), kwargs)


SESSION = Session(host="127.0.0.9")


def state(controller, job):
    return call(controller, "get_job_state", job)


def test_unknown_commands_and_arity(clock):
    controller = make(clock)
    with pytest.raises(UnknownCommand):
        call(controller, "nope")
    with pytest.raises(CommandError, match="positional"):
        call(controller, "list_jobs", 1)
    assert controller.is_command("where_is") and not controller.is_command("_retire")
    for name in ("_cmd_version", "cmd_version", "_create", "poll", "handle", ""):
        assert not controller.is_command(name)
        with pytest.raises(UnknownCommand):
            call(controller, name)


#: PROTOCOL.md's 17 commands.
COMMANDS = set(V1_COMMANDS)


def test_the_commands_are_the_cmd_methods(clock):
    controller = make(clock)
    methods = {n.removeprefix("_cmd_") for n in dir(Controller) if n.startswith("_cmd_")}
    assert methods == COMMANDS
    assert all(controller.is_command(name) for name in COMMANDS)


def test_a_new_cmd_method_is_a_command_without_being_listed(clock):
    class Extended(Controller):
        def _cmd_echo(self, session, /, text, loud=False):
            return text.upper() if loud else text

    controller = Extended(make_appendix_machines(), clock=clock)
    assert controller.is_command("echo")
    assert call(controller, "echo", "hi") == "hi"
    assert call(controller, "echo", "hi", loud=True) == "HI"
    with pytest.raises(CommandError, match="echo"):
        call(controller, "echo")
    assert call(controller, "version") == "5.0.0"


def test_keepalive_expires_at_its_deadline_and_is_never_revived(clock):
    controller = make(clock)
    queued_blocker = call(controller, "create_job", 2, 2, owner="a", keepalive=None)
    allocated = call(controller, "create_job", machine="board", owner="b", keepalive=1.0)
    queued = call(controller, "create_job", 2, 2, owner="c", keepalive=1.0)
    assert state(controller, queued)["state"] == JobState.queued
    clock.now += 0.5
    call(controller, "job_keepalive", allocated)  # refreshed: deadline now t=1.5
    clock.now += 0.49
    controller.poll()
    assert {j.job_id for j in controller.jobs()} == {queued_blocker, allocated, queued}
    clock.now += 0.02  # past the queued job's deadline, before the refreshed one
    controller.poll()
    assert {j.job_id for j in controller.jobs()} == {queued_blocker, allocated}
    clock.now += 0.6  # past the refreshed deadline; nobody ran poll() yet...
    call(controller, "job_keepalive", allocated)  # ...and this late refresh revives nothing
    assert state(controller, allocated) == {
        "state": 4,
        "power": None,
        "keepalive": None,
        "reason": "Job timed out.",
        "start_time": None,
        "keepalivehost": None,
    }
    assert state(controller, queued)["reason"] == "Cancelled: Job timed out."
    assert state(controller, queued_blocker)["state"] == JobState.ready


def test_zero_keepalive_is_destroyed_before_the_next_command(clock):
    controller = make(clock)
    job = call(controller, "create_job", owner="a", machine="board", keepalive=0)
    assert state(controller, job)["reason"] == "Job timed out."
    job = call(controller, "create_job", 2, 2, owner="a", keepalive=None)
    queued = call(controller, "create_job", 2, 2, owner="a", keepalive=-1)
    assert state(controller, queued)["reason"] == "Cancelled: Job timed out."
    assert state(controller, job)["state"] == JobState.ready


def test_refreshing_commands_record_the_host(clock):
    controller = make(clock)
    job = call(controller, "create_job", owner="a", keepalive=10)
    other = Session(host="10.0.0.7")
    for command in (
        "job_keepalive",
        "get_job_machine_info",
        "power_on_job_boards",
        "power_off_job_boards",
    ):
        clock.now += 5
        controller.handle(other, command, [job], {})
        assert call(controller, "list_jobs")[0]["keepalivehost"] == "10.0.0.7"
        refreshed = controller.handle(SESSION, "get_job_state", [job], {})
        assert refreshed["keepalivehost"] == "127.0.0.9"
    # Commands that do not refresh: the job expires 10 s after the last refresh.
    clock.now += 9.9
    call(controller, "where_is", job_id=job, chip_x=0, chip_y=0)
    call(controller, "list_jobs")
    call(controller, "notify_job", job)
    clock.now += 0.2
    controller.poll()
    assert controller.jobs() == []


def test_retired_jobs_are_forgotten_by_count(clock):
    controller = make(clock, max_retired_jobs=3)
    jobs = [call(controller, "create_job", owner="a") for _ in range(4)]
    for job in jobs[:3]:
        call(controller, "destroy_job", job, f"r{job}")
    assert [state(controller, j)["reason"] for j in jobs[:3]] == ["r1", "r2", "r3"]
    call(controller, "destroy_job", jobs[3])
    assert state(controller, jobs[0])["state"] == JobState.unknown
    assert [state(controller, j)["state"] for j in jobs[1:]] == [4, 4, 4]
    assert list(controller.retired()) == jobs[1:]


def test_power_delay_then_quarantine_before_boards_are_reused(clock):
    controller = make(clock, power_delay=0.5, free_delay=1.0)
    first = call(controller, "create_job", 2, 2, owner="a", machine="m")
    assert state(controller, first)["state"] == JobState.power
    assert not controller.board_power("m", (1, 1, 2))
    clock.now += 0.5
    assert state(controller, first)["state"] == JobState.ready
    assert controller.board_power("m", (1, 1, 2))
    call(controller, "destroy_job", first)
    second = call(controller, "create_job", 2, 2, owner="b", machine="m")
    clock.now += 0.49
    assert state(controller, second)["state"] == JobState.queued
    assert controller.board_power("m", (1, 1, 2))  # power-off still running
    clock.now += 0.02
    assert state(controller, second)["state"] == JobState.queued
    assert not controller.board_power("m", (1, 1, 2))  # off, now in quarantine
    clock.now += 0.98
    assert state(controller, second)["state"] == JobState.queued
    clock.now += 0.02
    assert state(controller, second)["state"] == JobState.power
    assert controller.next_deadline() == pytest.approx(clock.now + 0.5 - 0.01, abs=0.02)


def test_quarantine_end_is_not_announced_unless_a_job_starts(clock):
    controller = make(clock, free_delay=1.0)
    job = call(controller, "create_job", owner="a")
    call(controller, "destroy_job", job)
    assert controller.take_changes() == ([job], ["m"])
    clock.now += 2
    controller.poll()
    assert controller.take_changes() == ([], [])


def test_fifo_per_machine_and_overtaking_across_machines(clock):
    def triad(name: str) -> Machine:
        locations = default_board_locations(1, 1)
        return Machine(
            name=name,
            tags=frozenset({"t"}),
            width=1,
            height=1,
            board_locations=locations,
            board_ips={
                b: standard_ip(f"127.70.{ord(name)}.0", *loc) for b, loc in locations.items()
            },
        )

    controller = make(clock, [triad("A"), triad("B"), triad("C")])
    jobs = [call(controller, "create_job", 1, 1, owner="x", tags=["t"]) for _ in range(3)]
    assert [j.machine for j in controller.jobs()] == ["A", "B", "C"]
    any_machine = call(controller, "create_job", 1, 1, owner="y", tags=["t"])
    only_b = call(controller, "create_job", owner="z", machine="B")
    assert state(controller, only_b)["state"] == JobState.queued
    call(controller, "destroy_job", jobs[2])  # C frees up after quarantine
    clock.now += 1
    controller.poll()
    # The any-machine job moved to C; the B-only job still waits for B.
    info = {j.job_id: (j.state, j.machine) for j in controller.jobs()}
    assert info[any_machine] == (JobState.ready, "C")
    assert info[only_b] == (JobState.queued, None)
    call(controller, "destroy_job", jobs[1])
    clock.now += 1
    controller.poll()
    assert {j.job_id: j.machine for j in controller.jobs()}[only_b] == "B"


def test_queued_head_blocks_a_job_that_would_fit(clock):
    controller = make(clock, power_delay=0.5)
    call(controller, "create_job", owner="a")
    whole = call(controller, "create_job", 2, 2, owner="b")
    board = call(controller, "create_job", 1, 1, 2, owner="c", machine="m")
    assert state(controller, board)["state"] == JobState.queued
    controller.take_changes()
    call(controller, "destroy_job", whole)
    assert state(controller, board)["state"] == JobState.power
    jobs, machines = controller.take_changes()
    assert sorted(jobs) == [whole, board] and machines == ["m"]


def test_restart_resets_keepalive_timers(clock):
    controller = make(clock)
    job = call(controller, "create_job", owner="a", keepalive=1.0)
    clock.now += 0.9
    controller.reset_keepalives()
    clock.now += 0.9
    controller.poll()
    assert [j.job_id for j in controller.jobs()] == [job]


def test_cancelled_jobs_behind_a_stuck_head_do_not_pile_up(clock):
    controller = make(clock)
    call(controller, "create_job", owner="a", machine="m", keepalive=None)
    call(controller, "create_job", 2, 2, owner="stuck", keepalive=None)  # never fits
    for _ in range(1000):
        job = call(controller, "create_job", owner="b", machine="m")
        call(controller, "destroy_job", job)
    assert sum(len(q) for q in controller._queues.values()) < 200
    assert [j.owner for j in controller.jobs()] == ["a", "stuck"]


def test_a_jobs_connections_and_boards_by_ip(clock):
    controller = make(clock)
    job_id = call(controller, "create_job", 2, owner="me")
    job = controller.find_job(job_id)
    assert job is not None and job.machine is not None and job.allocation is not None
    connections = job.connections()
    assert len(connections) == len(job.allocation.boards) == 3
    info = call(controller, "get_job_machine_info", job_id)
    assert info["connections"] == [[list(chip), ip] for chip, ip in connections]
    found = {board_with_ip(job.machine, ip) for _, ip in connections}
    assert found == set(job.allocation.boards)
    assert board_with_ip(job.machine, "192.0.2.1") is None
    queued = controller.find_job(call(controller, "create_job", 2, 2, owner="me"))
    assert queued is not None and queued.state is JobState.queued
    assert queued.connections() == []
