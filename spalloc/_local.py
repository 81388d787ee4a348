"""``hostname = "local"``: one in-process emulator per process, started on first use."""

from __future__ import annotations

import atexit
import threading
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spalloc.emulator import Emulator

__all__ = [
    "LOCAL_HOSTNAME",
    "EmulatedBoardsWarning",
    "default_owner",
    "local_emulator",
    "running_local_emulator",
]

#: The hostname that selects the built-in emulator.
LOCAL_HOSTNAME = "local"

_lock = threading.Lock()
_emulator: Emulator | None = None


class EmulatedBoardsWarning(UserWarning):
    """The boards come from the built-in emulator, not from real SpiNNaker hardware."""


def is_local(hostname: object) -> bool:
    """True if *hostname* asks for the built-in emulator."""
    return isinstance(hostname, str) and hostname.strip().lower() == LOCAL_HOSTNAME


def default_owner(hostname: object, owner: str | None) -> str | None:
    """The one owner rule for new jobs, shared by the library, the CLIs and the notebook.

    The owner given (or configured) wins. With none, jobs on the built-in emulator belong
    to ``<login>@local`` (nobody else shares it); a real server gets ``None``, and creating
    a job there fails asking for an owner.
    """
    if owner:
        return owner
    if is_local(hostname):
        import getpass

        return f"{getpass.getuser()}@local"
    return owner


def local_emulator(*, stacklevel: int = 2) -> Emulator:
    """Return this process's emulator (default machines, loopback, a free port).

    The first call starts it and warns once with :class:`EmulatedBoardsWarning`; later
    calls, from any thread, return the same running emulator.
    """
    global _emulator
    with _lock:
        if _emulator is not None:
            if not _emulator.running:
                _emulator.start()
            return _emulator
        from spalloc.emulator import Emulator

        emulator = Emulator().start()
        atexit.register(emulator.stop)
        _emulator = emulator
    warnings.warn(
        f"hostname 'local': using spalloc's built-in emulator at {emulator.host}:"
        f"{emulator.port}; its SpiNNaker boards are emulated, not real hardware",
        EmulatedBoardsWarning,
        stacklevel=stacklevel + 1,
    )
    return emulator


def running_local_emulator() -> Emulator | None:
    """This process's emulator if it is running; never starts one."""
    with _lock:
        return _emulator if _emulator is not None and _emulator.running else None
