"""A client for spalloc, the service that hands out SpiNNaker boards.

The public names are loaded on first use, so ``import spalloc`` stays cheap for the
command-line tools::

    from spalloc import Job
    with Job(3) as job:
        print(job.hostname, job.width, job.height)
"""

from __future__ import annotations

import sys

from spalloc._version import __version__

# Not typing's TYPE_CHECKING (mypy takes any name TYPE_CHECKING as true): the command-line
# tools import this package first, and importing typing would cost them start-up time.
TYPE_CHECKING = False

__all__ = [
    "ConfigError",
    "EmulatedBoardsWarning",
    "IncompatibleServerError",
    "Job",
    "JobDestroyedError",
    "JobSnapshot",
    "JobState",
    "ProtocolClient",
    "ProtocolError",
    "ProtocolTimeoutError",
    "SpallocError",
    "SpallocServerException",
    "StateChangeTimeoutError",
    "__version__",
]

_LAZY = {
    "Job": "spalloc.job",
    "JobState": "spalloc.states",
    "ProtocolClient": "spalloc.client",
    "EmulatedBoardsWarning": "spalloc._local",
    "JobSnapshot": "spalloc.models",
    "ConfigError": "spalloc.exceptions",
    "IncompatibleServerError": "spalloc.exceptions",
    "JobDestroyedError": "spalloc.exceptions",
    "ProtocolError": "spalloc.exceptions",
    "ProtocolTimeoutError": "spalloc.exceptions",
    "SpallocError": "spalloc.exceptions",
    "SpallocServerException": "spalloc.exceptions",
    "StateChangeTimeoutError": "spalloc.exceptions",
}

if TYPE_CHECKING:
    from typing import Any

    from spalloc._local import EmulatedBoardsWarning
    from spalloc.client import ProtocolClient
    from spalloc.exceptions import (
        ConfigError,
        IncompatibleServerError,
        JobDestroyedError,
        ProtocolError,
        ProtocolTimeoutError,
        SpallocError,
        SpallocServerException,
        StateChangeTimeoutError,
    )
    from spalloc.job import Job
    from spalloc.models import JobSnapshot
    from spalloc.states import JobState


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spalloc' has no attribute {name!r}")
    __import__(module)  # (importlib would be one more import for every tool)
    value = getattr(sys.modules[module], name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
