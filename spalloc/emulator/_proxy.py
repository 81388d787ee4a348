"""The v2 websocket proxy: UDP channels between one websocket and one job's boards.

Frames are little-endian 32-bit words, then an optional payload (V2_PROTOCOL.md §1.9). The
websocket library (aiohttp) does the websocket framing; this module only reads and writes
the proxy's own words. Packets from boards are queued for the websocket with a bound: when a
client does not read, further packets are dropped, as UDP would.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

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
    "ProxySession",
]

OPEN, CLOSE, MESSAGE, OPEN_UNCONNECTED, MESSAGE_TO, ERROR = range(6)

#: Websocket close codes the Java server uses.
BAD_DATA = 1007
SERVER_ERROR = 1011

_MAX_ERROR = 1000
_QUEUE = 4096
#: Open channels one websocket may hold (each is a UDP socket).
MAX_CHANNELS = 256

_W2 = struct.Struct("<2I")
_W3 = struct.Struct("<3I")
_W5 = struct.Struct("<5I")

#: Channel ids are global to the server and never 0, as in the Java server.
_channel_ids = itertools.count(1)


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

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        # An unconnected channel takes packets only from the job's boards.
        if self.connected or addr[0] in self.session.board_ips:
            self.session.to_client(_W2.pack(MESSAGE, self.channel_id) + data)

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
        self._out: asyncio.Queue[bytes] = asyncio.Queue(_QUEUE)
        self._writer: asyncio.Task[None] | None = None

    def to_client(self, frame: bytes) -> None:
        """Queue *frame* for the websocket; dropped if the client is far behind."""
        with contextlib.suppress(asyncio.QueueFull):
            self._out.put_nowait(frame)

    async def _write(self) -> None:
        while True:
            frame = await self._out.get()
            try:
                await self.ws.send_bytes(frame)
            except (ConnectionError, RuntimeError):
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
        (op,) = struct.unpack_from("<I", data)
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
        self.to_client(_W2.pack(ERROR, correlation) + (text if len(text) <= _MAX_ERROR else b""))

    def _target(self, x: int, y: int, port: int) -> tuple[str, int]:
        host = self.hosts.get((x, y))
        if host is None:
            raise ValueError("unrecognised ethernet chip")
        if not 1 <= port <= 65535:
            raise ValueError("bad port number")
        return host, port

    async def _make(self, connected: bool, **endpoint: Any) -> _Channel:
        if len(self._channels) >= MAX_CHANNELS:
            raise ValueError(f"too many open channels (at most {MAX_CHANNELS})")
        channel_id = next(_channel_ids)
        loop = asyncio.get_running_loop()
        factory: Callable[[], _Channel] = lambda: _Channel(self, channel_id, connected)  # noqa: E731
        _, channel = await loop.create_datagram_endpoint(factory, family=socket.AF_INET, **endpoint)
        self._channels[channel_id] = channel
        return channel

    async def _open(self, data: bytes) -> None:
        _, correlation, x, y, port = self._exact(data, _W5)
        try:
            target = self._target(x, y, port)
            channel = await self._make(True, remote_addr=target)
        except (ValueError, OSError) as exc:
            self._error(correlation, str(exc))
            return
        self.to_client(_W3.pack(OPEN, correlation, channel.channel_id))

    async def _open_unconnected(self, data: bytes) -> None:
        _, correlation = self._exact(data, _W2)
        try:
            channel = await self._make(False, local_addr=(self._local_host, 0))
        except (ValueError, OSError) as exc:
            self._error(correlation, str(exc))
            return
        assert channel.transport is not None
        address, port = channel.transport.get_extra_info("sockname")[:2]
        self.to_client(
            _W3.pack(OPEN_UNCONNECTED, correlation, channel.channel_id)
            + socket.inet_aton(address)
            + struct.pack("<I", port)
        )

    def _close(self, data: bytes) -> None:
        _, correlation, channel_id = self._exact(data, _W3)
        channel = self._channels.pop(channel_id, None)
        if channel is not None:
            channel.close()
        self.to_client(_W3.pack(CLOSE, correlation, channel_id if channel is not None else 0))

    def _message(self, data: bytes) -> None:
        if len(data) < _W2.size:
            raise BadFrame("short frame")
        _, channel_id = _W2.unpack_from(data)
        channel = self._channels.get(channel_id)
        # A message for a closed, unknown or unconnected channel is dropped silently.
        if channel is not None and channel.connected and channel.transport is not None:
            channel.transport.sendto(data[_W2.size :])

    def _message_to(self, data: bytes) -> None:
        if len(data) < _W5.size:
            raise BadFrame("short frame")
        _, channel_id, x, y, port = _W5.unpack_from(data)
        try:
            target = self._target(x, y, port)
        except ValueError as exc:
            raise BadFrame(str(exc)) from None
        channel = self._channels.get(channel_id)
        if channel is None or channel.transport is None:
            return
        if channel.connected:
            raise BadFrame("channel is connected")
        channel.transport.sendto(data[_W5.size :], target)
