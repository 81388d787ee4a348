"""The exception tree of the spalloc client.

Every error this library raises on purpose derives from :class:`SpallocError`::

    SpallocError
    ├── ProtocolError                  the connection is unusable, closed or spoke garbage
    │   ├── ServerConnectionError      the socket failed: cannot connect, reset, broken pipe
    │   │                              (also a built-in ``ConnectionError``, so an ``OSError``)
    │   └── ProtocolTimeoutError       no reply in time (also a built-in ``TimeoutError``)
    ├── SpallocServerException         the server answered ``{"exception": ...}``
    ├── IncompatibleServerError        the server's version is one we cannot speak to
    ├── JobDestroyedError              the job was destroyed while we waited on it
    ├── StateChangeTimeoutError        a job did not reach a state in time (also ``TimeoutError``)
    ├── ConfigError                    a config file or ``SPALLOC_*`` variable holds a bad value
    │                                  (also a ``ValueError``)
    ├── spalloc.cli._command.UnsafeValueError
    │                                  a server value unsafe to put in a ``-c`` command line
    │                                  (also a ``ValueError``)
    ├── spalloc.emulator.machines.MachineConfigError
    │                                  a bad emulator machines file (also a ``ValueError``)
    └── spalloc_nb.magics.CellFailed   the body of a ``%%spalloc`` cell raised

Mistakes in local arguments are plain ``ValueError`` / ``TypeError``, never one of these.
Socket errors (``OSError``) are turned into :class:`ServerConnectionError` where the socket is
used, with the original as ``__cause__``; an error met on a background thread (the reader of a
connection) reaches the caller chained to the error that thread met.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "IncompatibleServerError",
    "JobDestroyedError",
    "ProtocolError",
    "ProtocolTimeoutError",
    "ServerConnectionError",
    "SpallocError",
    "SpallocServerException",
    "StateChangeTimeoutError",
]


class SpallocError(Exception):
    """Base class of every error raised on purpose by this library."""


class ProtocolError(SpallocError):
    """The connection to the server is unavailable, was closed, or carried a malformed message."""


class ServerConnectionError(ProtocolError, ConnectionError):
    """The connection to the server could not be made, or its socket failed.

    Also a :class:`ConnectionError` (and so an :class:`OSError`), which is what the original
    client let out of ``connect()``; ``__cause__`` holds the socket's own error.
    """

    def __init__(self, message: str, *, host: str | None = None, port: int | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.port = port


class ProtocolTimeoutError(ProtocolError, TimeoutError):
    """The server did not answer within the timeout."""

    def __init__(
        self,
        message: str = "timed out waiting for the server",
        *,
        command: str | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(message)
        self.command = command
        self.timeout = timeout


class SpallocServerException(SpallocError):
    """The server answered a command with an exception (its text is in ``str(exc)``)."""

    def __init__(self, message: str, *, command: str | None = None) -> None:
        super().__init__(message)
        self.command = command

    @property
    def no_such_job(self) -> bool:
        """True for the Java server's (and v2's) "no such job", where the Python v1 server
        answers state 0 (unknown) instead."""
        return "no such job" in str(self).lower()


class IncompatibleServerError(SpallocError):
    """The server reports a version this client cannot work with."""

    def __init__(self, version: str, reason: str) -> None:
        super().__init__(f"server version {version!r} is not supported: {reason}")
        self.version = version


class JobDestroyedError(SpallocError):
    """The job was destroyed (or cancelled) before it became ready."""

    def __init__(self, job_id: int | None, reason: str | None) -> None:
        text = f"job {job_id} was destroyed"
        if reason:
            text += f": {reason}"
        super().__init__(text)
        self.job_id = job_id
        self.reason = reason


class StateChangeTimeoutError(SpallocError, TimeoutError):
    """A job did not reach the wanted state before the timeout."""

    def __init__(
        self,
        message: str = "timed out waiting for the job's state to change",
        *,
        job_id: int | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.timeout = timeout


class ConfigError(SpallocError, ValueError):
    """A configuration source holds a value that cannot be used."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        key: str | None = None,
        value: object = None,
    ) -> None:
        super().__init__(message)
        self.source = source
        self.key = key
        self.value = value
