"""The 17 v1 commands of the emulator's :class:`~spalloc.emulator.controller.Controller`, one
``_cmd_<name>`` method each: the controller builds its command table from every method so
named, so a new one cannot be left out. A mixin: the job life cycles, queues and timers they
use live in the controller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spalloc.emulator._jobs import CommandError, Job, parse_create_job
from spalloc.emulator._where import board_at_position, board_position, where_is
from spalloc.states import JobState

if TYPE_CHECKING:
    from collections import OrderedDict, deque
    from collections.abc import Callable

    from spalloc.emulator._jobs import JobSpec
    from spalloc.emulator.allocator import MachineAllocator
    from spalloc.emulator.controller import Session
    from spalloc.geometry import Board, Machine

__all__ = ["EMULATOR_VERSION", "V1Commands"]

#: What ``version`` answers: plain X.Y.Z below 5.0.1, so both official clients accept it
#: (the Java server says the same).
EMULATOR_VERSION = "5.0.0"

_CANCELLED_NO_MACHINE = "Cancelled: No suitable machines available."

_UNKNOWN_STATE = {
    "state": int(JobState.unknown),
    "power": None,
    "keepalive": None,
    "reason": None,
    "start_time": None,
    "keepalivehost": None,
}
_NO_MACHINE_INFO = {
    "width": None,
    "height": None,
    "connections": None,
    "machine_name": None,
    "boards": None,
}


def _hashable(name: str, value: Any) -> Any:
    if isinstance(value, (list, dict)):
        raise CommandError(f"{name} must be a number or string, not {type(value).__name__}")
    return value


class V1Commands:
    """The commands, as methods of the controller."""

    if TYPE_CHECKING:  # what the controller provides
        machines: tuple[Machine, ...]
        _by_name: dict[str, Machine]
        _allocators: dict[str, MachineAllocator]
        _queues: dict[str, deque[Job]]
        _clock: Callable[[], float]
        _wall_clock: Callable[[], float]
        _next_id: int
        _jobs: dict[int, Job]
        _retired: OrderedDict[int, Job]
        _owners: dict[tuple[str, Board], Job]

        def _at(self, when: float, callback: Callable[..., None], *args: Any) -> None: ...
        def _job_changed(self, job: Job) -> None: ...
        def _lookup(self, job_id: Any) -> Job | None: ...
        def _refresh(self, session: Session, job: Job) -> None: ...
        def _check_keepalive(self, job: Job) -> None: ...
        def _retire(self, job: Job, reason: str | None) -> None: ...
        def _run_queues(self) -> None: ...
        def owner_of(self, machine: Machine, board: Board) -> Job | None: ...
        def _power(self, job: Job, *, on: bool) -> None: ...

    # --- commands ----------------------------------------------------------------------------

    def _cmd_version(self, session: Session, /) -> str:
        return EMULATOR_VERSION

    def _cmd_create_job(self, session: Session, /, *args: Any, **kwargs: Any) -> int:
        return self._create(session, parse_create_job(list(args), kwargs))

    def _candidates(self, spec: JobSpec) -> list[Machine]:
        """The machine *spec* names, or those with all its tags, in config order."""
        if spec.machine is not None:
            named = self._by_name.get(spec.machine)
            return [named] if named is not None else []
        return [m for m in self.machines if spec.tags <= m.tags]

    def _feasible(self, spec: JobSpec, candidates: list[Machine]) -> list[Machine]:
        """Those of *candidates* that could ever take the request (were they empty)."""
        return [m for m in candidates if self._allocators[m.name].feasible(spec.request)]

    def _create(
        self, session: Session, spec: JobSpec, feasible: list[Machine] | None = None
    ) -> int:
        """Issue a job id; queue the job on the *feasible* machines (computed if not given),
        or cancel it at once if there are none."""
        if feasible is None:
            feasible = self._feasible(spec, self._candidates(spec))
        now = self._clock()
        job = Job(
            job_id=self._next_id,
            spec=spec,
            start_time=self._wall_clock(),
            keepalive_host=session.host,
            keepalive_time=self._wall_clock(),
            deadline=None if spec.keepalive is None else now + spec.keepalive,
        )
        self._next_id += 1
        self._jobs[job.job_id] = job
        self._job_changed(job)
        if not feasible:
            self._retire(job, _CANCELLED_NO_MACHINE)
            return job.job_id
        job.candidates = [m.name for m in feasible]
        for machine in feasible:
            self._queues[machine.name].append(job)
        if job.deadline is not None:
            self._at(job.deadline, self._check_keepalive, job)
        self._run_queues()
        return job.job_id

    def _cmd_job_keepalive(self, session: Session, /, job_id: Any) -> None:
        job = self._lookup(job_id)
        if job is not None:
            self._refresh(session, job)

    def _cmd_get_job_state(self, session: Session, /, job_id: Any) -> dict[str, Any]:
        job = self._lookup(job_id)
        if job is not None:
            self._refresh(session, job)
            return {
                "state": int(job.state),
                "power": job.power,
                "keepalive": job.spec.keepalive,
                "reason": None,
                "start_time": job.start_time,
                "keepalivehost": job.keepalive_host,
            }
        key = _hashable("job_id", job_id)
        if key in self._retired:
            return dict(
                _UNKNOWN_STATE, state=int(JobState.destroyed), reason=self._retired[key].reason
            )
        return dict(_UNKNOWN_STATE)

    def _cmd_get_job_machine_info(self, session: Session, /, job_id: Any) -> dict[str, Any]:
        job = self._lookup(job_id)
        if job is None:
            return dict(_NO_MACHINE_INFO)
        self._refresh(session, job)
        allocation, machine = job.allocation, job.machine
        if allocation is None or machine is None:
            return dict(_NO_MACHINE_INFO)
        return {
            "width": allocation.width,
            "height": allocation.height,
            "connections": [[list(chip), ip] for chip, ip in job.connections()],
            "machine_name": machine.name,
            "boards": [list(board) for board in allocation.boards],
        }

    def _cmd_power_on_job_boards(self, session: Session, /, job_id: Any) -> None:
        job = self._lookup(job_id)
        if job is not None:
            self._refresh(session, job)
            if job.allocation is not None:
                self._power(job, on=True)

    def _cmd_power_off_job_boards(self, session: Session, /, job_id: Any) -> None:
        job = self._lookup(job_id)
        if job is not None:
            self._refresh(session, job)
            if job.allocation is not None:
                self._power(job, on=False)

    def _cmd_destroy_job(self, session: Session, /, job_id: Any, reason: Any = None) -> None:
        if reason is not None and not isinstance(reason, str):
            raise CommandError(f"reason must be a string or null, not {type(reason).__name__}")
        job = self._lookup(job_id)
        if job is None:
            return
        if job.state is JobState.queued:
            self._retire(job, "Cancelled: " + (reason or ""))
        else:
            self._retire(job, reason)

    def _cmd_notify_job(self, session: Session, /, job_id: Any = None) -> None:
        if job_id is None:
            session.all_jobs = True
        else:
            session.jobs.add(_hashable("job_id", job_id))

    def _cmd_no_notify_job(self, session: Session, /, job_id: Any = None) -> None:
        if job_id is None:
            session.all_jobs = False
            session.jobs.clear()
        else:
            session.jobs.discard(_hashable("job_id", job_id))

    def _cmd_notify_machine(self, session: Session, /, machine_name: Any = None) -> None:
        if machine_name is None:
            session.all_machines = True
        else:
            session.machines.add(_hashable("machine_name", machine_name))

    def _cmd_no_notify_machine(self, session: Session, /, machine_name: Any = None) -> None:
        if machine_name is None:
            session.all_machines = False
            session.machines.clear()
        else:
            session.machines.discard(_hashable("machine_name", machine_name))

    def _cmd_list_jobs(self, session: Session, /) -> list[dict[str, Any]]:
        return [self._job_entry(job) for job in self._jobs.values()]

    def _job_entry(self, job: Job) -> dict[str, Any]:
        spec: JobSpec = job.spec
        return {
            "job_id": job.job_id,
            "owner": spec.owner,
            "start_time": job.start_time,
            "keepalive": spec.keepalive,
            "state": int(job.state),
            "power": job.power,
            "args": list(spec.args),
            "kwargs": dict(spec.kwargs),
            "allocated_machine_name": job.machine.name if job.machine else None,
            "boards": (
                [list(b) for b in job.allocation.boards] if job.allocation is not None else None
            ),
            "keepalivehost": job.keepalive_host or "",
        }

    def _cmd_list_machines(self, session: Session, /) -> list[dict[str, Any]]:
        return [
            {
                "name": m.name,
                "tags": sorted(m.tags),
                "width": m.width,
                "height": m.height,
                "dead_boards": [list(b) for b in sorted(m.dead_boards)],
                "dead_links": [list(link) for link in sorted(m.dead_links)],
            }
            for m in self.machines
        ]

    def _machine_arg(self, machine_name: Any) -> Machine | None:
        if isinstance(machine_name, (list, dict)):
            raise CommandError("machine_name must be a string")
        return self._by_name.get(machine_name) if isinstance(machine_name, str) else None

    def _cmd_get_board_position(
        self, session: Session, /, machine_name: Any, x: Any, y: Any, z: Any
    ) -> list[int] | None:
        return board_position(self._machine_arg(machine_name), x, y, z)

    def _cmd_get_board_at_position(
        self, session: Session, /, machine_name: Any, x: Any, y: Any, z: Any
    ) -> list[int] | None:
        return board_at_position(self._machine_arg(machine_name), x, y, z)

    def _cmd_where_is(self, session: Session, /, **kwargs: Any) -> dict[str, Any] | None:
        return where_is(kwargs, self._machine_arg, self._lookup, self.owner_of)
