"""Outputs that stay true: every job and map output has a display id and a final view.

A live output carries the widget view next to ``text/html`` and ``text/plain``. When what
it shows ends (the job is destroyed or expires, the extension is unloaded, the kernel shuts
down or restarts) the output is replaced through its display id by a static bundle with no
widget view: what a saved notebook holds is then the final state, and a reopened notebook
has no widget view whose model could be "not found".

Like :mod:`spalloc_nb._registry`, this module survives ``%reload_ext``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["WIDGET_VIEW", "Displays", "displays", "new_display_id", "show", "show_static"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

#: ``final(reason)`` -> the static bundle that replaces a live output.
Final = Callable[[str], dict[str, Any]]


class Displays:
    """Display ids of live outputs, grouped by the object they show."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # id(key) -> (display ids, final bundle maker); the key's owner keeps it alive
        self._live: dict[int, tuple[list[str], Final]] = {}
        # Final views sent from a background thread, sent again from the next cell's end:
        # an update from a thread has no cell as parent, and nbclient (so a notebook run
        # headless and saved) only applies updates that belong to a cell.
        self._from_threads: list[tuple[list[str], dict[str, Any]]] = []

    def add(self, key: object, display_id: str, final: Final) -> None:
        """Remember that ``display_id`` shows ``key`` live until :meth:`finish`."""
        with self._lock:
            ids, _old = self._live.get(id(key), ([], final))
            ids.append(display_id)
            self._live[id(key)] = (ids, final)

    def discard(self, key: object, display_id: str) -> None:
        """Stop updating one output of ``key`` (e.g. a progress view that was cleared)."""
        with self._lock:
            entry = self._live.get(id(key))
            if entry is not None and display_id in entry[0]:
                entry[0].remove(display_id)

    def resend_from_threads(self, *_args: Any) -> None:
        """Send again, from this cell, the final views a background thread sent."""
        with self._lock:
            pending, self._from_threads = self._from_threads, []
        for ids, bundle in pending:
            _update(ids, bundle)

    def ids(self, key: object) -> list[str]:
        """The live display ids of ``key``."""
        with self._lock:
            entry = self._live.get(id(key))
            return list(entry[0]) if entry else []

    def finish(self, key: object, reason: str) -> bool:
        """Replace every live output of ``key`` by its final static view; False if none."""
        return self._finish(id(key), reason)

    def finish_all(self, reason: str) -> int:
        """Finish every live output (unload, kernel exit); returns how many objects."""
        with self._lock:
            keys = list(self._live)
        return sum(self._finish(key, reason) for key in keys)

    def _finish(self, key: int, reason: str) -> bool:
        with self._lock:
            entry = self._live.pop(key, None)
        if entry is None:
            return False
        ids, final = entry
        try:
            bundle = dict(final(reason))
        except Exception:  # a broken renderer must not stop the others at exit
            return False
        bundle.pop(WIDGET_VIEW, None)
        _update(ids, bundle)
        if threading.current_thread() is not threading.main_thread():
            with self._lock:
                self._from_threads.append((ids, bundle))
        return True


def _update(ids: list[str], bundle: dict[str, Any]) -> None:
    try:
        from IPython.display import update_display
    except ImportError:  # pragma: no cover - the notebook extra brings IPython
        return
    for display_id in ids:
        try:
            update_display(bundle, raw=True, display_id=display_id)
        except Exception:  # no shell any more (interpreter exit): nothing to update
            pass


def show(
    key: object, bundle: dict[str, Any], final: Final, metadata: dict[str, Any] | None = None
) -> str:
    """Display ``bundle`` with a new display id that :meth:`Displays.finish` can replace."""
    from IPython.display import display

    display_id = new_display_id()
    displays.add(key, display_id, final)
    display(bundle, raw=True, metadata=metadata or None, display_id=display_id)
    return display_id


def new_display_id() -> str:
    """A display id of ours (``spalloc-<hex>``)."""
    return f"spalloc-{uuid.uuid4().hex}"


def show_static(bundle: dict[str, Any]) -> None:
    """Display a bundle that never changes (no widget view, no display id)."""
    from IPython.display import display

    bundle = dict(bundle)
    bundle.pop(WIDGET_VIEW, None)
    display(bundle, raw=True)


displays = Displays()
