"""One v1 connection of :class:`~spalloc.client.ProtocolClient`: a socket, its reader thread
and the FIFO of callers waiting for replies.

Callers write their request under a lock (bounded by their deadline: a peer that stops reading
cannot hold a caller, or the callers behind it, past their timeouts) and wait on their own
:class:`PendingReply`; the reader thread hands each reply to the oldest waiting slot and passes
notifications on. A send that times out part-way leaves half a line on the wire, so it ends the
connection. Every socket error becomes a :class:`~spalloc.exceptions.ServerConnectionError`
here, chained to the ``OSError``; callers woken by a failure get an error chained to it.
"""

from __future__ import annotations

import contextlib
import math
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

from spalloc._deadline import deadline_of, remaining
from spalloc._protocol import BadMessage, ClientSession, Notification, Reply, ServerError
from spalloc.exceptions import (
    ProtocolError,
    ProtocolTimeoutError,
    ServerConnectionError,
    SpallocServerException,
)

__all__ = ["Connection", "PendingReply", "send_all"]

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
# Without MSG_DONTWAIT (Windows) a send cannot be bounded without changing the socket's mode
# under the reader: sends there block as the socket does.
_DONTWAIT: int | None = getattr(socket, "MSG_DONTWAIT", None)


def send_all(sock: socket.socket, data: bytes, deadline: float | None) -> None:
    """Write all of *data* by *deadline*, without changing the socket's blocking mode.

    Raises:
        TimeoutError: the peer did not take the data in time (part of it may have gone).
        OSError: the socket failed.
    """
    if _DONTWAIT is None:
        sock.sendall(data)
        return
    view = memoryview(data)
    poller: select.poll | None = None
    while view:
        try:
            view = view[sock.send(view, _DONTWAIT) :]
            continue
        except BlockingIOError:
            pass
        left = remaining(deadline)
        if left is not None and left <= 0:
            raise TimeoutError(f"the peer took {len(data) - len(view)} of {len(data)} bytes")
        if poller is None:
            poller = select.poll()
            poller.register(sock, select.POLLOUT)
        poller.poll(None if left is None else max(1, math.ceil(left * 1000)))


class PendingReply:
    """The reply a caller waits for (returned by :meth:`ProtocolClient.submit`)."""

    __slots__ = ("_done", "_error", "_finished", "_value", "command")

    def __init__(self, command: str) -> None:
        self.command = command
        # A bare lock, held until the reply lands: cheaper to wait on than an Event.
        self._done = threading.Lock()
        self._done.acquire()
        self._finished = False
        self._value: Any = None
        self._error: BaseException | None = None

    def _resolve(self, value: Any = None, error: BaseException | None = None) -> None:
        if self._finished:
            return
        self._value = value
        self._error = error
        self._finished = True
        self._done.release()

    def done(self) -> bool:
        """True once the reply (or an error) has arrived."""
        return self._finished

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the reply and return its value.

        Raises:
            ProtocolTimeoutError: no reply in time; the reply will be discarded when it comes.
            ProtocolError: the connection failed first (chained to what failed).
            SpallocServerException: the server answered with an exception.
        """
        return self.result_by(deadline_of(timeout), timeout)

    def result_by(self, deadline: float | None, timeout: float | None = None) -> Any:
        """:meth:`result` with a ``time.monotonic()`` deadline shared with other steps;
        *timeout* is only quoted in the error."""
        if not self._finished:
            left = remaining(deadline)
            if self._done.acquire(timeout=-1 if left is None else left):
                self._done.release()  # let any other waiter (or a second result()) through
            # The reply may have landed between the wait and this test. A late one is
            # dropped all the same: the reader hands it to this slot, which nobody reads.
            elif not self._finished:
                raise ProtocolTimeoutError(
                    f"no reply to {self.command} within {timeout} s",
                    command=self.command,
                    timeout=timeout,
                )
        if self._error is not None:
            raise self._error
        return self._value


def _for_waiter(error: ProtocolError) -> ProtocolError:
    """A copy of a connection's error for one waiting caller, chained to the original."""
    if isinstance(error, ServerConnectionError):
        copy: ProtocolError = ServerConnectionError(str(error), host=error.host, port=error.port)
    else:
        copy = ProtocolError(str(error))
    copy.__cause__ = error
    return copy


class Connection:
    """A socket, its reader thread and the FIFO of callers waiting on it.

    Args:
        sock: a connected TCP socket (blocking).
        name: the reader thread's name.
        on_notification: called on the reader thread with each notification's payload.
        on_failure: called once, with this connection and the error, when it fails.
    """

    def __init__(
        self,
        sock: socket.socket,
        name: str,
        *,
        on_notification: Callable[[dict[str, Any]], None],
        on_failure: Callable[[Connection, ProtocolError], None],
        peer: tuple[str, int],
    ) -> None:
        self.sock = sock
        self.peer = peer
        self._on_notification = on_notification
        self._on_failure = on_failure
        self._write_lock = threading.Lock()
        self._session = ClientSession()  # the FIFO of PendingReply slots
        self._state_lock = threading.Lock()
        self.error: ProtocolError | None = None
        self._reader = threading.Thread(target=self._read_loop, name=name, daemon=True)
        self._reader_started = False

    def start(self) -> None:
        """Start the reader thread (idempotent)."""
        with self._state_lock:
            if self._reader_started:
                return
            self._reader_started = True
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self.error is None

    def _lost(self, what: str, exc: BaseException) -> ServerConnectionError:
        host, port = self.peer
        return ServerConnectionError(
            f"connection to {host}:{port} {what}: {exc}", host=host, port=port
        )

    def submit(self, command: str, line: bytes, deadline: float | None) -> PendingReply:
        """Send *line* by *deadline* and return the slot its reply will land in.

        Raises:
            ProtocolTimeoutError: the line could not be sent in time (the connection is then
                closed if part of it went out).
            ProtocolError: the connection has failed (ServerConnectionError: while sending).
        """
        return self.submit_many([(command, line)], deadline)[0]

    def submit_many(
        self, requests: list[tuple[str, bytes]], deadline: float | None
    ) -> list[PendingReply]:
        """Send the ``(command, line)`` *requests* in one write, by *deadline*; one slot each.

        One write lets the server read them together and answer them in one go, instead of
        waking for each (and holding back each later reply for the ACK of the previous one,
        as a server without ``TCP_NODELAY`` does).

        Raises:
            as :meth:`submit`.
        """
        pending = [PendingReply(command) for command, _ in requests]
        what = requests[0][0] if len(requests) == 1 else ", ".join(c for c, _ in requests)
        left = remaining(deadline)
        if not self._write_lock.acquire(timeout=-1 if left is None else left):
            raise ProtocolTimeoutError(
                f"could not send {what} in time: an earlier request is still being sent",
                command=requests[0][0],
                timeout=left,
            )
        try:
            # Queue before sending, so the reader can never see a reply with no slot.
            with self._state_lock:
                if self.error is not None:
                    raise _for_waiter(self.error)
                for slot in pending:
                    self._session.expect(slot)
            data = requests[0][1] if len(requests) == 1 else b"".join(line for _, line in requests)
            try:
                send_all(self.sock, data, deadline)
            except TimeoutError as exc:
                stalled = ProtocolTimeoutError(
                    f"could not send {what} in time: the server is not reading",
                    command=requests[0][0],
                    timeout=left,
                )
                stalled.__cause__ = exc
                self.fail(stalled)  # part of the data may be on the wire: the stream is lost
                raise stalled from exc
            except OSError as exc:
                error = self._lost(f"failed while sending {what}", exc)
                error.__cause__ = exc
                self.fail(error)
                raise _for_waiter(error) from exc
        finally:
            self._write_lock.release()
        if not self._reader_started:
            # Started after the first send, so that its start-up overlaps the server's work.
            self.start()
        return pending

    def fail(self, error: ProtocolError) -> None:
        """Mark the connection dead, wake every waiting caller with *error*, close the socket."""
        with self._state_lock:
            if self.error is not None:
                return
            self.error = error
            pending: list[PendingReply] = self._session.abandon()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        # Listeners first, so that a caller woken by the error already sees the loss noted.
        self._on_failure(self, error)
        for slot in pending:
            slot._resolve(error=_for_waiter(error))

    def close(self, timeout: float | None = 5.0) -> None:
        """Fail every waiting caller with "closed by the client" and end the reader."""
        self.fail(ProtocolError("connection closed by the client"))
        if self._reader is not threading.current_thread() and self._reader.is_alive():
            self._reader.join(timeout)

    def _read_loop(self) -> None:
        try:
            while self.error is None:
                try:
                    data = self.sock.recv(65536)
                    if _QUICKACK is not None:
                        # Servers that write each reply separately without TCP_NODELAY (the
                        # reference) hold the 2nd reply to pipelined requests until we ACK
                        # the 1st; Linux delays that ACK ~40 ms unless asked, after each recv.
                        self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                except OSError as exc:
                    raise self._lost("lost", exc) from exc
                if not data:
                    host, port = self.peer
                    raise ServerConnectionError(
                        f"connection closed by the server {host}:{port}", host=host, port=port
                    )
                for message in self._session.messages(data):
                    self._dispatch(message)
        except BadMessage as exc:
            host, port = self.peer
            error = ProtocolError(f"malformed message from the server {host}:{port}: {exc}")
            error.__cause__ = exc
            self.fail(error)
        except ProtocolError as exc:
            self.fail(exc)
        except Exception as exc:  # never leave callers waiting on a dead reader
            error = ProtocolError(f"reader failed: {exc!r}")
            error.__cause__ = exc
            self.fail(error)

    def _dispatch(self, message: Reply | ServerError | Notification) -> None:
        if isinstance(message, Notification):
            self._on_notification(message.payload)
            return
        with self._state_lock:
            slot: PendingReply = self._session.owner(message)  # UnexpectedReply: BadMessage
        if isinstance(message, ServerError):
            slot._resolve(error=SpallocServerException(message.text, command=slot.command))
        else:
            slot._resolve(message.value)
