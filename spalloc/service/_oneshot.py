"""A small blocking v1 connection for the admin tools (spalloc-ps, -job, -machine, -where-is),
under :class:`~spalloc.service.v1light.V1LightService`.

Why not :class:`spalloc.client.ProtocolClient`? Start-up time. These tools make one or two
requests and exit, and ``spalloc-ps`` is timed as a whole process: the full client (reader
and dispatcher threads, logging, parsed reply types) costs more to import than the whole
request. This connection keeps to one thread and reuses the Sans-I/O pieces of
:mod:`spalloc._protocol` (its ClientSession: framing, decoding, classifying, the request FIFO),
so the wire handling stays in one place; errors are the library's own exception types.
``spalloc`` itself, which keeps a job alive, uses :class:`spalloc.Job` and so the full client.

Every operation is bounded by the connection's ``timeout`` (``None`` = wait forever): the TCP
connect, each reply, and each wait for a notification.
"""

from __future__ import annotations

import _socket  # the C core of socket: socket.py costs more to import than a request
from collections import deque

from spalloc._deadline import deadline_of, remaining
from spalloc._protocol import (
    BadMessage,
    ClientSession,
    Notification,
    Reply,
    ServerError,
    encode_request,
)
from spalloc.exceptions import (
    ProtocolError,
    ProtocolTimeoutError,
    ServerConnectionError,
    SpallocServerException,
)

TYPE_CHECKING = False  # not typing's: that import costs start-up time (mypy sees True)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Connection", "connect"]


def connect(host: str, port: int, timeout: float | None) -> _socket.socket:
    """A TCP connection to *host*, as :func:`socket.create_connection` makes it.

    Each address the resolver gives is tried in turn, with *timeout* for each connect; if
    all fail, the last error is raised (as there).

    Raises:
        OSError: the name cannot be resolved or no address accepts the connection.
    """
    # An ASCII name goes to the resolver as bytes: no IDNA codec to import.
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    error: OSError | None = None
    for family, kind, proto, _, address in _socket.getaddrinfo(name, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    raise error or OSError("getaddrinfo returns an empty list")


class Connection:
    """One TCP connection to a spalloc server, used from one thread.

    Args:
        host: the server's address.
        port: its port.
        timeout: seconds for the connect and for each reply or notification wait.

    Raises:
        ServerConnectionError: the connection could not be made.
    """

    def __init__(self, host: str, port: int, timeout: float | None) -> None:
        self.timeout = timeout
        self.host, self.port = host, port
        # The request FIFO and framing shared with the threaded client (sans I/O).
        self._session = ClientSession()
        self._inbox: deque[Reply | ServerError | Notification] = deque()
        self._notifications: deque[dict[str, Any]] = deque()
        try:
            self._sock: _socket.socket | None = connect(host, port, timeout)
        except OSError as exc:
            reason = str(exc) or ("timed out" if isinstance(exc, TimeoutError) else repr(exc))
            raise ServerConnectionError(
                f"cannot connect to {host}:{port}: {reason}", host=host, port=port
            ) from exc

    def close(self) -> None:
        """Close the connection (idempotent)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    # -- requests -------------------------------------------------------------------------

    def exchange(
        self, requests: list[tuple[str, tuple[Any, ...], dict[str, Any]]], deadline: float | None
    ) -> list[Any]:
        """Send several commands back to back and read every reply by *deadline*: each
        outcome is the reply's value or the :class:`SpallocServerException` it was.

        Raises:
            ProtocolTimeoutError: a reply did not come in time (the connection is then closed:
                a late reply would be taken for the next request's).
            ProtocolError: the connection failed or the server sent garbage.
        """
        sock = self._require()
        data = b"".join(encode_request(name, args, kwargs) for name, args, kwargs in requests)
        try:
            left = remaining(deadline)
            sock.settimeout(None if left is None else max(left, 1e-3))
            sock.sendall(data)
        except OSError as exc:
            raise self._failed(exc, requests[0][0]) from exc
        for name, _, _ in requests:
            self._session.expect(name)
        try:
            return [self._reply(name, deadline) for name, _, _ in requests]
        except ProtocolTimeoutError:
            self.close()
            raise

    def _reply(self, command: str, deadline: float | None) -> Any:
        while True:
            message = self._next_message(deadline, command)
            if isinstance(message, Notification):
                self._notifications.append(message.payload)
                continue
            self._owner(message)
            if isinstance(message, ServerError):
                return SpallocServerException(message.text, command=command)
            return message.value

    def _owner(self, message: Any) -> Any:
        try:
            return self._session.owner(message)
        except BadMessage as exc:  # a reply nobody waits for: the server is confused
            self.close()
            raise ProtocolError(f"unexpected reply from the server: {exc}") from exc

    # -- notifications --------------------------------------------------------------------

    def wait_for_notification(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next notification; ``None`` at once if *timeout* is negative and none is queued.

        Raises:
            ProtocolTimeoutError: none arrived within *timeout* seconds.
            ProtocolError: the connection failed.
        """
        deadline = deadline_of(timeout)
        while not self._notifications:
            if timeout is not None and timeout < 0:
                if not self._inbox and not self._readable():
                    return None
                if not self._inbox:
                    continue  # only part of a line so far
                deadline = None  # a whole message is waiting: no wait
            message = self._next_message(deadline, "a notification")
            if isinstance(message, Notification):
                self._notifications.append(message.payload)
            else:
                self._owner(message)
        return self._notifications.popleft()

    # -- reading --------------------------------------------------------------------------

    def _require(self) -> _socket.socket:
        if self._sock is None:
            raise ProtocolError("not connected")
        return self._sock

    def _readable(self) -> bool:
        sock = self._require()
        if self._inbox:
            return True
        sock.settimeout(0.0)
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise self._failed(exc, "a notification") from exc
        self._take(data)
        return True

    def _next_message(self, deadline: float | None, waiting_for: str) -> Any:
        sock = self._require()
        while not self._inbox:
            left = remaining(deadline)
            if left is not None and left <= 0:
                raise ProtocolTimeoutError(
                    f"no answer to {waiting_for} within {self.timeout} s",
                    command=waiting_for,
                    timeout=self.timeout,
                )
            try:
                sock.settimeout(left)
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                raise self._failed(exc, waiting_for) from exc
            self._take(data)
        return self._inbox.popleft()

    def _take(self, data: bytes) -> None:
        if not data:
            self.close()
            raise ProtocolError("Connection closed.")
        try:
            self._inbox.extend(self._session.messages(data))
        except BadMessage as exc:
            self.close()
            raise ProtocolError(
                f"malformed message from the server {self.host}:{self.port}: {exc}"
            ) from exc

    def _failed(self, exc: OSError, command: str) -> ServerConnectionError:
        self.close()
        return ServerConnectionError(
            f"{command}: connection to {self.host}:{self.port} failed: {exc}",
            host=self.host,
            port=self.port,
        )
