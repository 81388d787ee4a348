"""One follower for everything that follows a server: a job (``Job``), a machine (the board
map) or a listing (``--watch``).

A :class:`Follower` is one named daemon thread. While connected it calls ``beat`` every
``interval`` seconds (a job's keepalive/2; none when ``interval`` is ``None``) and ``refresh``
when asked (:meth:`Follower.changed`; a burst of requests is merged into one refresh). When the
connection is down it calls ``reconnect``: at once the first time (a stalled connection must be
replaced within the keepalive margin), then every ``reconnect_delay`` seconds while attempts
fail or when the last attempt was less than ``reconnect_delay`` ago (a server that accepts and
drops connections is not hammered). It sleeps on a condition, so :meth:`Follower.stop`
returns at once. It never raises: the callbacks record their own failures.

A service that reads its notifications only while someone waits for them (the one-thread v1
driver of the command-line tools) is followed by passing its ``wait_for_change``: the
follower then sleeps in it, and a change it reports asks for a refresh. :meth:`Follower.run`
runs the same loop on the calling thread (``--watch``: Ctrl-C reaches it there).

When to do what is decided by :class:`Plan`, which holds no thread and reads no clock: the
thread gives it the time, and tests drive it with a fake one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Follower", "Plan"]

log = logging.getLogger(__name__)

# How long one sleep in a ``wait_for_change`` may last, so that stop() is seen promptly.
_WAKE_INTERVAL = 0.5


class Plan:
    """The follower's timetable: when to beat and when to try reconnecting.

    Args:
        interval: seconds between beats; ``None`` for no beats.
        reconnect_delay: seconds between reconnection attempts after a failure.
        now: the time the follower starts (any monotonic clock).
    """

    def __init__(self, interval: float | None, reconnect_delay: float, now: float) -> None:
        self.interval = interval
        self.reconnect_delay = reconnect_delay
        self.next_beat: float | None = None if interval is None else now + interval
        self._last_attempt: float | None = None
        self._failed = False

    def reconnect_wait(self, now: float) -> float:
        """Seconds to wait before the next reconnection attempt, which starts then: none
        unless the last attempt failed or was less than ``reconnect_delay`` ago."""
        last = self._last_attempt
        wait = (
            self.reconnect_delay
            if self._failed or (last is not None and now - last < self.reconnect_delay)
            else 0.0
        )
        self._last_attempt = now + wait
        return wait

    def reconnected(self, now: float, ok: bool) -> None:
        """Note the outcome of an attempt; a new connection beats at once (a keepalive
        period may have gone by)."""
        self._failed = not ok
        if ok and self.interval is not None:
            self.next_beat = now

    def idle_wait(self, now: float) -> float | None:
        """Seconds until the next beat (``None``: no beat is planned)."""
        return None if self.next_beat is None else max(0.0, self.next_beat - now)

    def beat_due(self, now: float) -> bool:
        """True when a beat should go now."""
        return self.next_beat is not None and now >= self.next_beat

    def beaten(self, now: float) -> None:
        """A beat has just finished (well or not): plan the next one."""
        self.next_beat = None if self.interval is None else now + self.interval


class Follower:
    """Run one follower's background work on one thread.

    Args:
        name: the thread's name.
        interval: seconds between beats; ``None`` sends none.
        reconnect_delay: seconds between failed reconnection attempts.
        beat: e.g. sends one keepalive (and refreshes); exceptions are logged, the loop goes on.
        refresh: re-reads what is followed after a change.
        reconnect: tries once to reconnect (and resubscribe); an exception means "try later".
        is_connected: whether the connection is currently up.
        clock: the monotonic clock (tests may pass another).
        wait_for_change: sleep in this instead of on the follower's own condition: called
            with a timeout, returns True when something followed changed (a refresh is
            then due); an exception means the connection failed (``is_connected`` should
            then say so). Used for services without a thread of their own.
    """

    def __init__(
        self,
        name: str,
        interval: float | None,
        reconnect_delay: float,
        beat: Callable[[], None],
        refresh: Callable[[], None],
        reconnect: Callable[[], None],
        is_connected: Callable[[], bool],
        *,
        clock: Callable[[], float] = time.monotonic,
        wait_for_change: Callable[[float | None], bool] | None = None,
    ) -> None:
        self._interval = interval
        self._reconnect_delay = reconnect_delay
        self._beat = beat
        self._refresh = refresh
        self._reconnect = reconnect
        self._is_connected = is_connected
        self._clock = clock
        self._wait_for_change = wait_for_change
        self._cond = threading.Condition()
        self._stopping = False
        self._woken = False
        self._refresh_wanted = False
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    @property
    def started(self) -> bool:
        """True once :meth:`start` has been called."""
        return self._thread.ident is not None

    @property
    def name(self) -> str:
        """The thread's name (may be changed while it runs)."""
        return self._thread.name

    @name.setter
    def name(self, name: str) -> None:
        self._thread.name = name

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` has been called."""
        return self._stopping

    def stop(self, timeout: float | None = 5.0) -> None:
        """Ask the thread to end, and wait for it (unless called from the thread itself)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread() and self._thread.is_alive():
            self._thread.join(timeout)

    def wake(self) -> None:
        """Make the thread look at the connection now (e.g. it was just lost)."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def changed(self) -> None:
        """Ask for a ``refresh`` as soon as possible (cheap: safe on a socket reader)."""
        with self._cond:
            self._refresh_wanted = True
            self._cond.notify_all()

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()

    def _call(self, fn: Callable[[], None], what: str) -> None:
        try:
            fn()
        except Exception as exc:
            log.debug("%s failed: %s", what, exc)

    def run(self) -> None:
        """Follow on the calling thread until :meth:`stop` (what the thread runs)."""
        plan = Plan(self._interval, self._reconnect_delay, self._clock())
        while not self._stopping:
            if not self._is_connected():
                wait = plan.reconnect_wait(self._clock())
                if wait:
                    with self._cond:
                        self._cond.wait_for(lambda: self._stopping, wait)
                if self._stopping:
                    return
                try:
                    self._reconnect()
                except Exception as exc:
                    log.debug("reconnection failed: %s", exc)
                    plan.reconnected(self._clock(), ok=False)
                    continue
                plan.reconnected(self._clock(), ok=True)
                with self._cond:
                    self._refresh_wanted = False  # reconnecting refreshed the state
            if self._wait_for_change is not None:
                self._sleep_in_service(plan.idle_wait(self._clock()))
            with self._cond:
                self._cond.wait_for(
                    lambda: self._stopping or self._woken or self._refresh_wanted,
                    plan.idle_wait(self._clock()),
                )
                if self._stopping:
                    return
                self._woken = False
                refresh, self._refresh_wanted = self._refresh_wanted, False
            if not self._is_connected():
                continue
            if plan.beat_due(self._clock()):
                self._call(self._beat, "keepalive")  # a beat refreshes the state too
                plan.beaten(self._clock())
            elif refresh:
                self._call(self._refresh, "refresh")

    def _sleep_in_service(self, idle: float | None) -> None:
        """Sleep in the service's ``wait_for_change`` until a change, a failure, a request
        (stop, wake, changed) or the next beat, waking every so often to see a request."""
        assert self._wait_for_change is not None
        end = None if idle is None else self._clock() + idle
        while True:
            with self._cond:
                if self._stopping or self._woken or self._refresh_wanted:
                    return
            left = None if end is None else end - self._clock()
            if left is not None and left <= 0:
                return
            try:
                changed = self._wait_for_change(
                    _WAKE_INTERVAL if left is None else min(left, _WAKE_INTERVAL)
                )
            except Exception as exc:
                log.debug("waiting for changes failed: %s", exc)
                self.wake()  # look at the connection
                return
            if changed:
                self.changed()
                return
