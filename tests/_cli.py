"""What the command-line tool tests share: the options that point a tool at an emulator."""

from __future__ import annotations

from spalloc.emulator import Emulator

WAIT = 5.0


def server(emu: Emulator, timeout: float = WAIT) -> list[str]:
    """``-H``/``-P``/``--timeout`` options that point a tool at ``emu``."""
    return ["-H", emu.host, "-P", str(emu.port), "--timeout", str(timeout)]
