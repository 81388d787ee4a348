"""The one ``--watch`` loop shared by every tool: redraw whenever the server says so.

The loop subscribes nothing itself: the tool follows what it shows (the service's
``follow_jobs`` / ``follow_machines``) and passes a ``frame`` function that fetches fresh data
and returns the lines to show plus whether watching is over (the watched job was destroyed:
B19). Between frames it sleeps in the service's ``wait_for_change``; changes that pile up
meanwhile are merged into one redraw.

On a terminal the frame is redrawn in place with ``rich.live.Live``; anywhere else (a pipe,
a file, a test) each frame is printed in full followed by a blank line, as the official
tools did.
"""

from __future__ import annotations

from collections.abc import Callable

from spalloc.cli._common import EXIT_INTERRUPTED, EXIT_OK
from spalloc.cli._output import Output, to_rich
from spalloc.ui.render import Lines

TYPE_CHECKING = False  # not typing's: that import costs start-up time (mypy sees True)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Frame", "show", "wait_for_change", "watch"]

#: Returns the lines to show and True when there is nothing more to watch.
Frame = Callable[[], tuple[Lines, bool]]

# How often a wait wakes up locally (not a server poll) so Ctrl-C is always prompt.
_WAKE_INTERVAL = 0.5


def wait_for_change(service: Any) -> None:
    """Block until something followed changes (a burst counts once).

    Raises:
        ProtocolError: the connection was lost.
    """
    while not service.wait_for_change(_WAKE_INTERVAL):
        pass  # woken locally so that Ctrl-C is prompt; no request is made


def watch(out: Output, frame: Frame, service: Any) -> int:
    """Show ``frame()`` and redraw it after every change until it reports it is finished.

    Returns:
        0 when the watched thing ended, 130 when interrupted with Ctrl-C.

    Raises:
        ProtocolError: the connection was lost (the caller's error wrapper reports it).
    """
    try:
        if out.tty:
            return _watch_live(out, frame, service)
        return _watch_plain(out, frame, service)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _watch_plain(out: Output, frame: Frame, service: Any) -> int:
    while True:
        lines, finished = frame()
        out.lines(lines)
        out.text("")
        if finished:
            return EXIT_OK
        wait_for_change(service)


def _watch_live(out: Output, frame: Frame, service: Any) -> int:
    with out.live(vertical_overflow="visible") as live:
        while True:
            lines, finished = frame()
            live.update(to_rich(lines), refresh=True)
            if finished:
                return EXIT_OK
            wait_for_change(service)


def show(
    out: Any,
    frame: Callable[[], tuple[Any, bool]],
    service: Any,
    *,
    watch: bool,
    follow: Callable[[], None] | None = None,
) -> int:
    """Print ``frame()`` once; with ``watch``, call ``follow()`` (subscribe to what the frame
    shows) and redraw the frame after every change until it says it is finished."""
    if not watch:
        out.lines(frame()[0])
        return EXIT_OK
    if follow is not None:
        follow()
    return _watch(out, frame, service)


_watch = watch  # show()'s ``watch`` flag hides the function's name
