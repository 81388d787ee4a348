"""Following changes over spalloc v2: the long-polls behind ``follow_jobs``,
``follow_machines``, ``wait_for_change`` and the ``on_*`` listeners of
:class:`~spalloc.service.v2.V2Service` (a mixin: the service holds the state declared here).

Each thing followed — a job (``GET …/jobs/N?wait=true``), a machine (``GET
…/machines/NAME?wait=true``) or the job list — is one long-poll loop on a thread of its own,
keyed ``("job", "N")``, ``("machine", NAME)`` or ``("jobs", "")``; the loops differ only in
the step that polls once and judges what came back. Threads are named daemons, ended when the
connection's generation changes, the thing is no longer followed, or the service closes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
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
# A server answering this many long-polls in a row, each within _FAST seconds, with the same
# document is ignoring wait=true (a woken long-poll answers at once only in a burst of changes).
_IGNORED = 3
_FAST = 0.05
# Keys of a job's state document that change without the job changing.
_VOLATILE = frozenset({"keep-alive-time", "keepalive-host"})


#: One long-poll of a follow, judged: False when there is nothing more to follow. It is given
#: the test of whether the follow still stands (its answer is not acted on otherwise).
_Step = Callable[[Callable[[], bool]], bool]


class V2Follow:
    """The change-following half of :class:`~spalloc.service.v2.V2Service`."""

    if TYPE_CHECKING:  # what the service provides
        _lock: threading.Lock
        _connected: bool
        _generation: int
        _closed: threading.Event
        _follows: dict[tuple[str, str], threading.Thread]
        _changes: threading.Condition
        _changed: int
        _consumed: int
        _job_listeners: list[Callable[[Sequence[int]], None]]
        _machine_listeners: list[Callable[[Sequence[str]], None]]
        _lost_listeners: list[Callable[[ProtocolError], None]]
        _pool: concurrent.futures.ThreadPoolExecutor

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
            if self._wanted(("job", str(job_id))):
                self._follow_job(job_id, self._job_doc(job_id, deadline))
        else:
            self._follow_document(("jobs", ""), "srv/spalloc/jobs", {"limit": 200}, deadline)

    def follow_machines(self, deadline: float | None, machine: str | None = None) -> None:
        names = [machine] if machine is not None else [m.name for m in self.list_machines(deadline)]
        for name in names:
            self._follow_document(("machine", name), f"srv/spalloc/machines/{name}", {}, deadline)

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

    def _start_follow(self, key: tuple[str, str], step: _Step) -> None:
        """Follow *key* on a thread of its own, calling *step* (one long-poll, judged; False:
        nothing more to follow; it is given the test of whether the follow still stands)
        until the connection or the service ends."""
        with self._lock:
            if not self._connected or key in self._follows:
                return
            thread = threading.Thread(
                target=self._run_follow,
                args=(key, step, self._generation),
                name=f"spalloc-v2-follow-{key[1] if key[0] == 'job' else '-'.join(key)}",
                daemon=True,
            )
            self._follows[key] = thread
        thread.start()

    def _still_following(self, key: tuple[str, str], generation: int) -> bool:
        return (
            not self._closed.is_set()
            and self._generation == generation
            and self._follows.get(key) is threading.current_thread()
        )

    def _run_follow(self, key: tuple[str, str], step: _Step, generation: int) -> None:
        def following() -> bool:
            return self._still_following(key, generation)

        while following():
            try:
                more = step(following)
            except ServerConnectionError:
                return  # reported to the on_connection_lost listeners already
            except SpallocError as exc:
                if not following():
                    return
                log.debug("long-poll of %s failed: %s", " ".join(key).strip(), exc)
                self._closed.wait(_POLL_RETRY)
                continue
            if not more:
                with self._lock:
                    if self._follows.get(key) is threading.current_thread():
                        del self._follows[key]
                return

    def _wanted(self, key: tuple[str, str]) -> bool:
        """Whether *key* is yet to be followed (and can be: connected)."""
        with self._lock:
            return self._connected and key not in self._follows

    def _step(
        self,
        poll: Callable[[], Any],
        first: Any,
        report: Callable[[Any], None],
        ends: Callable[[Any], bool] = lambda doc: False,
    ) -> _Step:
        """One long-poll (``poll()``), judged against the document last seen (*first* to
        begin with): ``report(doc)`` on a change; the follow ends once ``ends(doc)``."""
        judge = _Judge(first)

        def step(following: Callable[[], bool]) -> bool:
            started = time.monotonic()
            doc = poll()
            if following():  # (if not, the loop sees it and ends)
                if judge.changed(doc, started):
                    report(doc)
                elif judge.ignoring:
                    self._closed.wait(_POLL_RETRY)
            return not ends(doc)

        return step

    def _follow_job(self, job_id: int, doc: dict[str, Any] | None) -> None:
        """Follow job *job_id*'s state from *doc*, its state document as just read: a change
        made after that read is reported even if it lands before the first long-poll reaches
        the server (when its long-poll is answered). The job's end ends the follow."""
        if doc is None or wire.state_of(doc) is JobState.destroyed:
            return  # nothing will change any more
        self._start_follow(
            ("job", str(job_id)),
            self._step(
                lambda: _settled(self._job_doc(job_id, None, wait=True)),
                _settled(doc),
                lambda _: self._report_job(job_id),
                ends=lambda seen: seen is None or wire.state_of(seen) is JobState.destroyed,
            ),
        )

    def _report_job(self, job_id: int) -> None:
        self._noted()
        for fn in list(self._job_listeners):
            fn([job_id])

    def _changed_here(self, job_id: int) -> None:
        """Report a change this service made to followed job *job_id* (its power), from a
        thread of the pool. Its long-poll reports it too when it reached the server first;
        one that arrived after the change waits for the next, so it cannot be relied on."""
        with self._lock:
            if ("job", str(job_id)) not in self._follows:
                return
        with contextlib.suppress(RuntimeError):  # the pool was shut down: closing
            self._pool.submit(self._report_job, job_id)

    def _follow_document(
        self, key: tuple[str, str], path: str, params: dict[str, Any], deadline: float | None
    ) -> None:
        """Follow a machine's document or the job list.

        A long-poll that returns before the server's longest wait is a change even when the
        document reads the same (a machine's document does not show its allocations, the job
        list not its jobs' states); one that ran out its time and reads the same is not.
        """
        if not self._wanted(key):
            return
        kind, name = key
        what = f"follow {kind} {name}".strip()
        # Read once now: the long-polls compare with it, so a change made after this call
        # returns is reported even if it lands before the first long-poll reaches the server.
        first = self._json("GET", path, deadline, what, params={**params, "wait": "false"})

        def poll() -> Any:
            return self._json("GET", path, None, what, poll=True, params={**params, "wait": "true"})

        def report(doc: Any) -> None:
            self._noted()
            if kind == "machine":
                for on_machine in list(self._machine_listeners):
                    on_machine([name])
            else:
                ids = wire.job_ids((doc or {}).get("jobs", []))
                for on_jobs in list(self._job_listeners):
                    on_jobs(ids)

        self._start_follow(key, self._step(poll, first, report))

    def on_machine_changed(self, fn: Callable[[Sequence[str]], None]) -> Callable[[], None]:
        self._machine_listeners.append(fn)
        return lambda: _discard(self._machine_listeners, fn)

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
        self._follows.clear()
        self._changes.notify_all()

    def on_job_changed(self, fn: Callable[[Sequence[int]], None]) -> Callable[[], None]:
        self._job_listeners.append(fn)
        return lambda: _discard(self._job_listeners, fn)

    def on_connection_lost(self, fn: Callable[[ProtocolError], None]) -> Callable[[], None]:
        self._lost_listeners.append(fn)
        return lambda: _discard(self._lost_listeners, fn)


def _settled(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """A job's state document without the keys that change while the job does not."""
    return None if doc is None else {k: v for k, v in doc.items() if k not in _VOLATILE}


class _Judge:
    """Whether one long-poll's answer is a change, given the document it last saw.

    A different document is a change. So is the same document answered before the server's
    longest wait: the server was woken (a machine's document does not show its allocations,
    the job list not its jobs' states, a job's not its power). A server that answers every
    long-poll at once with the same document is taken to ignore ``wait`` (:attr:`ignoring`,
    after :data:`_IGNORED` such answers in a row, each faster than :data:`_FAST` seconds):
    then only different documents count, and the follow polls every :data:`_POLL_RETRY` s.
    """

    def __init__(self, first: Any) -> None:
        self._last = first
        self._fast = 0  # the same document answered at once, this many times in a row

    @property
    def ignoring(self) -> bool:
        return self._fast >= _IGNORED

    def changed(self, doc: Any, started: float) -> bool:
        took = time.monotonic() - started
        if doc != self._last:
            self._last = doc
            self._fast = 0
            return True
        self._fast = self._fast + 1 if took < _FAST else 0
        return not self.ignoring and took < _QUIET_POLL


def _discard(listeners: list[Any], fn: Any) -> None:
    if fn in listeners:
        listeners.remove(fn)
