"""The emulator's job controller: the 17 commands, job life cycles, queues and timers.

No sockets and no threads here. The server calls :meth:`Controller.handle` for each request,
:meth:`Controller.poll` whenever time may have passed (before every command, so an expired
job can never be revived by a late keepalive), :meth:`Controller.next_deadline` to know when
to wake up next, and :meth:`Controller.take_changes` once per loop "tick" to build the
notifications. Time comes from injectable clocks.
"""

from __future__ import annotations

import heapq
import inspect
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from spalloc.emulator._commands import (
    EMULATOR_VERSION,
    V1Commands,
    _hashable,
)
from spalloc.emulator._jobs import CommandError, Job, parse_create_job
from spalloc.emulator.allocator import Allocation, MachineAllocator
from spalloc.geometry import Board, Machine
from spalloc.states import JobState

__all__ = [
    "EMULATOR_VERSION",
    "CommandError",
    "Controller",
    "JobInfo",
    "Session",
    "UnknownCommand",
]

_TIMED_OUT = "Job timed out."
_CANCELLED_TIMED_OUT = "Cancelled: Job timed out."


class UnknownCommand(Exception):
    """The request names no command; the server closes the connection, like the reference."""


#: A protocol command ``<name>`` is the method ``_cmd_<name>``: the table is built from them.
_PREFIX = "_cmd_"

#: How :meth:`Controller.handle` calls one command: its signature without the session, the
#: bound method, the least number of positional arguments and the most (-1: always bind the
#: signature; -2: ``*args, **kwargs``, passed on as they are).
_Entry = tuple[inspect.Signature, Callable[..., Any], int, int]


def _command(method: Callable[..., Any]) -> _Entry:
    sig = inspect.signature(method)
    params = list(sig.parameters.values())[1:]  # drop the session
    plain = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    required = sum(1 for p in plain if p.default is p.empty)
    # Fast paths that skip Signature.bind: positional calls of commands with plain
    # parameters (most = their count) and anything for create_job (most = -2).
    if len(plain) == len(params):
        most = len(plain)
    elif [p.kind for p in params] == [
        inspect.Parameter.VAR_POSITIONAL,
        inspect.Parameter.VAR_KEYWORD,
    ]:
        most = -2
    else:
        most = -1
    return sig.replace(parameters=params), method, required, most


@dataclass(eq=False)
class Session:
    """Per-connection state: the peer's address and its notification subscriptions."""

    host: str = "127.0.0.1"
    all_jobs: bool = False
    jobs: set[Any] = field(default_factory=set)
    all_machines: bool = False
    machines: set[Any] = field(default_factory=set)

    def wants_job(self, job_id: int) -> bool:
        """True if this connection is subscribed to *job_id*."""
        return self.all_jobs or job_id in self.jobs

    def wants_machine(self, name: str) -> bool:
        """True if this connection is subscribed to machine *name*."""
        return self.all_machines or name in self.machines


@dataclass(frozen=True)
class JobInfo:
    """A read-only snapshot of a live job, for tests and tools."""

    job_id: int
    owner: str
    state: JobState
    power: bool | None
    keepalive: float | None
    machine: str | None
    boards: tuple[Board, ...]


class Controller(V1Commands):
    """All server state and the rules of PROTOCOL.md §2 to §4, §6.7 and §6.8.

    Args:
        machines: in priority (config) order; names must be unique.
        power_delay: seconds a power on/off takes.
        free_delay: seconds boards stay in quarantine after their power-off finished.
        max_retired_jobs: how many destroyed jobs are remembered (then they read as unknown).
        clock: monotonic seconds, used for every timer.
        wall_clock: UNIX seconds, used only for ``start_time``.
    """

    def __init__(
        self,
        machines: Sequence[Machine],
        *,
        power_delay: float = 0.0,
        free_delay: float = 0.1,
        max_retired_jobs: int = 1200,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        names = [m.name for m in machines]
        if len(set(names)) != len(names):
            raise ValueError(f"machine names must be unique: {names}")
        if power_delay < 0 or free_delay < 0 or max_retired_jobs < 0:
            raise ValueError("delays and max_retired_jobs must not be negative")
        self.machines: tuple[Machine, ...] = tuple(machines)
        self._by_name = {m.name: m for m in self.machines}
        self._allocators = {m.name: MachineAllocator(m) for m in self.machines}
        self._queues: dict[str, deque[Job]] = {m.name: deque() for m in self.machines}
        self._compact_at = 64
        self._power_delay = power_delay
        self._free_delay = free_delay
        self._max_retired = max_retired_jobs
        self._clock = clock
        self._wall_clock = wall_clock
        self._next_id = 1
        self._jobs: dict[int, Job] = {}
        # Destroyed jobs, kept (by count) so that v1 can tell their reason and v2 their record.
        self._retired: OrderedDict[int, Job] = OrderedDict()
        self._owners: dict[tuple[str, Board], Job] = {}
        self._board_power: dict[tuple[str, Board], bool] = {}
        self._timers: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._changed_jobs: dict[int, None] = {}
        self._changed_machines: dict[str, None] = {}
        self._commands = {
            name[len(_PREFIX) :]: _command(getattr(self, name))
            for name in dir(type(self))
            if name.startswith(_PREFIX)
        }

    # --- the server's interface --------------------------------------------------------------

    def is_command(self, name: str) -> bool:
        """True if *name* is one of the 17 protocol commands (a ``_cmd_<name>`` method)."""
        return name in self._commands

    def handle(
        self, session: Session, command: str, args: list[Any], kwargs: dict[str, Any]
    ) -> Any:
        """Run one command and return its result.

        Raises:
            UnknownCommand: *command* is not a protocol command.
            CommandError: the command failed; the text is for the client.
        """
        entry = self._commands.get(command)
        if entry is None:
            raise UnknownCommand(command)
        signature, method, required, most = entry
        self.poll()
        if most == -2:
            return method(session, *args, **kwargs)
        if not kwargs and required <= len(args) <= most:
            return method(session, *args)
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise CommandError(f"{command}(): {exc}") from None
        return method(session, *bound.args, **bound.kwargs)

    def poll(self) -> None:
        """Run every timer that is due: power completions, releases, keepalive expiry."""
        timers = self._timers
        if not timers:
            return
        now = self._clock()
        while timers and timers[0][0] <= now:
            _, _, callback, args = heapq.heappop(timers)
            callback(*args)

    def next_deadline(self) -> float | None:
        """Clock time of the next timer, or None if nothing is scheduled."""
        return self._timers[0][0] if self._timers else None

    def take_changes(self) -> tuple[list[int], list[str]]:
        """Return and clear the jobs and machines changed since the last call."""
        jobs = list(self._changed_jobs)
        machines = list(self._changed_machines)
        self._changed_jobs.clear()
        self._changed_machines.clear()
        return jobs, machines

    def reset_keepalives(self) -> None:
        """Restart every live job's keepalive timer (what the reference does on a restart)."""
        now = self._clock()
        for job in self._jobs.values():
            if job.spec.keepalive is not None:
                job.deadline = now + job.spec.keepalive
                self._at(job.deadline, self._check_keepalive, job)

    # --- introspection -----------------------------------------------------------------------

    def board_power(self, machine_name: str, board: Board) -> bool:
        """The emulated power state of one board (True = on)."""
        if machine_name not in self._by_name:
            raise KeyError(machine_name)
        return self._board_power.get((machine_name, tuple(board)), False)  # type: ignore[arg-type]

    def jobs(self) -> list[JobInfo]:
        """Snapshots of the live jobs, oldest first."""
        return [
            JobInfo(
                job.job_id,
                job.spec.owner,
                job.state,
                job.power,
                job.spec.keepalive,
                job.machine.name if job.machine else None,
                job.allocation.boards if job.allocation else (),
            )
            for job in self._jobs.values()
        ]

    def retired(self) -> dict[int, str | None]:
        """The remembered destroyed jobs and their reasons, oldest first."""
        return {job_id: job.reason for job_id, job in self._retired.items()}

    # --- the v2 front door's interface -----------------------------------------------------

    def find_job(self, job_id: int) -> Job | None:
        """The live or remembered destroyed job *job_id* (read-only for callers), or None."""
        return self._jobs.get(job_id) or self._retired.get(job_id)

    def job_ids(self, *, deleted: bool = False) -> list[int]:
        """Ids of the live jobs (and remembered destroyed ones if *deleted*), newest first."""
        ids = list(self._jobs)
        if deleted:
            ids.extend(self._retired)
        return sorted(ids, reverse=True)

    def machine(self, name: str) -> Machine | None:
        """The machine called *name*, or None."""
        return self._by_name.get(name)

    def owner_of(self, machine: Machine, board: Board) -> Job | None:
        """The live job holding *board* of *machine*, or None."""
        return self._owners.get((machine.name, board))

    def create_job_v2(
        self, session: Session, args: list[Any], kwargs: dict[str, Any], original: dict[str, Any]
    ) -> int:
        """Create a job as v2 does: a request no machine could ever take is refused.

        Raises:
            CommandError: the text of the Java server's 400 reply.
        """
        spec = parse_create_job(list(args), kwargs)
        candidates = self._candidates(spec)
        if not candidates:
            raise CommandError("no machine available which matches allocation request")
        feasible = self._feasible(spec, candidates)
        if not feasible:
            raise CommandError("request cannot fit on machine")
        self.poll()
        job_id = self._create(session, spec, feasible)
        job = self.find_job(job_id)
        if job is not None:
            job.original = original
        return job_id

    def destroy_v2(self, job: Job, reason: str) -> None:
        """Destroy a live job with *reason* exactly as given (v2 has no "Cancelled:" prefix)."""
        if self._jobs.get(job.job_id) is job:
            self._retire(job, reason)

    # --- timers and bookkeeping --------------------------------------------------------------

    def _at(self, when: float, callback: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), callback, args))

    def _after(self, delay: float, callback: Callable[..., None], *args: Any) -> None:
        self._at(self._clock() + delay, callback, *args)

    def _job_changed(self, job: Job) -> None:
        self._changed_jobs[job.job_id] = None

    def _machine_changed(self, machine: Machine) -> None:
        self._changed_machines[machine.name] = None

    def _lookup(self, job_id: Any) -> Job | None:
        return self._jobs.get(_hashable("job_id", job_id))

    def _refresh(self, session: Session, job: Job) -> None:
        # poll() ran before this command, so a job past its deadline is already gone.
        job.keepalive_host = session.host
        job.keepalive_time = self._wall_clock()
        if job.spec.keepalive is not None:
            job.deadline = self._clock() + job.spec.keepalive

    def _check_keepalive(self, job: Job) -> None:
        if self._jobs.get(job.job_id) is not job or job.deadline is None:
            return
        if job.deadline <= self._clock():
            queued = job.state is JobState.queued
            self._retire(job, _CANCELLED_TIMED_OUT if queued else _TIMED_OUT)
        else:
            # Refreshes only move the deadline later; one pending timer per job is enough.
            self._at(job.deadline, self._check_keepalive, job)

    def _retire(self, job: Job, reason: str | None) -> None:
        """Destroy a live job: free its boards (after power-off and quarantine), remember it."""
        del self._jobs[job.job_id]
        job.state = JobState.destroyed
        job.reason = reason
        job.finish_time = self._wall_clock()
        self._retired[job.job_id] = job
        while len(self._retired) > self._max_retired:
            self._retired.popitem(last=False)
        self._job_changed(job)
        allocation, machine = job.allocation, job.machine
        if allocation is not None and machine is not None:
            for board in allocation.boards:
                self._owners.pop((machine.name, board), None)
            self._machine_changed(machine)
            done = self._clock() + self._power_delay
            self._at(done, self._powered_off, machine, allocation, done)
        # A cancelled head may unblock the jobs behind it.
        self._run_queues()

    def _powered_off(self, machine: Machine, allocation: Allocation, done: float) -> None:
        for board in allocation.boards:
            self._board_power[(machine.name, board)] = False
        # Counted from when the power-off finished, not from when this timer ran.
        self._at(done + self._free_delay, self._release, machine, allocation)

    def _release(self, machine: Machine, allocation: Allocation) -> None:
        self._allocators[machine.name].free(allocation)
        self._run_queues()

    def _run_queues(self) -> None:
        """Strict FIFO per machine, machines in config order, passes until nothing moves."""
        self._compact_queues()
        progress = True
        while progress:
            progress = False
            for machine in self.machines:
                queue = self._queues[machine.name]
                while queue and queue[0].state is not JobState.queued:
                    queue.popleft()
                if not queue:
                    continue
                job = queue[0]
                allocation = self._allocators[machine.name].allocate(job.spec.request)
                if allocation is not None:
                    queue.popleft()
                    self._start(job, machine, allocation)
                    progress = True

    def _compact_queues(self) -> None:
        # Jobs that left a queue other than at its head (cancelled, or started on another
        # machine) are normally dropped when they reach the head; behind a head that never
        # moves they would pile up, so sweep now and then (amortised constant cost).
        total = sum(len(queue) for queue in self._queues.values())
        if total <= self._compact_at:
            return
        for name, queue in self._queues.items():
            self._queues[name] = deque(job for job in queue if job.state is JobState.queued)
        self._compact_at = 2 * sum(len(queue) for queue in self._queues.values()) + 64

    def _start(self, job: Job, machine: Machine, allocation: Allocation) -> None:
        job.machine = machine
        job.allocation = allocation
        for board in allocation.boards:
            self._owners[(machine.name, board)] = job
        self._machine_changed(machine)
        self._power(job, on=True)

    def _power(self, job: Job, *, on: bool) -> None:
        """Start a power on (a power cycle if already on) or off; requests add up."""
        job.power = on
        job.state = JobState.power
        job.pending_power += 1
        self._job_changed(job)
        self._after(self._power_delay, self._power_done, job, job.allocation, on)

    def _power_done(self, job: Job, allocation: Allocation, on: bool) -> None:
        if self._jobs.get(job.job_id) is not job or job.allocation is not allocation:
            return  # destroyed meanwhile: its own power-off takes over
        assert job.machine is not None
        for board in allocation.boards:
            self._board_power[(job.machine.name, board)] = on
        job.pending_power -= 1
        if job.pending_power == 0:
            job.state = JobState.ready
            self._job_changed(job)
