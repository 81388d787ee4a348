"""The v2 websocket proxy: UDP channels between one websocket and one job's boards.

Frames are little-endian 32-bit words, then an optional payload (V2_PROTOCOL.md §1.9). The
websocket library (aiohttp) does the websocket framing; this module only reads and writes
the proxy's own words.

Packets from boards wait for the websocket in one queue per websocket, which pushes back
instead of dropping: past :data:`_HIGH` bytes every channel of the websocket stops reading
its socket until the writer is down to :data:`_LOW`, and the writer awaits the websocket's
own drain. A client that reads slowly so slows the boards' packets down: a burst waits in the
queue, then in the sockets' receive buffers (:data:`RECEIVE_BUFFER` each), and only a full
socket buffer loses packets (the kernel's drop, as for a real board).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from spalloc._proxywire import (
    BAD_DATA,
    CLOSE,
    ERROR,
    MAX_ERROR_TEXT,
    MESSAGE,
    MESSAGE_TO,
    OPEN,
    OPEN_UNCONNECTED,
    SERVER_ERROR,
    W1,
    W2,
    W3,
    W5,
)

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "CLOSE",
    "ERROR",
    "MAX_CHANNELS",
    "MESSAGE",
    "MESSAGE_TO",
    "OPEN",
    "OPEN_UNCONNECTED",
    "RECEIVE_BUFFER",
    "ProxySession",
    "udp_socket",
]

#: Bytes queued for a websocket before its channels stop reading their sockets, and the
#: level at which they read again (each frame counts 64 bytes more than its length, for the
#: object holding it).
_HIGH, _LOW = 4 << 20, 1 << 20
_OVERHEAD = 64
#: Bytes queued beyond which the websocket itself is no longer read (only replies to the
#: client's own requests can get there: the channels stopped reading at _HIGH).
_STOP_READING = 2 * _HIGH
#: Receive buffer asked for each UDP socket of the proxy and the boards (the kernel caps it at
#: net.core.rmem_max): a burst waits there while the loop is busy or the channels paused.
RECEIVE_BUFFER = 1 << 22
#: Open channels one websocket may hold (each is a UDP socket).
MAX_CHANNELS = 256

#: Channel ids are global to the server and never 0, as in the Java server.
_channel_ids = itertools.count(1)


def udp_socket() -> socket.socket:
    """A non-blocking IPv4 UDP socket with a receive buffer sized for bursts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class BadFrame(Exception):
    """The client broke the framing: the websocket is closed with 1007."""


class _Channel(asyncio.DatagramProtocol):
    def __init__(self, session: ProxySession, channel_id: int, connected: bool) -> None:
        self.session = session
        self.channel_id = channel_id
        self.connected = connected
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.session.paused:
            self.pause()

    def pause(self) -> None:
        # Selector and proactor datagram transports both have these, not in typeshed.
        with contextlib.suppress(AttributeError, RuntimeError):
            self.transport.pause_reading()  # type: ignore[union-attr]

    def resume(self) -> None:
        with contextlib.suppress(AttributeError, RuntimeError):
            self.transport.resume_reading()  # type: ignore[union-attr]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        # An unconnected channel takes packets only from the job's boards.
        if self.connected or addr[0] in self.session.board_ips:
            self.session.to_client(W2.pack(MESSAGE, self.channel_id) + data)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP "port unreachable" from a silent board: UDP just loses the packet

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class ProxySession:
    """One proxy websocket of one job.

    Args:
        ws: the prepared websocket.
        hosts: the job's Ethernet chips (job-relative) and their IP addresses.
        local_host: address unconnected channels bind to.
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        hosts: dict[tuple[int, int], str],
        local_host: str = "127.0.0.1",
    ) -> None:
        self.ws = ws
        self.hosts = dict(hosts)
        self.board_ips = frozenset(hosts.values())
        self._local_host = local_host
        self._channels: dict[int, _Channel] = {}
        self._out: collections.deque[bytes] = collections.deque()
        self._queued_bytes = 0
        self._gone = False  # the writer found the websocket closed
        self._queued = asyncio.Event()  # set while _out holds frames
        self._drained = asyncio.Event()  # set while _out is at most _LOW
        self._drained.set()
        #: True while the channels are not reading their sockets (the queue is full).
        self.paused = False
        self._writer: asyncio.Task[None] | None = None

    def to_client(self, frame: bytes) -> None:
        """Queue *frame* for the websocket; at :data:`_HIGH` bytes the channels pause."""
        if self._gone:
            return
        self._out.append(frame)
        self._queued_bytes += len(frame) + _OVERHEAD
        self._queued.set()
        if self._queued_bytes > _LOW:
            self._drained.clear()
            if not self.paused and self._queued_bytes >= _HIGH:
                self.paused = True
                for channel in self._channels.values():
                    channel.pause()

    async def _write(self) -> None:
        out = self._out
        while True:
            if not out:
                self._queued.clear()
                await self._queued.wait()
                continue
            frame = out.popleft()
            self._queued_bytes -= len(frame) + _OVERHEAD
            if self._queued_bytes <= _LOW:
                self._drained.set()
                if self.paused:
                    self.paused = False
                    for channel in self._channels.values():
                        channel.resume()
            try:
                # Waits while the connection's write buffer is full (aiohttp's drain).
                await self.ws.send_bytes(frame)
            except (ConnectionError, RuntimeError):
                # The websocket is going: what is queued has nowhere to go, and run() must
                # not wait for a drain that cannot come.
                self._gone = True
                out.clear()
                self._queued_bytes = 0
                self._drained.set()
                return

    async def run(self) -> None:
        """Serve frames until the websocket closes; then close every channel."""
        from aiohttp import WSMsgType

        self._writer = asyncio.get_running_loop().create_task(self._write())
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.BINARY:
                    try:
                        await self._handle(msg.data)
                        if self._queued_bytes >= _STOP_READING:
                            await self._drained.wait()
                    except BadFrame as exc:
                        await self.ws.close(code=BAD_DATA, message=str(exc)[:120].encode())
                        break
                    except OSError as exc:
                        await self.ws.close(code=SERVER_ERROR, message=str(exc)[:120].encode())
                        break
                elif msg.type == WSMsgType.TEXT:
                    # Only binary frames carry the protocol; text is refused as Spring does.
                    await self.ws.close(code=1003, message=b"text messages not supported")
                    break
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.close_channels()
            # The websocket is gone: frames still queued have nowhere to go.
            if self._writer is not None:
                self._writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._writer

    def close_channels(self) -> None:
        """Close every UDP channel of this websocket."""
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    # --- the operations -----------------------------------------------------------------

    async def _handle(self, data: bytes) -> None:
        if len(data) < 4:
            raise BadFrame("short frame")
        (op,) = W1.unpack_from(data)
        if op == OPEN:
            await self._open(data)
        elif op == CLOSE:
            self._close(data)
        elif op == MESSAGE:
            self._message(data)
        elif op == OPEN_UNCONNECTED:
            await self._open_unconnected(data)
        elif op == MESSAGE_TO:
            self._message_to(data)
        else:
            raise BadFrame(f"bad opcode {op}")

    @staticmethod
    def _exact(data: bytes, words: struct.Struct) -> tuple[Any, ...]:
        if len(data) < words.size:
            raise BadFrame("short frame")
        if len(data) > words.size:
            raise BadFrame(f"extra content ({len(data) - words.size} bytes) supplied in message")
        return words.unpack(data)

    def _error(self, correlation: int, message: str) -> None:
        text = message.encode()
        self.to_client(W2.pack(ERROR, correlation) + (text if len(text) <= MAX_ERROR_TEXT else b""))

    def _target(self, x: int, y: int, port: int) -> tuple[str, int]:
        host = self.hosts.get((x, y))
        if host is None:
            raise ValueError("unrecognised ethernet chip")
        if not 1 <= port <= 65535:
            raise ValueError("bad port number")
        return host, port

    async def _make(self, remote: tuple[str, int] | None) -> _Channel:
        """A channel connected to *remote*, or (None) an unconnected one on the local host."""
        if len(self._channels) >= MAX_CHANNELS:
            raise ValueError(f"too many open channels (at most {MAX_CHANNELS})")
        sock = udp_socket()
        try:
            if remote is None:
                sock.bind((self._local_host, 0))
            else:
                sock.connect(remote)
        except OSError:
            sock.close()
            raise
        channel_id = next(_channel_ids)
        loop = asyncio.get_running_loop()
        factory: Callable[[], _Channel] = lambda: _Channel(self, channel_id, remote is not None)  # noqa: E731
        _, channel = await loop.create_datagram_endpoint(factory, sock=sock)
        self._channels[channel_id] = channel
        return channel

    async def _open(self, data: bytes) -> None:
        _, correlation, x, y, port = self._exact(data, W5)
        try:
            target = self._target(x, y, port)
            channel = await self._make(target)
        except (ValueError, OSError) as exc:
            self._error(correlation, str(exc))
            return
        self.to_client(W3.pack(OPEN, correlation, channel.channel_id))

    async def _open_unconnected(self, data: bytes) -> None:
        _, correlation = self._exact(data, W2)
        try:
            channel = await self._make(None)
        except (ValueError, OSError) as exc:
            self._error(correlation, str(exc))
            return
        assert channel.transport is not None
        address, port = channel.transport.get_extra_info("sockname")[:2]
        self.to_client(
            W3.pack(OPEN_UNCONNECTED, correlation, channel.channel_id)
            + socket.inet_aton(address)
            + W1.pack(port)
        )

    def _close(self, data: bytes) -> None:
        _, correlation, channel_id = self._exact(data, W3)
        channel = self._channels.pop(channel_id, None)
        if channel is not None:
            channel.close()
        self.to_client(W3.pack(CLOSE, correlation, channel_id if channel is not None else 0))

    def _message(self, data: bytes) -> None:
        if len(data) < W2.size:
            raise BadFrame("short frame")
        _, channel_id = W2.unpack_from(data)
        channel = self._channels.get(channel_id)
        # A message for a closed, unknown or unconnected channel is dropped silently.
        if channel is not None and channel.connected and channel.transport is not None:
            channel.transport.sendto(data[W2.size :])

    def _message_to(self, data: bytes) -> None:
        if len(data) < W5.size:
            raise BadFrame("short frame")
        _, channel_id, x, y, port = W5.unpack_from(data)
        try:
            target = self._target(x, y, port)
        except ValueError as exc:
            raise BadFrame(str(exc)) from None
        channel = self._channels.get(channel_id)
        if channel is None or channel.transport is None:
            return
        if channel.connected:
            raise BadFrame("channel is connected")
        channel.transport.sendto(data[W5.size :], target)
