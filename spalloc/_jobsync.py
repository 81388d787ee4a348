"""Keeping a ``Job``'s snapshot in step with the server: the half of :class:`~spalloc.job.Job`
that runs in the background (fetches, keepalive beats, reconnection, notifications), with the
exchanges that start it (subscribing, the first fetch) and end it (the destroy handshake).

:class:`JobSync` holds no state of its own: ``Job.__init__`` sets the attributes declared here.
No lock a public method needs is held across a network wait: ``_refresh_lock`` only keeps
fetches in order while they are sent, and numbered fetches keep a late answer from overwriting a
newer one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from spalloc._deadline import deadline_of, remaining
from spalloc.exceptions import ProtocolError, ProtocolTimeoutError, SpallocError
from spalloc.follow import Follower
from spalloc.models import JobMachineInfo, JobSnapshot, JobStateInfo
from spalloc.states import JobState

if TYPE_CHECKING:
    from collections.abc import Mapping

    from spalloc._dispatch import Dispatcher
    from spalloc.models import BridgeTraffic
    from spalloc.service import Pending, Service
    from spalloc.service.bridge import Bridge

__all__ = ["JobSync", "bounded"]

log = logging.getLogger("spalloc.job")

#: Share of the keepalive interval a keepalive's reply may take before the connection is taken
#: for stalled (frozen without FIN or RST) and replaced. Beats go every interval/2, so a fresh
#: connection still has a quarter of the interval to reach the server before the job expires.
_STALL_SHARE = 0.25
# Bound on background calls (keepalive, refresh) when neither timeout nor keepalive bounds them.
_BACKGROUND_TIMEOUT = 30.0


def bounded(timeout: float | None, cap: float | None) -> float | None:
    """The smaller of two timeouts, ``None`` being the largest."""
    if cap is None:
        return timeout
    return cap if timeout is None else min(timeout, cap)


class JobSync:
    """The background half of :class:`~spalloc.job.Job` (see the module's docstring)."""

    _id: int | None
    _service: Service | None
    _keeper: Follower | None
    _finished: str | None
    _keepalive: float | None
    _timeout: float | None
    _reconnect_delay: float
    _cond: threading.Condition
    _refresh_lock: threading.Lock
    _fetches: int
    _applied: int
    _state_listeners: list[Callable[[Any], None]]
    _removers: list[Callable[[], None]]
    _snapshot: JobSnapshot
    _events: Dispatcher
    _proxy: str  # "auto", "always" or "never" (always "never" for v1)
    _bridge: Bridge | None
    _bridge_lock: threading.Lock
    _direct: bool | None  # auto's verdict: the boards answer directly (None: not probed)

    def _update(self, seq: int | None = None, **changes: Any) -> None:
        with self._cond:
            if seq is not None:
                # Replies come back in the order asked: an older fetch finishing late must
                # not overwrite what a newer one saw.
                if seq < self._applied:
                    return
                self._applied = seq
            new = self._snapshot._replace(**changes)
            if new == self._snapshot:
                return
            self._snapshot = new
            self._cond.notify_all()
            listeners = list(self._state_listeners)
        for fn in listeners:
            self._events.submit(fn, self)

    def _apply(
        self, state: JobStateInfo, info: JobMachineInfo | None, seq: int | None = None
    ) -> None:
        # A job without boards has no power (None) and no reason is None: the Java server
        # says False and "" there. Its "keepalive" is the time of the last keepalive, not the
        # interval, so the snapshot keeps the interval this Job knows.
        has_boards = state.state in (JobState.power, JobState.ready)
        changes: dict[str, Any] = {
            "state": state.state,
            "power": state.power if has_boards else None,
            "reason": state.reason or None,
            "start_time": state.start_time,
            "keepalivehost": state.keepalivehost or None,
        }
        if info is not None and (state.state.is_live or info.machine_name is not None):
            # Once the job is gone the server forgets its boards; keep the last ones known.
            changes.update(
                machine_name=info.machine_name,
                boards=info.boards,
                width=info.width,
                height=info.height,
                connections=info.connections,
            )
            if state.state.is_live:
                changes.update(self._bridged(state.state, info.connections))
        self._update(seq, **changes)
        if not state.state.is_live:
            self._close_bridge()
            if self._keeper is not None:
                # The server has let the job go: nothing is left to keep alive or to follow.
                self._keeper.stop(timeout=0)

    # --- the proxy bridge (v2) ----------------------------------------------------------------

    def _bridged(
        self, state: JobState, connections: Mapping[tuple[int, int], str] | None
    ) -> dict[str, Any]:
        """The snapshot's changes for *connections*: the bridge's addresses once the job is
        ready and bridged (the bridge is started here, before anyone sees the boards)."""
        if self._proxy == "never" or not connections:
            return {}
        bridge = self._bridge
        if bridge is None:
            if state is not JobState.ready or self._finished:
                return {}
            with self._bridge_lock:
                if self._bridge is None and not self._finished:
                    self._bridge = self._start_bridge(connections)
                bridge = self._bridge
            if bridge is None:
                return {}
        return {
            "connections": bridge.connections,
            "board_connections": dict(connections),
            "bridged": True,
        }

    def _start_bridge(self, connections: Mapping[tuple[int, int], str]) -> Bridge | None:
        if self._proxy == "auto":
            if self._direct is None:
                from spalloc.service._reach import reachable

                host = connections.get((0, 0)) or next(iter(connections.values()))
                self._direct = reachable(host)
                log.info(
                    "job %s: boards %s directly",
                    self._id,
                    "reachable" if self._direct else "not reachable; bridging them",
                )
            if self._direct:
                return None
        service = self._require_service()
        endpoint = getattr(service, "proxy_endpoint", None)
        if endpoint is None:
            return None  # a v1 server has no proxy
        job_id = self._require_id()
        from spalloc.service.bridge import Bridge

        try:
            bridge = Bridge(
                lambda deadline: endpoint(job_id, deadline),
                list(connections),
                name=f"job-{job_id}",
                on_traffic=self._on_traffic,
                on_error=self._on_bridge_error,
            )
        except (OSError, ImportError) as exc:
            log.warning("job %s: cannot bridge its boards: %s", self._id, exc)
            self._update(bridge_error=f"cannot bridge the boards: {exc}")
            return None
        self._update(traffic=bridge.stats())
        return bridge

    def _on_traffic(self, traffic: BridgeTraffic) -> None:
        # On the bridge's relay thread: a snapshot update only (listeners run elsewhere).
        if self._bridge is not None:
            self._update(traffic=traffic)

    def _on_bridge_error(self, error: str | None) -> None:
        if not self._finished:
            self._update(bridge_error=error)

    def _close_bridge(self) -> None:
        """Close the bridge (if any); the snapshot gets the boards' own addresses back."""
        with self._bridge_lock:
            bridge, self._bridge = self._bridge, None
        if bridge is None:
            return
        traffic = bridge.stats()
        bridge.close()
        with self._cond:
            board = self._snapshot.board_connections
        changes: dict[str, Any] = {"bridged": False, "board_connections": None, "traffic": traffic}
        if board is not None:
            changes["connections"] = board
        self._update(**changes)

    def _fetch(
        self,
        timeout: float | None,
        *,
        keepalive: bool = False,
        follow: bool = False,
        meanwhile: Callable[[], None] | None = None,
    ) -> None:
        """Ask for state and machine info (plus a keepalive, or following the job), running
        *meanwhile* while the server works."""
        service = self._require_service()
        job_id = self._require_id()
        deadline = deadline_of(timeout)
        # The lock only keeps fetches in order and numbers them; it is never held while
        # waiting for an answer, so a silent server cannot block destroy() behind it.
        with self._sending(deadline, "get_job_state"):
            self._fetches += 1
            seq = self._fetches
            pending = service.send_fetch(job_id, deadline, keepalive=keepalive, follow=follow)
        if meanwhile is not None:
            meanwhile()
        status = pending.wait()
        self._apply(status.state, status.info, seq)

    @contextlib.contextmanager
    def _sending(self, deadline: float | None, command: str) -> Iterator[None]:
        left = remaining(deadline)
        if not self._refresh_lock.acquire(timeout=-1 if left is None else left):
            raise ProtocolTimeoutError(
                f"could not send {command} in time: another request to the server is stuck",
                command=command,
            )
        try:
            yield
        finally:
            self._refresh_lock.release()

    def _make_keeper(self, service: Service, keepalive: float | None) -> Follower:
        """The keepalive thread's follower (not started), beating every *keepalive*/2."""
        self._keeper = Follower(
            "spalloc-job-keepalive" if self._id is None else f"spalloc-job-{self._id}-keepalive",
            None if keepalive is None else keepalive / 2,
            self._reconnect_delay,
            self._beat,
            self._refresh_quietly,
            self._reconnect,
            lambda: service.connected,
        )
        return self._keeper

    def _start_following(self, service: Service, deadline: float | None) -> None:
        """Subscribe to the job's changes, start the keepalive thread (unless it was started
        while the job was being created), fetch the state."""
        self._removers = [
            # Both run on the connection's own thread and only wake the keepalive thread.
            service.on_job_changed(self._on_jobs_changed),
            service.on_connection_lost(self._on_disconnect),
        ]
        keeper = self._keeper
        if keeper is not None and keeper.started:
            keeper.name = f"spalloc-job-{self._id}-keepalive"
            self._follow_and_refresh(remaining(deadline))
            return
        keeper = self._make_keeper(service, self._keepalive)
        # It starts while the server answers (its first beat is keepalive/2 away, so it
        # cannot race the subscription).
        self._follow_and_refresh(remaining(deadline), meanwhile=keeper.start)

    def _follow_and_refresh(
        self, timeout: float | None, meanwhile: Callable[[], None] | None = None
    ) -> None:
        self._fetch(timeout, follow=True, meanwhile=meanwhile)
        if self._keepalive is not None:
            # Reading the state refreshes the job's keepalive timer on the server too.
            self._update(last_keepalive_ok=time.time(), keepalive_error=None)

    def _on_jobs_changed(self, job_ids: Sequence[int]) -> None:
        if self._id not in job_ids or self._finished:
            return
        if self._keeper is not None:
            self._keeper.changed()

    def _refresh_quietly(self) -> None:
        try:
            self._fetch(self._background_timeout())
        except SpallocError as exc:
            log.debug("refresh of job %s after a notification failed: %s", self._id, exc)

    def _live_refresh(self) -> None:
        # The seed's state/power/reason reflect the server now; fall back to the cache
        # when we cannot ask (closed, destroyed or disconnected).
        service = self._service
        if self._finished or service is None or not service.connected:
            return
        try:
            self._fetch(self._timeout)
        except SpallocError as exc:
            log.debug("could not refresh job %s: %s", self._id, exc)

    def _on_disconnect(self, error: ProtocolError) -> None:
        if self._finished:
            return
        log.warning("lost connection to spalloc server for job %s: %s", self._id, error)
        self._update(connected=False, keepalive_error=f"connection lost: {error}")
        if self._keeper is not None:
            self._keeper.wake()

    def _background_timeout(self) -> float | None:
        """How long a background exchange may take before the connection counts as stalled."""
        stall = None if self._keepalive is None else self._keepalive * _STALL_SHARE
        return bounded(bounded(self._timeout, stall), _BACKGROUND_TIMEOUT)

    def _beat(self) -> None:
        service = self._require_service()
        timeout = self._background_timeout()
        try:
            self._fetch(timeout, keepalive=self._keepalive is not None)
        except ProtocolTimeoutError as exc:
            # A connection that stops answering is as good as lost: start again.
            self._update(keepalive_error=str(exc), connected=False)
            service.disconnect()
            raise
        except SpallocError as exc:
            self._update(keepalive_error=str(exc))
            raise
        if self._keepalive is not None:
            self._update(last_keepalive_ok=time.time(), keepalive_error=None)

    def _reconnect(self) -> None:
        service = self._require_service()
        timeout = self._background_timeout()
        if self._finished:
            return  # destroy() or close() owns the connection now
        try:
            deadline = deadline_of(timeout)
            service.connect(deadline)
            self._follow_and_refresh(remaining(deadline))
        except BaseException as exc:
            service.disconnect()
            self._update(connected=False, keepalive_error=f"reconnection failed: {exc}")
            raise
        log.info("reconnected to spalloc server for job %s", self._id)
        self._update(connected=True)

    def _destroy_on_server(
        self, service: Service, reason: str | None, deadline: float | None
    ) -> str | None:
        """Destroy the job on the server, reconnecting if need be, and close *service*.

        Returns None once the server confirmed, else why it did not (never raises for it).
        """
        try:
            sent = self._send_destroy(service, reason, deadline) if service.connected else None
            if sent is None:
                # The keepalive thread may be reconnecting: let it finish (or give up)
                # rather than have two connects race.
                self._join_background(bounded(remaining(deadline), 1.0))
                service.connect(deadline)
                sent = self._send_destroy(service, reason, deadline)
            if sent is None:
                raise ProtocolError("the connection failed while sending destroy_job")
            # The keepalive thread ends while the server works (anything it still waits
            # for was asked before our request, so is answered first).
            self._join_background(remaining(deadline))
            self._apply(sent.wait(), None)
            log.info("Destroyed spalloc job %d", self._id)
        except SpallocError as exc:
            confirmed = f"destroy not confirmed by the server: {exc}"
            log.warning("job %s: %s", self._id, confirmed)
            return confirmed
        finally:
            service.close()  # also wakes the keepalive thread if it waits for a reply
        return None

    def _send_destroy(
        self, service: Service, reason: str | None, deadline: float | None
    ) -> Pending[JobStateInfo] | None:
        try:
            with self._sending(deadline, "destroy_job"):
                return service.send_destroy(self._require_id(), reason, deadline)
        except ProtocolTimeoutError:
            raise
        except ProtocolError:
            return None

    def _require_service(self) -> Service:
        if self._service is None:
            raise ProtocolError("not connected")
        return self._service

    def _require_id(self) -> int:
        if self._id is None:
            raise ProtocolError("no job")
        return self._id

    def _signal_background(self) -> None:
        """Stop listening and ask the keepalive thread to end, without waiting for it."""
        for remove in self._removers:
            remove()
        self._removers = []
        if self._keeper is not None:
            self._keeper.stop(timeout=0)
        with self._cond:
            self._cond.notify_all()  # waits see _finished and return

    def _join_background(self, timeout: float | None) -> None:
        if self._keeper is not None:
            self._keeper.stop(timeout=timeout)
