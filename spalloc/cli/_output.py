"""Writing rendered lines to a stream: plain text, or colour through rich on a terminal.

Colour is used only when the stream the text goes to is a terminal (the official tools looked
at stderr while writing to stdout: B18) and never when ``NO_COLOR`` is set or ``TERM=dumb``.
rich is imported only when colour (or a live display) is really needed, which keeps the
start-up of a plain ``spalloc-ps`` short.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from spalloc.ui.render import Lines, plain

TYPE_CHECKING = False  # not typing's: that import costs start-up time (mypy sees True)
if TYPE_CHECKING:
    from typing import IO, Any

    from rich.console import Console
    from rich.text import Text

__all__ = ["Output", "colour_wanted", "is_terminal", "to_rich"]


def is_terminal(stream: IO[str]) -> bool:
    """True when *stream* is a terminal."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def colour_wanted(stream: IO[str], environ: Mapping[str, str] | None = None) -> bool:
    """True when *stream* is a terminal and neither ``NO_COLOR`` nor ``TERM=dumb`` is set."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    return is_terminal(stream)


def to_rich(lines: Lines) -> Text:
    """Turn rendered lines into a rich ``Text`` carrying their styles."""
    from rich.text import Text

    text = Text(no_wrap=True, overflow="ignore")
    for i, line in enumerate(lines):
        if i:
            text.append("\n")
        for chunk, style in line:
            text.append(chunk, style=style or None)
    return text


class Output:
    """Where a tool prints: a stream plus the decision whether to colour it.

    Args:
        stream: the text stream (default ``sys.stdout`` at the time of the call).
        colour: force colour on or off; ``None`` decides with :func:`colour_wanted`.
        tty: whether live redrawing is possible; ``None`` asks the stream.
    """

    def __init__(
        self, stream: IO[str] | None = None, colour: bool | None = None, tty: bool | None = None
    ) -> None:
        self.stream = sys.stdout if stream is None else stream
        self.tty = is_terminal(self.stream) if tty is None else tty
        self.colour = colour_wanted(self.stream) if colour is None else colour
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        """A rich console on the stream (created on first use)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(
                file=self.stream,
                force_terminal=self.tty or self.colour,
                no_color=not self.colour,
                highlight=False,
                markup=False,
                emoji=False,
                soft_wrap=True,
            )
        return self._console

    def lines(self, lines: Lines) -> None:
        """Print a rendered document followed by a newline."""
        if self.colour:
            self.console.print(to_rich(lines))
        else:
            self.stream.write(plain(lines) + "\n")
        self.flush()

    def text(self, text: str, style: str = "") -> None:
        """Print one line of text, styled when colour is on."""
        self.lines([((text, style),)] if text else [()])

    def flush(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def live(self, **kwargs: Any) -> Any:
        """A ``rich.live.Live`` on this stream (used by the watch loop on terminals)."""
        from rich.live import Live

        kwargs.setdefault("auto_refresh", False)  # redraw when told, not on a timer
        return Live(console=self.console, **kwargs)
