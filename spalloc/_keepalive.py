"""The background thread that keeps a job alive, its state fresh and its connection up.

One named daemon thread per :class:`~spalloc.job.Job`. While connected it calls ``beat``
every ``interval`` seconds (keepalive/2) and ``refresh`` whenever asked to (a notification
said the job changed); when the connection is down it calls ``reconnect`` at once (unless
the connection had only just been made) and then every ``reconnect_delay`` seconds until that
succeeds. It sleeps on a condition, so
:meth:`KeepaliveThread.stop` returns at once and :meth:`KeepaliveThread.wake` (the
connection dropped) or :meth:`KeepaliveThread.request_refresh` take effect immediately.
It never raises: the callbacks record their own failures.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["KeepaliveThread"]

log = logging.getLogger(__name__)


class KeepaliveThread:
    """Run a job's background work on one thread.

    Args:
        name: the thread's name.
        interval: seconds between beats; ``None`` sends none.
        reconnect_delay: seconds between reconnection attempts.
        beat: sends one keepalive (and refreshes); exceptions are logged, the loop goes on.
        refresh: re-reads the job's state after a notification.
        reconnect: tries once to reconnect; an exception means "try again later".
        is_connected: whether the connection is currently up.
    """

    def __init__(self, name: str, interval: float | None, reconnect_delay: float,
                 beat: Callable[[], None], refresh: Callable[[], None],
                 reconnect: Callable[[], None], is_connected: Callable[[], bool]) -> None:
        self._interval = interval
        self._reconnect_delay = reconnect_delay
        self._beat = beat
        self._refresh = refresh
        self._reconnect = reconnect
        self._is_connected = is_connected
        self._cond = threading.Condition()
        self._stopping = False
        self._woken = False
        self._refresh_wanted = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

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

    def request_refresh(self) -> None:
        """Ask for a ``refresh`` as soon as possible (cheap: safe on the socket reader)."""
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

    def _run(self) -> None:
        next_beat = None if self._interval is None else time.monotonic() + self._interval
        # A lost connection is replaced at once (a stalled one must be replaced within the
        # keepalive margin), but at most once per reconnect_delay, so a server that accepts
        # and drops connections is not hammered; after a failed attempt, wait the delay.
        last_immediate: float | None = None
        failed = False
        while True:
            if not self._is_connected():
                now = time.monotonic()
                if (failed or (last_immediate is not None
                               and now - last_immediate < self._reconnect_delay)):
                    with self._cond:
                        self._cond.wait_for(lambda: self._stopping, self._reconnect_delay)
                else:
                    last_immediate = now
                if self._stopping:
                    return
                try:
                    self._reconnect()
                except Exception as exc:
                    log.debug("reconnection failed: %s", exc)
                    failed = True
                    continue
                failed = False
                with self._cond:
                    self._refresh_wanted = False  # reconnecting refreshed the state
                # Reconnected: beat at once, as a keepalive period may have gone by.
                next_beat = time.monotonic()
            with self._cond:
                timeout = None if next_beat is None else max(0.0, next_beat - time.monotonic())
                self._cond.wait_for(
                    lambda: self._stopping or self._woken or self._refresh_wanted, timeout)
                if self._stopping:
                    return
                self._woken = False
                refresh, self._refresh_wanted = self._refresh_wanted, False
            if not self._is_connected():
                continue
            if next_beat is not None and time.monotonic() >= next_beat:
                self._call(self._beat, "keepalive")  # a beat refreshes the state too
                next_beat = (None if self._interval is None
                             else time.monotonic() + self._interval)
            elif refresh:
                self._call(self._refresh, "refresh")
