"""A small owned thread that runs callbacks in order (listeners of the client and of a Job)."""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)


class Dispatcher:
    """Runs callbacks in order on one named daemon thread, started on first use."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._items: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._ready = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._stopping = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)``; it runs after everything queued before it."""
        with self._lock:
            self._items.append((fn, args))
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._ready.notify()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Run what is queued, then end the thread (not joined from itself)."""
        with self._lock:
            self._stopping = True
            self._ready.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._items and not self._stopping:
                    self._ready.wait()
                if not self._items:
                    self._thread = None
                    return
                fn, args = self._items.popleft()
            try:
                fn(*args)
            except Exception:  # a listener's bug must not kill the others
                log.exception("spalloc listener %r failed", fn)
