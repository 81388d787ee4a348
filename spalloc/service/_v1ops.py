"""What each :class:`~spalloc.service.base.Service` operation means in v1, written once for
both v1 drivers: the threaded :class:`~spalloc.service.v1.V1Service` (``Job``, the board map)
and the one-thread :class:`~spalloc.service.v1light.V1LightService` (the admin tools, where
start-up time counts, so nothing here imports ``typing``, ``logging`` or threads).

A driver supplies ``_send(requests, deadline)``: send the ``(command, args, kwargs)`` requests
back to back and return a function collecting their outcomes, each the reply's value or the
:class:`~spalloc.exceptions.SpallocServerException` the server answered with. The Java
server's v1 quirks are absorbed here (V2_PROTOCOL.md §2): "boards not allocated" instead of
null machine information, "no such job" instead of state 0, and ``get_job_state``'s
``keepalive`` holding the time of the last keepalive rather than the interval.
"""

from __future__ import annotations

from spalloc.exceptions import JobDestroyedError, ProtocolError, SpallocServerException
from spalloc.models import (
    JobMachineInfo,
    JobStateInfo,
    WhereIs,
    parse_jobs,
    parse_machines,
)
from spalloc.states import JobState

TYPE_CHECKING = False  # not typing's: that import costs the admin tools start-up time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from spalloc.models import JobDescription, MachineDescription
    from spalloc.service.base import JobRequest, JobStatus

    Request = tuple[str, tuple[Any, ...], dict[str, Any]]
    Collect = Callable[[], list[Any]]

__all__ = ["FALLBACK_INTERVAL", "TIMESTAMP_FLOOR", "V1Operations"]

#: A ``get_job_state`` ``keepalive`` above this is the Java server's time of the last
#: keepalive (epoch seconds), not an interval (1e8 s is over three years).
TIMESTAMP_FLOOR = 1e8
#: The interval of a resumed job whose server reports none we can read: the Java server's
#: default for v1 jobs (``spalloc.compat.default-keepalive``). Beating more often is harmless.
FALLBACK_INTERVAL = 60.0


def _value(outcome: Any) -> Any:
    if isinstance(outcome, SpallocServerException):
        raise outcome
    return outcome


def _not_allocated(outcome: Any) -> bool:
    return isinstance(outcome, SpallocServerException) and "not allocated" in str(outcome)


class _Fetched:
    """A pending state + machine-info exchange (plus a keepalive or subscription)."""

    __slots__ = ("_collect",)

    def __init__(self, collect: Collect) -> None:
        self._collect = collect

    def wait(self) -> JobStatus:
        from spalloc.service.base import JobStatus

        *extra, state, info = self._collect()
        for outcome in extra:
            _value(outcome)
        machine = None if _not_allocated(info) else JobMachineInfo.from_wire(_value(info))
        return JobStatus(JobStateInfo.from_wire(_value(state)), machine)


class _Destroyed:
    __slots__ = ("_collect",)

    def __init__(self, collect: Collect) -> None:
        self._collect = collect

    def wait(self) -> JobStateInfo:
        destroyed, state = self._collect()
        _value(destroyed)
        return JobStateInfo.from_wire(_value(state))


class V1Operations:
    """The v1 meaning of the :class:`~spalloc.service.base.Service` operations."""

    def _send(self, requests: list[Request], deadline: float | None) -> Collect:
        raise NotImplementedError  # each driver sends its own way

    def _one(self, deadline: float | None, command: str, *args: Any, **kwargs: Any) -> Any:
        (outcome,) = self._send([(command, args, kwargs)], deadline)()
        return _value(outcome)

    # -- jobs --------------------------------------------------------------------------------

    def create_job(
        self,
        request: JobRequest,
        deadline: float | None,
        meanwhile: Callable[[], None] | None = None,
    ) -> int:
        kwargs: dict[str, Any] = request._asdict()
        args = kwargs.pop("args")
        if kwargs["tags"] is not None:
            kwargs["tags"] = list(kwargs["tags"])
        collect = self._send([("create_job", args, kwargs)], deadline)
        if meanwhile is not None:
            meanwhile()
        job_id = _value(collect()[0])
        if isinstance(job_id, bool) or not isinstance(job_id, int):
            raise ProtocolError(f"create_job returned {job_id!r}, not a job ID")
        return job_id

    def resume_job(self, job_id: int, deadline: float | None) -> float | None:
        # The interval comes from the job's list_jobs entry, which both servers fill with the
        # interval; get_job_state's keepalive is the interval on the Python server but the
        # time of the last keepalive on the Java one, and serves only as a fallback.
        state_outcome, jobs_outcome = self._send(
            [("get_job_state", (job_id,), {}), ("list_jobs", (), {})], deadline
        )()
        if isinstance(state_outcome, SpallocServerException):
            if not state_outcome.no_such_job:
                raise state_outcome
            raise JobDestroyedError(
                job_id, f"job {job_id} does not exist: {state_outcome}"
            ) from state_outcome
        state = JobStateInfo.from_wire(state_outcome)
        if state.state in (JobState.unknown, JobState.destroyed):
            why = state.reason if state.state is JobState.destroyed else None
            raise JobDestroyedError(
                job_id,
                f"job {job_id} does not exist: {state.state.name}" + (f": {why}" if why else ""),
            )
        if not isinstance(jobs_outcome, SpallocServerException):
            for entry in parse_jobs(jobs_outcome):
                if entry.job_id == job_id:
                    return entry.keepalive
        if state.keepalive is None or state.keepalive < TIMESTAMP_FLOOR:
            return state.keepalive
        return FALLBACK_INTERVAL  # the server reports no interval we can read

    def send_fetch(
        self, job_id: int, deadline: float | None, *, keepalive: bool = False, follow: bool = False
    ) -> _Fetched:
        requests: list[Request] = []
        if follow:
            requests.append(("notify_job", (job_id,), {}))
        elif keepalive:
            requests.append(("job_keepalive", (job_id,), {}))
        requests += [("get_job_state", (job_id,), {}), ("get_job_machine_info", (job_id,), {})]
        return _Fetched(self._send(requests, deadline))

    def set_power(self, job_id: int, on: bool, deadline: float | None) -> None:
        self._one(deadline, "power_on_job_boards" if on else "power_off_job_boards", job_id)

    def send_destroy(self, job_id: int, reason: str | None, deadline: float | None) -> _Destroyed:
        # The reason goes as a keyword, which both the Python and the Java server read.
        return _Destroyed(
            self._send(
                [("destroy_job", (job_id,), {"reason": reason}), ("get_job_state", (job_id,), {})],
                deadline,
            )
        )

    def job_state(self, job_id: int, deadline: float | None) -> JobStateInfo:
        outcome = self._send([("get_job_state", (job_id,), {})], deadline)()[0]
        if isinstance(outcome, SpallocServerException) and outcome.no_such_job:
            return JobStateInfo.from_wire({"state": int(JobState.unknown)})  # as Python says
        return JobStateInfo.from_wire(_value(outcome))

    def job_machine_info(self, job_id: int, deadline: float | None) -> JobMachineInfo | None:
        outcome = self._send([("get_job_machine_info", (job_id,), {})], deadline)()[0]
        if _not_allocated(outcome) or (
            isinstance(outcome, SpallocServerException) and outcome.no_such_job
        ):
            return None
        info = JobMachineInfo.from_wire(_value(outcome))
        return None if info.connections is None else info

    def where_is(self, deadline: float | None, **query: Any) -> WhereIs | None:
        # Every form is sent by keyword, which both the Python and the Java server accept.
        return WhereIs.from_wire(self._one(deadline, "where_is", **query))

    def list_jobs(self, deadline: float | None) -> list[JobDescription]:
        return parse_jobs(self._one(deadline, "list_jobs"))

    def list_machines(self, deadline: float | None) -> list[MachineDescription]:
        return parse_machines(self._one(deadline, "list_machines"))

    def board_locations(
        self, machine: str, deadline: float | None
    ) -> dict[tuple[int, int, int], tuple[int, int, int]]:
        # v1 places one board per get_board_position: ask for every live board back to back
        # (one round trip for the whole machine), by keyword, which the Java server needs.
        entry = next((m for m in self.list_machines(deadline) if m.name == machine), None)
        if entry is None:
            return {}
        boards = entry.boards()
        outcomes = self._send(
            [
                ("get_board_position", (), {"machine_name": machine, "x": x, "y": y, "z": z})
                for x, y, z in boards
            ],
            deadline,
        )()
        found: dict[tuple[int, int, int], tuple[int, int, int]] = {}
        for board, where in zip(boards, outcomes, strict=True):
            # None, or an exception from a server that cannot place it: left out.
            if (
                isinstance(where, list)
                and len(where) == 3
                and all(isinstance(v, int) and not isinstance(v, bool) for v in where)
            ):
                found[board] = (where[0], where[1], where[2])
        return found

    # -- changes -----------------------------------------------------------------------------

    def follow_jobs(self, deadline: float | None, job_id: int | None = None) -> None:
        self._one(deadline, "notify_job", *(() if job_id is None else (job_id,)))

    def follow_machines(self, deadline: float | None, machine: str | None = None) -> None:
        self._one(deadline, "notify_machine", *(() if machine is None else (machine,)))
