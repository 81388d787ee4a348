"""Jobs the notebook created, and their destruction at unload and interpreter exit.

This module is deliberately separate from ``spalloc_nb/__init__.py``: ``%reload_ext``
re-executes the package module, and the registry (with its single ``atexit`` hook) must
survive that.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["EXIT_BUDGET", "Registry", "registry"]

#: Seconds to spend destroying jobs at exit: jupyter_client sends SIGTERM after 2.5 s, and
#: the interpreter still has to tear down after this.
EXIT_BUDGET = 1.5


class Registry:
    """Owned jobs (destroyed on unload/exit) and closers for widgets and watchers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[int, Any] = {}
        self._closers: dict[int, Callable[[], None]] = {}
        self.destroy_at_exit = True
        self._atexit_registered = False

    def add_job(self, job: Any) -> None:
        """Own ``job``: it will be destroyed at unload and exit unless released."""
        with self._lock:
            self._jobs[id(job)] = job
            if not self._atexit_registered:
                # Registered once per process, however often the extension is reloaded.
                atexit.register(self._at_exit)
                self._atexit_registered = True

    def release_job(self, job: Any) -> None:
        """Stop owning ``job`` (it was destroyed, or the user asked to keep it)."""
        with self._lock:
            self._jobs.pop(id(job), None)

    def owns(self, job: Any) -> bool:
        """True if the extension created ``job`` and still owns it."""
        with self._lock:
            return id(job) in self._jobs

    def jobs(self) -> list[Any]:
        """The owned jobs, oldest first."""
        with self._lock:
            return list(self._jobs.values())

    def add_closer(self, key: object, closer: Callable[[], None]) -> None:
        """Run ``closer`` at unload (widgets use it to drop their state listeners)."""
        with self._lock:
            self._closers[id(key)] = closer

    def remove_closer(self, key: object) -> None:
        """Forget a closer registered with :meth:`add_closer`."""
        with self._lock:
            self._closers.pop(id(key), None)

    def close_all(self) -> None:
        """Run and forget every closer."""
        with self._lock:
            closers = list(self._closers.values())
            self._closers.clear()
        for closer in closers:
            try:
                closer()
            except Exception:  # a broken view must not stop the others closing
                pass

    def destroy_all(self, reason: str, *, timeout: float | None = EXIT_BUDGET) -> list[Any]:
        """Destroy every owned job concurrently; return the jobs not confirmed within ``timeout``.

        One daemon thread per job, because the kernel may be killed soon after this starts
        and a slow or unreachable server must not use up the budget of the other jobs.
        """
        with self._lock:
            jobs = list(self._jobs.values())
            self._jobs.clear()
        if not jobs:
            return []
        threads = []
        for job in jobs:
            thread = threading.Thread(
                target=_destroy_quietly,
                args=(job, reason),
                name=f"spalloc-nb-destroy-{getattr(job, 'id', '?')}",
                daemon=True,
            )
            thread.start()
            threads.append((job, thread))
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = []
        for job, thread in threads:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
            if thread.is_alive():
                pending.append(job)
        return pending

    def _at_exit(self) -> None:
        # Only the server matters now: the front end is going away with the kernel, and
        # every second counts against the kernel's SIGTERM.
        if self.destroy_at_exit:
            self.destroy_all("Kernel shut down.")
        # Then the outputs on screen (and so in the saved notebook) become final views.
        # ipykernel's IOPub thread stops in an earlier-registered atexit hook, so after this.
        from spalloc_nb._displays import displays

        displays.finish_all("Kernel shut down.")


def _destroy_quietly(job: Any, reason: str) -> None:
    try:
        job.destroy(reason)
    except Exception:  # at exit there is nobody left to tell; the keepalive frees the boards
        pass


registry = Registry()
