"""Following changes over spalloc v2: the long-polls behind ``follow_jobs``,
``follow_machines``, ``wait_for_change`` and the ``on_*`` listeners of
:class:`~spalloc.service.v2.V2Service` (a mixin: the service holds the state declared here).

A followed job is a ``GET …/jobs/N?wait=true`` long-poll on a thread of its own; a followed
machine (``GET …/machines/NAME?wait=true``) or the job list likewise. Threads are named daemons,
ended when the connection's generation changes or the service closes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from spalloc.exceptions import ProtocolError, ServerConnectionError, SpallocError
from spalloc.service import _v2wire as wire
from spalloc.states import JobState

if TYPE_CHECKING:
    from spalloc.models import MachineDescription

__all__ = ["V2Follow"]

log = logging.getLogger("spalloc.service.v2")

# Seconds a poll thread waits before polling again after the server refused a poll.
_POLL_RETRY = 1.0
# A long-poll answered after this many seconds with nothing new has run out its time (the Java
# server's and the emulator's longest wait are 30 s); an earlier answer means a change.
_QUIET_POLL = 20.0
# Keys of a job's state document that change without the job changing.
_VOLATILE = frozenset({"keep-alive-time", "keepalive-host"})


class V2Follow:
    """The change-following half of :class:`~spalloc.service.v2.V2Service`."""

    if TYPE_CHECKING:  # what the service provides
        _lock: threading.Lock
        _connected: bool
        _generation: int
        _closed: threading.Event
        _followed: dict[int, threading.Thread]
        _watched: dict[tuple[str, str], threading.Thread]
        _changes: threading.Condition
        _changed: int
        _consumed: int
        _job_listeners: list[Callable[[Sequence[int]], None]]
        _machine_listeners: list[Callable[[Sequence[str]], None]]
        _lost_listeners: list[Callable[[ProtocolError], None]]

        @property
        def address(self) -> str: ...
        def _json(
            self, method: str, path: str, deadline: float | None, what: str, **kwargs: Any
        ) -> Any: ...
        def _job_doc(
            self, job_id: int, deadline: float | None, *, wait: bool = False
        ) -> dict[str, Any] | None: ...
        def list_machines(self, deadline: float | None) -> Sequence[MachineDescription]: ...

    # --- changes -----------------------------------------------------------------------------

    def follow_jobs(self, deadline: float | None, job_id: int | None = None) -> None:
        if job_id is not None:
            self._follow(job_id)
        else:
            self._watch(("jobs", ""), "srv/spalloc/jobs", {"limit": 200}, deadline)

    def follow_machines(self, deadline: float | None, machine: str | None = None) -> None:
        names = [machine] if machine is not None else [m.name for m in self.list_machines(deadline)]
        for name in names:
            self._watch(("machine", name), f"srv/spalloc/machines/{name}", {}, deadline)

    def wait_for_change(self, timeout: float | None) -> bool:
        with self._changes:
            if not self._changes.wait_for(
                lambda: self._changed != self._consumed or not self._connected, timeout
            ):
                return False
            if not self._connected:
                raise ProtocolError(f"not connected to {self.address}")
            self._consumed = self._changed  # a burst counts once
            return True

    def _noted(self) -> None:
        with self._changes:
            self._changed += 1
            self._changes.notify_all()

    def _watch(
        self, key: tuple[str, str], path: str, params: dict[str, Any], deadline: float | None
    ) -> None:
        with self._lock:
            if not self._connected or key in self._watched:
                return
        # Read once now: the long-polls compare with it, so a change made after this call
        # returns is reported even if it lands before the first long-poll reaches the server.
        baseline = self._json(
            "GET",
            path,
            deadline,
            f"follow {key[0]} {key[1]}".strip(),
            params={**params, "wait": "false"},
        )
        with self._lock:
            if not self._connected or key in self._watched:
                return
            thread = threading.Thread(
                target=self._long_poll,
                args=(key, path, params, baseline, self._generation),
                name=f"spalloc-v2-follow-{key[0]}-{key[1]}",
                daemon=True,
            )
            self._watched[key] = thread
        thread.start()

    def _long_poll(
        self, key: tuple[str, str], path: str, params: dict[str, Any], last: Any, generation: int
    ) -> None:
        """Long-poll a machine or the job list; tell the listeners whenever it changes.

        A long-poll that returns before the server's longest wait is a change even when the
        document reads the same (a machine's document does not show its allocations, the job
        list not its jobs' states); one that ran out its time and reads the same is not.
        """
        kind, name = key

        def following() -> bool:
            return (
                not self._closed.is_set()
                and self._generation == generation
                and key in self._watched
            )

        while following():
            started = time.monotonic()
            try:
                doc = self._json(
                    "GET",
                    path,
                    None,
                    f"follow {kind} {name}".strip(),
                    poll=True,
                    params={**params, "wait": "true"},
                )
            except ServerConnectionError:
                return  # reported to the on_connection_lost listeners already
            except SpallocError as exc:
                if not following():
                    return
                log.debug("long-poll of %s %s failed: %s", kind, name, exc)
                self._closed.wait(_POLL_RETRY)
                continue
            if not following():
                return
            if doc == last and time.monotonic() - started >= _QUIET_POLL:
                continue
            last = doc
            self._noted()
            if kind == "machine":
                for on_machine in list(self._machine_listeners):
                    on_machine([name])
            else:
                ids = wire.job_ids((doc or {}).get("jobs", []))
                for on_jobs in list(self._job_listeners):
                    on_jobs(ids)

    def on_machine_changed(self, fn: Callable[[Sequence[str]], None]) -> Callable[[], None]:
        self._machine_listeners.append(fn)
        return lambda: _discard(self._machine_listeners, fn)

    def _follow(self, job_id: int) -> None:
        with self._lock:
            if not self._connected or job_id in self._followed:
                return
            thread = threading.Thread(
                target=self._poll,
                args=(job_id, self._generation),
                name=f"spalloc-v2-follow-{job_id}",
                daemon=True,
            )
            self._followed[job_id] = thread
        thread.start()

    def _following(self, job_id: int, generation: int) -> bool:
        return (
            not self._closed.is_set()
            and self._generation == generation
            and job_id in self._followed
        )

    def _poll(self, job_id: int, generation: int) -> None:
        """Long-poll one job's state; tell the listeners whenever it changes."""
        last: dict[str, Any] | None = None
        while self._following(job_id, generation):
            try:
                doc = self._job_doc(job_id, None, wait=True)
            except ServerConnectionError:
                return  # reported to the on_connection_lost listeners already
            except SpallocError as exc:
                if not self._following(job_id, generation):
                    return
                log.debug("long-poll of job %d failed: %s", job_id, exc)
                self._closed.wait(_POLL_RETRY)
                continue
            if not self._following(job_id, generation):
                return
            seen = None if doc is None else {k: v for k, v in doc.items() if k not in _VOLATILE}
            if seen != last:
                if last is not None:
                    self._noted()
                last = seen
                for fn in list(self._job_listeners):
                    fn([job_id])
            if doc is None or wire.state_of(doc) is JobState.destroyed:
                with self._lock:
                    if self._followed.get(job_id) is threading.current_thread():
                        del self._followed[job_id]
                return

    def _lost(self, error: ServerConnectionError) -> None:
        """A request met a transport error: the connection counts as lost (once)."""
        with self._lock:
            if not self._connected:
                return
            self._end_follows()
        for fn in list(self._lost_listeners):
            fn(error)

    def _end_follows(self) -> None:
        """Count the connection as gone (the lock held): every long-poll thread sees the new
        generation and ends, and a wait_for_change() learns at once."""
        self._connected = False
        self._generation += 1
        self._followed.clear()
        self._watched.clear()
        self._changes.notify_all()

    def on_job_changed(self, fn: Callable[[Sequence[int]], None]) -> Callable[[], None]:
        self._job_listeners.append(fn)
        return lambda: _discard(self._job_listeners, fn)

    def on_connection_lost(self, fn: Callable[[ProtocolError], None]) -> Callable[[], None]:
        self._lost_listeners.append(fn)
        return lambda: _discard(self._lost_listeners, fn)


def _discard(listeners: list[Any], fn: Any) -> None:
    if fn in listeners:
        listeners.remove(fn)
