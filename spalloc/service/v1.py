"""The v1 implementation of :class:`~spalloc.service.base.Service`: newline-delimited JSON over
TCP through one :class:`~spalloc.client.ProtocolClient`.

Requests of one operation are pipelined (sent back to back, answered in one round trip). The
Java server's v1 quirks are absorbed here (V2_PROTOCOL.md §2): "boards not allocated" instead of
null machine information, "no such job" instead of state 0, and ``get_job_state``'s
``keepalive`` holding the time of the last keepalive rather than the interval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from spalloc._connection import PendingReply, remaining
from spalloc.client import ProtocolClient
from spalloc.exceptions import (
    JobDestroyedError,
    ProtocolError,
    ProtocolTimeoutError,
    SpallocServerException,
)
from spalloc.models import (
    JobDescription,
    JobMachineInfo,
    JobStateInfo,
    MachineDescription,
    WhereIs,
    parse_jobs,
    parse_machines,
)
from spalloc.service.base import JobRequest, JobStatus
from spalloc.states import JobState

__all__ = ["V1Service"]

log = logging.getLogger(__name__)

#: A ``get_job_state`` ``keepalive`` above this is the Java server's time of the last
#: keepalive (epoch seconds), not an interval (1e8 s is over three years).
_TIMESTAMP_FLOOR = 1e8
#: The interval of a resumed job whose server reports none we can read: the Java server's
#: default for v1 jobs (``spalloc.compat.default-keepalive``). Beating more often is harmless.
_FALLBACK_INTERVAL = 60.0


class _Fetch:
    """A pending state + machine-info exchange (plus a keepalive or subscription)."""

    __slots__ = ("_deadline", "_extra", "_info", "_state", "_timeout")

    def __init__(self, extra: PendingReply | None, state: PendingReply, info: PendingReply,
                 deadline: float | None, timeout: float | None) -> None:
        self._extra, self._state, self._info = extra, state, info
        self._deadline, self._timeout = deadline, timeout

    def wait(self) -> JobStatus:
        if self._extra is not None:
            self._extra.result_by(self._deadline, self._timeout)
        state = JobStateInfo.from_wire(self._state.result_by(self._deadline, self._timeout))
        try:
            info: JobMachineInfo | None = JobMachineInfo.from_wire(
                self._info.result_by(self._deadline, self._timeout))
        except SpallocServerException:
            info = None  # the Java server raises "boards not allocated" instead of nulls
        return JobStatus(state, info)


class _Destroy:
    __slots__ = ("_deadline", "_destroy", "_state", "_timeout")

    def __init__(self, destroy: PendingReply, state: PendingReply, deadline: float | None,
                 timeout: float | None) -> None:
        self._destroy, self._state = destroy, state
        self._deadline, self._timeout = deadline, timeout

    def wait(self) -> JobStateInfo:
        self._destroy.result_by(self._deadline, self._timeout)
        return JobStateInfo.from_wire(self._state.result_by(self._deadline, self._timeout))


class V1Service:
    """A spalloc v1 server at *hostname*:*port*.

    Args:
        hostname: the server's name or address.
        port: its TCP port.
        timeout: quoted in timeout errors (deadlines do the bounding).
        check_version: check the server's version on every (re)connection.
    """

    def __init__(self, hostname: str, port: int, *, timeout: float | None = None,
                 check_version: bool = True) -> None:
        self.client = ProtocolClient(hostname, port, timeout=timeout)
        self._timeout = timeout
        self._check_version = check_version

    def __repr__(self) -> str:
        return f"<V1Service {self.address}>"

    @property
    def connected(self) -> bool:
        return self.client.connected

    @property
    def address(self) -> str:
        return f"{self.client.hostname}:{self.client.port}"

    def connect(self, deadline: float | None) -> None:
        self.client.connect(remaining(deadline))
        if self._check_version:
            self.client.check_version(timeout=remaining(deadline))

    def disconnect(self) -> None:
        self.client.disconnect()

    def close(self) -> None:
        self.client.close()

    # -- jobs --------------------------------------------------------------------------------

    def create_job(self, request: JobRequest, deadline: float | None) -> int:
        kwargs: dict[str, Any] = request._asdict()
        args = kwargs.pop("args")
        if kwargs["tags"] is not None:
            kwargs["tags"] = list(kwargs["tags"])
        return self.client.create_job(*args, timeout=remaining(deadline), **kwargs)

    def resume_job(self, job_id: int, deadline: float | None) -> float | None:
        # The interval comes from the job's list_jobs entry, which both servers fill with the
        # interval; get_job_state's keepalive is the interval on the Python server but the time
        # of the last keepalive on the Java one, and serves only as a fallback.
        p_state = self.client.submit_by(deadline, "get_job_state", job_id)
        p_jobs = self.client.submit_by(deadline, "list_jobs")
        try:
            state = JobStateInfo.from_wire(p_state.result_by(deadline, self._timeout))
        except SpallocServerException as exc:
            if "no such job" not in str(exc).lower():
                raise
            raise JobDestroyedError(job_id, f"job {job_id} does not exist: {exc}") from exc
        if state.state in (JobState.unknown, JobState.destroyed):
            why = state.reason if state.state is JobState.destroyed else None
            raise JobDestroyedError(job_id, f"job {job_id} does not exist: {state.state.name}"
                                    + (f": {why}" if why else ""))
        try:
            jobs = parse_jobs(p_jobs.result_by(deadline, self._timeout))
        except SpallocServerException:
            jobs = []
        for entry in jobs:
            if entry.job_id == job_id:
                return entry.keepalive
        if state.keepalive is None or state.keepalive < _TIMESTAMP_FLOOR:
            return state.keepalive
        log.warning("job %d: the server reports no keepalive interval; keeping it alive as "
                    "for %g s", job_id, _FALLBACK_INTERVAL)
        return _FALLBACK_INTERVAL

    def send_fetch(self, job_id: int, deadline: float | None, *, keepalive: bool = False,
                   follow: bool = False) -> _Fetch:
        submit = self.client.submit_by
        extra = None
        if follow:
            extra = submit(deadline, "notify_job", job_id)
        elif keepalive:
            extra = submit(deadline, "job_keepalive", job_id)
        state = submit(deadline, "get_job_state", job_id)
        info = submit(deadline, "get_job_machine_info", job_id)
        return _Fetch(extra, state, info, deadline, self._timeout)

    def set_power(self, job_id: int, on: bool, deadline: float | None) -> None:
        command = "power_on_job_boards" if on else "power_off_job_boards"
        self.client.submit_by(deadline, command, job_id).result_by(deadline, self._timeout)

    def send_destroy(self, job_id: int, reason: str | None,
                     deadline: float | None) -> _Destroy:
        # The reason goes as a keyword, which both the Python and the Java server read.
        destroy = self.client.submit_by(deadline, "destroy_job", job_id, reason=reason)
        state = self.client.submit_by(deadline, "get_job_state", job_id)
        return _Destroy(destroy, state, deadline, self._timeout)

    def job_state(self, job_id: int, deadline: float | None) -> JobStateInfo:
        return self.client.get_job_state(job_id, timeout=remaining(deadline))

    def job_machine_info(self, job_id: int, deadline: float | None) -> JobMachineInfo | None:
        try:
            info = self.client.get_job_machine_info(job_id, timeout=remaining(deadline))
        except SpallocServerException as exc:
            if "not allocated" in str(exc):  # the Java server's way of saying "no boards"
                return None
            raise
        return None if info.connections is None else info

    def where_is(self, deadline: float | None, **query: Any) -> WhereIs | None:
        return self.client.where_is(timeout=remaining(deadline), **query)

    def list_jobs(self, deadline: float | None) -> Sequence[JobDescription]:
        return parse_jobs(self.client.call("list_jobs", timeout=remaining(deadline)))

    def list_machines(self, deadline: float | None) -> Sequence[MachineDescription]:
        return parse_machines(self.client.call("list_machines", timeout=remaining(deadline)))

    # -- changes -----------------------------------------------------------------------------

    def follow_jobs(self, deadline: float | None, job_id: int | None = None) -> None:
        self.client.notify_job(job_id, timeout=remaining(deadline))

    def follow_machines(self, deadline: float | None, machine: str | None = None) -> None:
        self.client.notify_machine(machine, timeout=remaining(deadline))

    def wait_for_change(self, timeout: float | None) -> bool:
        try:
            self.client.wait_for_notification(timeout)
        except ProtocolTimeoutError:
            return False
        while self.client.wait_for_notification(-1) is not None:
            pass  # a burst counts once
        return True

    def on_job_changed(self, fn: Callable[[Sequence[int]], None]) -> Callable[[], None]:
        def relay(payload: dict[str, Any]) -> None:
            changed = payload.get("jobs_changed")
            if isinstance(changed, list):
                fn(changed)
        return self.client.add_notification_listener(relay, immediate=True)

    def on_connection_lost(self, fn: Callable[[ProtocolError], None]) -> Callable[[], None]:
        return self.client.add_disconnect_listener(fn, immediate=True)
