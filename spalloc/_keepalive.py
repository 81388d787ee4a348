"""The background thread that keeps a job alive and its connection up.

One named daemon thread per :class:`~spalloc.job.Job`. While connected it calls ``beat``
every ``interval`` seconds (keepalive/2); when the connection is down it calls ``reconnect``
every ``reconnect_delay`` seconds until that succeeds. It sleeps on a condition, so
:meth:`KeepaliveThread.stop` returns at once and :meth:`KeepaliveThread.wake` (called when
the connection drops) makes it react without waiting out its interval. It never raises:
``beat`` and ``reconnect`` record their own failures.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["KeepaliveThread"]

log = logging.getLogger(__name__)


class KeepaliveThread:
    """Call ``beat`` every *interval* s while ``is_connected()``, else ``reconnect``.

    Args:
        name: the thread's name.
        interval: seconds between beats; ``None`` sends none (the thread then only reconnects).
        reconnect_delay: seconds between reconnection attempts.
        beat: sends one keepalive; exceptions are logged and the loop goes on.
        reconnect: tries once to reconnect; an exception means "try again later".
        is_connected: whether the connection is currently up.
    """

    def __init__(self, name: str, interval: float | None, reconnect_delay: float,
                 beat: Callable[[], None], reconnect: Callable[[], None],
                 is_connected: Callable[[], bool]) -> None:
        self._interval = interval
        self._reconnect_delay = reconnect_delay
        self._beat = beat
        self._reconnect = reconnect
        self._is_connected = is_connected
        self._cond = threading.Condition()
        self._stopping = False
        self._woken = False
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

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopping

    def _sleep(self, seconds: float | None, wakeable: bool) -> bool:
        """Sleep; True if the thread must stop."""
        with self._cond:
            if wakeable:
                self._cond.wait_for(lambda: self._stopping or self._woken, seconds)
                self._woken = False
            else:
                self._cond.wait_for(lambda: self._stopping, seconds)
            return self._stopping

    def _run(self) -> None:
        while True:
            if self._is_connected():
                if self._sleep(self._interval, wakeable=True):
                    return
                if not self._is_connected():
                    continue  # woken because the connection dropped
            else:
                # Wait first: a server that just dropped us is rarely back at once.
                if self._sleep(self._reconnect_delay, wakeable=False):
                    return
                try:
                    self._reconnect()
                except Exception as exc:
                    log.debug("reconnection failed: %s", exc)
                    continue
                # Reconnected: beat at once, as a keepalive period may have gone by.
            try:
                self._beat()
            except Exception as exc:
                log.debug("keepalive failed: %s", exc)
