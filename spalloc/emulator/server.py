"""The emulator's network layer: an asyncio TCP server speaking spalloc v1.

One event loop runs every connection. Each connection splits its own input into lines
(with a length limit), writes through asyncio's own per-transport buffer and stops being
read while that buffer is full, so a client that never reads only ever stalls itself; past
a hard limit it is dropped. Timers come from ``loop.call_at``, not from polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable

from spalloc._protocol import (
    BadMessage,
    LineSplitter,
    LineTooLong,
    NonFiniteNumber,
    encode_exception,
    encode_notification,
    encode_reply,
    parse_request,
)
from spalloc.emulator.controller import CommandError, Controller, Session, UnknownCommand

__all__ = ["MAX_BACKLOG_BYTES", "EmulatorServer"]

#: A client whose unread output passes this many bytes is disconnected.
MAX_BACKLOG_BYTES = 16 << 20

# Stop reading a client's requests while this much of its output is unsent.
_HIGH_WATER = 1 << 20
_LOW_WATER = 256 << 10


_NON_FINITE_REPLY = encode_exception("non-finite numbers (NaN, Infinity) are not allowed")


class _Connection(asyncio.Protocol):
    """One client: line splitting, command dispatch and output flow control."""

    def __init__(self, server: EmulatorServer) -> None:
        self._server = server
        self._splitter = LineSplitter()
        self._transport: asyncio.Transport | None = None
        self.session = Session()
        self.closed = False

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.set_write_buffer_limits(high=_HIGH_WATER, low=_LOW_WATER)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.session.host = str(peer[0])
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._server.connections.discard(self)

    def pause_writing(self) -> None:
        # The client is not reading its replies: stop taking its requests until it does.
        if self._transport is not None and not self.closed:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        try:
            lines = self._splitter.feed(data)
        except LineTooLong:
            self.abort()
            return
        controller = self._server.controller
        for line in lines:
            if self.closed:
                return
            try:
                request = parse_request(line)
            except NonFiniteNumber:
                self.send(_NON_FINITE_REPLY)
                continue
            except BadMessage:
                self.abort()
                return
            if request is None:
                continue  # blank or whitespace-only line: harmless, skip it
            try:
                value = controller.handle(
                    self.session, request.command, request.args, request.kwargs
                )
            except UnknownCommand:
                self.abort()  # as the reference does: no reply, connection closed
                return
            except CommandError as exc:
                self.send(encode_exception(str(exc)))
            except Exception as exc:  # a bug of ours must not cost other clients anything
                self.send(encode_exception(f"internal error: {type(exc).__name__}: {exc}"))
            else:
                try:
                    self.send(encode_reply(value))
                except (TypeError, ValueError) as exc:  # an unencodable value: our bug
                    self.send(encode_exception(f"internal error: {exc}"))
        self._server.after_activity()

    # helpers

    def send(self, data: bytes) -> None:
        """Queue *data* for the client; drop the client if its backlog is too large."""
        transport = self._transport
        if transport is None or self.closed or transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > MAX_BACKLOG_BYTES:
            # Reset rather than close, so the kernel drops its copy of the backlog too.
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.abort()

    def abort(self) -> None:
        """Close at once, discarding anything buffered either way."""
        self.closed = True
        self._server.connections.discard(self)
        if self._transport is not None:
            self._transport.abort()


class EmulatorServer:
    """Serve a :class:`Controller` on a TCP port; all methods run in the loop's thread."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None
        self._flush_pending = False
        #: Called as ``listener(jobs, machines)`` with each batch of changes (the v2 front
        #: door's long-polls and the emulated boards hang off this).
        self.listeners: list[Callable[[list[int], list[str]], None]] = []

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Bind and start accepting; returns the bound (host, port)."""
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            lambda: _Connection(self), host, port, reuse_address=True
        )
        sockname = self._server.sockets[0].getsockname()
        self.after_activity()
        return str(sockname[0]), int(sockname[1])

    async def stop(self) -> None:
        """Stop accepting, drop every client and cancel the timer."""
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.abort()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def after_activity(self) -> None:
        """Something may have changed: run due timers, then schedule a notification flush."""
        self.controller.poll()
        if not self._flush_pending and self._loop is not None:
            self._flush_pending = True
            # Flush on the next loop iteration so that every reply of this iteration,
            # on every connection, goes out before the notifications it caused.
            self._loop.call_soon(self._flush)
        self._reschedule()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_when = None
        self.after_activity()

    def _reschedule(self) -> None:
        loop = self._loop
        if loop is None:
            return
        when = self.controller.next_deadline()
        if when == self._timer_when:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_when = when
        if when is not None:
            # The controller's clock is time.monotonic, which is also the loop's clock.
            self._timer = loop.call_at(when, self._on_timer)

    def _flush(self) -> None:
        self._flush_pending = False
        self.controller.poll()
        jobs, machines = self.controller.take_changes()
        if jobs or machines:
            for listener in list(self.listeners):
                listener(jobs, machines)
            for connection in list(self.connections):
                session = connection.session
                if jobs and (session.all_jobs or session.jobs):
                    wanted_jobs = [j for j in jobs if session.wants_job(j)]
                    if wanted_jobs:
                        connection.send(encode_notification("jobs_changed", wanted_jobs))
                if machines and (session.all_machines or session.machines):
                    wanted = [m for m in machines if session.wants_machine(m)]
                    if wanted:
                        connection.send(encode_notification("machines_changed", wanted))
        self._reschedule()
