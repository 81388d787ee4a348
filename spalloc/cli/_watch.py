"""The one ``--watch`` loop shared by every tool: redraw whenever the server says so.

The tool passes a ``frame`` function that fetches fresh data and returns the lines to show
plus whether watching is over (the watched job was destroyed: B19), and a ``follow``
function that subscribes to what the frame shows (the service's ``follow_jobs`` /
``follow_machines``). The loop is a :class:`spalloc.follow.Follower` run on the tool's own
thread (so Ctrl-C reaches it): it sleeps in the service's ``wait_for_change``, merges the
changes that pile up meanwhile into one redraw and, when the connection is lost, says so and
reconnects, subscribes again and redraws, at once and then every ``reconnect_delay`` seconds
(the official tools exited with "Error communicating with server" instead).

On a terminal the frame is redrawn in place with ``rich.live.Live``, with a status line
while the connection is down; anywhere else (a pipe, a file, a test) each frame is printed in
full followed by a blank line, as the official tools did, and the loss and the reconnection
are reported on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from spalloc.cli._common import EXIT_INTERRUPTED, EXIT_OK, _describe
from spalloc.cli._output import Output, to_rich
from spalloc.exceptions import ProtocolError
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


class _Watch:
    """One watch: the follower's callbacks, the last frame and the connection's status."""

    def __init__(
        self,
        out: Output,
        frame: Frame,
        service: Any,
        follow: Callable[[], None] | None,
        timeout: float | None,
        reconnect_delay: float,
    ) -> None:
        from spalloc.follow import Follower

        self.out = out
        self.frame = frame
        self.service = service
        self.follow = follow
        self.timeout = timeout
        self.reconnect_delay = reconnect_delay
        self.live: Any = None
        self.last: Lines = []
        self.lost: str | None = None  # why the connection is down, while it is
        self.error: BaseException | None = None  # what ended the watch, to re-raise
        self.finished = False
        self.follower = Follower(
            "spalloc-watch",
            None,
            reconnect_delay,
            beat=lambda: None,
            refresh=self.draw,
            reconnect=self.reconnect,
            is_connected=lambda: bool(service.connected),
            wait_for_change=self.wait,
        )

    def run(self) -> int:
        self.draw()  # the first frame's errors end the tool as they would without --watch
        if self.error is not None:
            raise self.error
        if not self.finished:
            self.follower.run()
        if self.error is not None:
            raise self.error
        return EXIT_OK

    # -- the follower's callbacks --------------------------------------------------------------

    def draw(self) -> None:
        try:
            lines, finished = self.frame()
        except ProtocolError as exc:
            self.connection_lost(exc)
            return
        except Exception as exc:  # e.g. the machine is gone: the tool reports it
            self.error = exc
            self.follower.stop()
            return
        self.last = lines
        self.show()
        if finished:
            self.finished = True
            self.follower.stop()

    def wait(self, timeout: float | None) -> bool:
        try:
            return bool(self.service.wait_for_change(timeout))
        except ProtocolError as exc:
            self.connection_lost(exc)
            raise

    def reconnect(self) -> None:
        from spalloc._deadline import deadline_of

        try:
            self.service.connect(deadline_of(self.timeout))
            if self.follow is not None:
                self.follow()
        except (ProtocolError, OSError) as exc:
            self.service.disconnect()
            self.lost = _describe(exc)
            self.show()
            raise
        self.lost = None
        if self.live is None:
            self.notice("Reconnected to server.")
        self.draw()

    # -- output --------------------------------------------------------------------------------

    def connection_lost(self, exc: BaseException) -> None:
        self.service.disconnect()  # the follower sees it and reconnects
        first = self.lost is None
        self.lost = _describe(exc)
        if self.live is not None:
            self.show()
        elif first:
            said = self.lost if self.lost.endswith(".") else self.lost + "."
            self.notice(
                f"Error communicating with server: {said} Reconnecting "
                f"every {self.reconnect_delay:g} s (Ctrl-C to stop)."
            )

    def show(self) -> None:
        if self.live is None:
            if self.lost is None:
                self.out.lines(self.last)
                self.out.text("")
            return
        lines = list(self.last)
        if self.lost is not None:
            status = f"Connection lost ({self.lost}); reconnecting every {self.reconnect_delay:g} s"
            lines += [(), ((status, "bold red"),)]
        self.live.update(to_rich(lines), refresh=True)

    def notice(self, message: str) -> None:
        try:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def watch(
    out: Output,
    frame: Frame,
    service: Any,
    *,
    follow: Callable[[], None] | None = None,
    timeout: float | None = None,
    reconnect_delay: float = 5.0,
) -> int:
    """Show ``frame()`` and redraw it after every change until it reports it is finished,
    reconnecting (and calling ``follow()`` again) whenever the connection is lost.

    Returns:
        0 when the watched thing ended, 130 when interrupted with Ctrl-C.

    Raises:
        Exception: what ``frame()`` raised, other than a lost connection.
    """
    state = _Watch(out, frame, service, follow, timeout, reconnect_delay)
    try:
        if not out.tty:
            return state.run()
        with out.live(vertical_overflow="visible") as live:
            state.live = live
            return state.run()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def show(
    out: Any,
    frame: Callable[[], tuple[Any, bool]],
    service: Any,
    *,
    watch: bool,
    follow: Callable[[], None] | None = None,
    timeout: float | None = None,
    reconnect_delay: float = 5.0,
) -> int:
    """Print ``frame()`` once; with ``watch``, call ``follow()`` (subscribe to what the frame
    shows) and redraw the frame after every change until it says it is finished."""
    if not watch:
        out.lines(frame()[0])
        return EXIT_OK
    if follow is not None:
        follow()
    return _watch(
        out, frame, service, follow=follow, timeout=timeout, reconnect_delay=reconnect_delay
    )


_watch = watch  # show()'s ``watch`` flag hides the function's name
