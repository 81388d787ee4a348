"""The server a kernel's ``%spalloc`` commands use when they name none.

A kernel keeps using the server it last named (``--hostname``/``--port``) until told otherwise
(named again, or ``%config SpallocMagics.hostname``); :class:`ServerMemory` holds that choice
and says once, on stderr, when a command goes to a remembered server.
"""

from __future__ import annotations

import sys
from typing import Any

from spalloc_nb._magicargs import SERVER_OPTIONS

__all__ = ["ServerMemory"]


class ServerMemory:
    """The (hostname, port) last named on a command, over the configured one."""

    def __init__(self) -> None:
        #: (hostname, port) of the server last named on a command; later commands use it
        self.last: tuple[str, int] | None = None
        self._said = False
        self._base: tuple[Any, Any] = (None, None)

    def forget(self) -> None:
        """Let the configured server apply again."""
        self.last = None

    def apply(self, values: dict[str, Any]) -> None:
        """Note the configured server in *values*, then put the remembered one there."""
        self._base = (values["hostname"], values["port"])
        if self.last is not None:
            # A kernel keeps using the server it last used, until told otherwise.
            values["hostname"], values["port"] = self.last

    def remember(self, args: Any, tokens: list[str]) -> None:
        """Remember a server named on this command; say once when a remembered one is used."""
        hostname, port = getattr(args, "hostname", None), getattr(args, "port", None)
        if not hostname:
            return
        server = (str(hostname), int(port)) if port is not None else None
        if server is None:
            return
        named = any(t.split("=")[0] in SERVER_OPTIONS for t in tokens)
        if server == self.last and not named:
            # Used because it was remembered: say so the first time.
            if not self._said:
                self._said = True
                where = (
                    "the built-in emulator" if _is_local(server[0]) else f"{server[0]}:{server[1]}"
                )
                print(
                    f"spalloc: using {where}, the server this kernel last used "
                    "(--hostname/--port or %config SpallocMagics.hostname to change)",
                    file=sys.stderr,
                )
            return
        if server == self.last:
            return  # named again: nothing new to remember or to say
        # Named on this command: remembered, unless it is the configured one anyway.
        self.last = None if server == self._base else server
        self._said = False


def _is_local(hostname: str) -> bool:
    from spalloc._local import is_local

    return is_local(hostname)
