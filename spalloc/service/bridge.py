"""A v2 job's boards on this machine's loopback: UDP relays through the job's websocket proxy.

A spalloc v2 job's boards have addresses private to the machine room; the server offers a
websocket proxy instead (V2_PROTOCOL.md §1.9). A :class:`Bridge` holds one websocket to it
and, for each Ethernet chip of the job, a loopback address whose UDP ports 17893 (SCP) and
54321 (boot) relay datagrams to the same port of the real board and the board's replies
back to whoever sent them. So ``job.hostname`` and ``job.connections`` work for any tool
(ybug, rig, SpiNNMan's plain ``Transceiver``, one's own UDP code), wherever it runs.

Addresses come from :data:`BRIDGE_NETWORK`, 127.1.0.0/16: inside 127.0.0.0/8 (Linux answers
on all of it without configuration), away from the emulator's board addresses (its defaults
are 127.64.0.0 upwards; the tests' random ones 127.100-249.x) and from 127.0.0.1. An address
some other socket holds (another bridge, another process) is skipped: the relays bind
without ``SO_REUSEADDR``/``SO_REUSEPORT``, so a collision shows as ``EADDRINUSE``.

Each local sender gets its own proxy channel (``OPEN`` to the board's address and port),
opened at its first datagram (held meanwhile) and closed when it is the least recently used
beyond :data:`MAX_RELAY_CHANNELS`; the board's replies go back to that sender only.
:meth:`Bridge.open_channel` and :meth:`Bridge.open_listener` give the same channels to
Python code (a listener is an ``OPEN_UNCONNECTED`` channel and reports its real address).

Threads (named, daemon, ended and joined by :meth:`Bridge.close`): one reads the websocket
(and reconnects it when it drops: channels are opened again, datagrams in flight may be
lost, as UDP allows), one reads the relay sockets. Errors met by the reader are kept and
chained to the callers that need the websocket. The websocket itself is python-websockets'
sync client, imported only when a bridge is made.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import itertools
import logging
import queue
import random
import selectors
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from spalloc.exceptions import ProtocolError, ProtocolTimeoutError
from spalloc.models import BridgeTraffic

__all__ = [
    "BOOT_PORT",
    "BRIDGE_NETWORK",
    "MAX_RELAY_CHANNELS",
    "RELAYED_PORTS",
    "SCP_PORT",
    "Bridge",
    "Channel",
    "Listener",
]

log = logging.getLogger(__name__)

SCP_PORT = 17893
BOOT_PORT = 54321
#: The board ports every bridge address relays.
RELAYED_PORTS = (SCP_PORT, BOOT_PORT)
#: Where bridge addresses come from (see the module's docstring for why).
BRIDGE_NETWORK = "127.1.0.0/16"
#: Relay channels (one per local sender and board port) kept open; the server allows 256
#: per websocket and the Python API's channels need some too.
MAX_RELAY_CHANNELS = 128

OPEN, CLOSE, MESSAGE, OPEN_UNCONNECTED, MESSAGE_TO, ERROR = range(6)
_W2 = struct.Struct("<2I")
_W3 = struct.Struct("<3I")
_W5 = struct.Struct("<5I")

# Datagrams held for a channel that is not open yet (first datagram, websocket down).
_HELD = 256
# Datagrams queued for a Python-API reader that does not read.
_QUEUED = 65536
# Seconds between reconnection attempts: doubling from the first to the last.
_RETRY_FIRST, _RETRY_LAST = 0.1, 2.0
# Receive buffer asked for each relay socket (the kernel caps it at net.core.rmem_max): a
# tool's burst waits there while the relay thread forwards it.
_RELAY_BUFFER = 1 << 22
# Longest close() waits for each thread.
_JOIN = 5.0
# Seconds between two traffic reports.
_REPORT_EVERY = 0.5
_WS_OPEN_TIMEOUT = 10.0


class _Chan:
    """One proxy channel (connected to a board port, or unconnected); its id changes with
    every websocket."""

    def __init__(
        self,
        bridge: Bridge,
        chip: tuple[int, int] | None,
        port: int,
        deliver: Callable[[bytes], None],
    ) -> None:
        self.bridge = bridge
        self.chip = chip
        self.port = port
        self.deliver = deliver
        self.channel_id: int | None = None
        self.address: tuple[str, int] | None = None  # an unconnected channel's, on the server
        self.error: str | None = None
        self.opened = threading.Event()
        self.held: collections.deque[bytes] = collections.deque()
        self.closed = False

    @property
    def connected(self) -> bool:
        return self.chip is not None


class Channel:
    """A connected proxy channel to one board port (:meth:`Bridge.open_channel`)."""

    def __init__(self, chan: _Chan, inbox: queue.Queue[bytes]) -> None:
        self._chan = chan
        self._inbox = inbox

    @property
    def chip(self) -> tuple[int, int]:
        assert self._chan.chip is not None
        return self._chan.chip

    @property
    def port(self) -> int:
        return self._chan.port

    def send(self, data: bytes) -> None:
        """Send one datagram to the board (held while the websocket reconnects)."""
        self._chan.bridge._send_on(self._chan, bytes(data))

    def recv(self, timeout: float | None = None) -> bytes:
        """The next datagram from the board.

        Raises:
            ProtocolTimeoutError: none within *timeout* seconds (also a ``TimeoutError``).
        """
        return _receive(self._chan, self._inbox, timeout)

    def close(self) -> None:
        """Close the channel (idempotent)."""
        self._chan.bridge._close_chan(self._chan)

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Listener:
    """An unconnected proxy channel (:meth:`Bridge.open_listener`): boards may send to its
    :attr:`address`, which is real (the server's socket), and it may send to any board port.
    """

    def __init__(self, chan: _Chan, inbox: queue.Queue[bytes]) -> None:
        self._chan = chan
        self._inbox = inbox

    @property
    def address(self) -> tuple[str, int]:
        """The ``(ip, port)`` boards send to (a new one after the websocket reconnects)."""
        assert self._chan.address is not None
        return self._chan.address

    def send_to(self, chip: tuple[int, int], port: int, data: bytes) -> None:
        """Send one datagram to port *port* of the board at Ethernet chip *chip*."""
        self._chan.bridge._send_on(self._chan, bytes(data), (int(chip[0]), int(chip[1]), port))

    def recv(self, timeout: float | None = None) -> bytes:
        """The next datagram a board sent to :attr:`address`.

        Raises:
            ProtocolTimeoutError: none within *timeout* seconds (also a ``TimeoutError``).
        """
        return _receive(self._chan, self._inbox, timeout)

    def close(self) -> None:
        """Close the channel (idempotent)."""
        self._chan.bridge._close_chan(self._chan)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _receive(chan: _Chan, inbox: queue.Queue[bytes], timeout: float | None) -> bytes:
    try:
        return inbox.get(timeout=timeout)
    except queue.Empty:
        raise ProtocolTimeoutError(
            f"no datagram on the bridge's channel within {timeout} s",
            command="receive",
            timeout=timeout,
        ) from chan.bridge._reader_error


class _Relay:
    """One relay socket: a bridge address and port standing for a board's port."""

    def __init__(self, sock: socket.socket, chip: tuple[int, int], port: int) -> None:
        self.sock = sock
        self.chip = chip
        self.port = port


#: What ``endpoint`` returns: the proxy's URL, the upgrade's headers, the TLS settings.
ProxyEndpoint = tuple[str, Mapping[str, str], ssl.SSLContext | None]


class Bridge:
    """A job's boards on loopback addresses, relayed through the job's websocket proxy.

    Args:
        endpoint: called with a ``time.monotonic()`` deadline before every (re)connection;
            returns the proxy's ``ws(s)://`` URL, the upgrade's headers (login and CSRF) and
            the TLS settings (e.g. :meth:`~spalloc.service.v2.V2Service.proxy_endpoint`).
        chips: the job's Ethernet chips (job-relative ``(x, y)``), each one bridged.
        name: for thread names and messages (e.g. ``job 7``).
        on_traffic: called with the counters, at most every half second while they change
            (on the relay thread: it must return at once).
        on_error: called with a text when the websocket cannot be (re)opened, and with
            ``None`` once it is open again (same rules).

    The relays are bound before this returns; the websocket opens in the background
    (datagrams sent meanwhile are held). :meth:`wait_connected` waits for it.

    Raises:
        OSError: no free loopback address for the relays.
    """

    def __init__(
        self,
        endpoint: Callable[[float | None], ProxyEndpoint],
        chips: Mapping[tuple[int, int], object] | list[tuple[int, int]],
        *,
        name: str = "job",
        on_traffic: Callable[[BridgeTraffic], None] | None = None,
        on_error: Callable[[str | None], None] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._name = name
        self._on_traffic = on_traffic
        self._on_error = on_error
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._up = threading.Event()
        self._ws: Any = None
        self._reader_error: BaseException | None = None
        self._correlations = itertools.count(1)
        self._opening: dict[int, _Chan] = {}
        self._by_id: dict[int, _Chan] = {}
        self._channels: list[_Chan] = []  # every channel not closed, to reopen
        self._relay_chans: collections.OrderedDict[tuple[int, tuple[str, int]], _Chan] = (
            collections.OrderedDict()
        )
        self._counts = [0] * 7  # BridgeTraffic's fields, in its order
        self._relays: dict[int, _Relay] = {}
        self._connections: dict[tuple[int, int], str] = {}
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        try:
            self._bind(sorted((int(x), int(y)) for x, y in chips))
        except BaseException:
            self._release()
            raise
        self._reader = threading.Thread(
            target=self._read_websocket, name=f"spalloc-bridge-{name}-ws", daemon=True
        )
        self._pump = threading.Thread(
            target=self._read_relays, name=f"spalloc-bridge-{name}-udp", daemon=True
        )
        self._reader.start()
        self._pump.start()

    # --- public ---------------------------------------------------------------------------

    @property
    def connections(self) -> dict[tuple[int, int], str]:
        """``{(x, y): loopback address}``, one per Ethernet chip."""
        return dict(self._connections)

    @property
    def hostname(self) -> str | None:
        """The address standing for chip (0, 0)."""
        return self._connections.get((0, 0))

    @property
    def connected(self) -> bool:
        """True while the websocket is open."""
        return self._up.is_set()

    @property
    def error(self) -> BaseException | None:
        """The last error of the websocket's reader (``None`` while it is open)."""
        return self._reader_error

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def stats(self) -> BridgeTraffic:
        """The counters now."""
        with self._lock:
            return BridgeTraffic(*self._counts)

    def wait_connected(self, timeout: float | None = None) -> None:
        """Block until the websocket is open.

        Raises:
            ProtocolTimeoutError: not within *timeout* seconds (chained to the reader's
                last error); ProtocolError: the bridge was closed.
        """
        if not self._wait_up(timeout):
            if self._closed.is_set():
                raise ProtocolError(f"the bridge of {self._name} is closed")
            raise ProtocolTimeoutError(
                f"the proxy websocket of {self._name} did not open within {timeout} s",
                command="proxy",
                timeout=timeout,
            ) from self._reader_error

    def open_channel(
        self, chip: tuple[int, int], port: int, *, timeout: float | None = 10.0
    ) -> Channel:
        """A channel to port *port* of the board at Ethernet chip *chip*.

        Raises:
            ValueError: not a port number; ProtocolError: the server refused (e.g. not a chip
                of the job), chained to the reader's error if the websocket is down;
            ProtocolTimeoutError: no answer within *timeout* seconds.
        """
        if not 1 <= int(port) <= 65535:
            raise ValueError(f"not a UDP port number: {port!r}")
        inbox: queue.Queue[bytes] = queue.Queue(_QUEUED)
        chan = _Chan(self, (int(chip[0]), int(chip[1])), int(port), self._enqueue(inbox))
        self._open_and_wait(chan, timeout)
        return Channel(chan, inbox)

    def open_listener(self, *, timeout: float | None = 10.0) -> Listener:
        """An unconnected channel boards may send to (its :attr:`Listener.address`).

        Raises:
            ProtocolError, ProtocolTimeoutError: as :meth:`open_channel`.
        """
        inbox: queue.Queue[bytes] = queue.Queue(_QUEUED)
        chan = _Chan(self, None, 0, self._enqueue(inbox))
        self._open_and_wait(chan, timeout)
        return Listener(chan, inbox)

    def close(self) -> None:
        """Close the websocket and the relays; end and join both threads (idempotent)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._up.clear()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.close()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        for thread in (self._reader, self._pump):
            if thread is not threading.current_thread():
                thread.join(_JOIN)
        self._release()
        with self._lock:
            chans = [*self._channels, *self._opening.values()]
        for chan in chans:
            chan.closed = True
            chan.opened.set()  # a caller still waiting for an open learns at once

    def __enter__(self) -> Bridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "connected" if self.connected else "connecting"
        return f"<Bridge {self._name} {state} {self.hostname}>"

    # --- relays ---------------------------------------------------------------------------

    def _bind(self, chips: list[tuple[int, int]]) -> None:
        # Start at a random place so that bridges of several processes rarely meet.
        first = random.randrange(1 << 16)
        tried = 0
        for chip in chips:
            for _ in range(4096):  # bounded: a crowded range fails rather than spins
                tried += 1
                offset = (first + tried) % ((1 << 16) - 2) + 1  # never .0.0 or .255.255
                address = f"127.1.{offset >> 8}.{offset & 0xFF}"
                socks = self._bind_address(address)
                if socks is not None:
                    break
            else:
                raise OSError(errno.EADDRINUSE, f"no free address in {BRIDGE_NETWORK}")
            self._connections[chip] = address
            for sock, port in zip(socks, RELAYED_PORTS, strict=True):
                relay = _Relay(sock, chip, port)
                self._relays[sock.fileno()] = relay
                self._selector.register(sock, selectors.EVENT_READ, relay)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)

    @staticmethod
    def _bind_address(address: str) -> list[socket.socket] | None:
        socks: list[socket.socket] = []
        try:
            for port in RELAYED_PORTS:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind((address, port))
                sock.setblocking(False)
                # Bursts from a tool arrive faster than one thread forwards them at times.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RELAY_BUFFER)
        except OSError as exc:
            for sock in socks:
                sock.close()
            if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
                return None
            raise
        return socks

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            self._selector.close()
        for relay in self._relays.values():
            relay.sock.close()
        self._relays.clear()
        self._wake_r.close()
        self._wake_w.close()

    def _read_relays(self) -> None:
        """The relay thread: datagrams from local tools into the websocket."""
        last_report = time.monotonic()
        reported = BridgeTraffic()
        while not self._closed.is_set():
            try:
                events = self._selector.select(_REPORT_EVERY)
            except (OSError, ValueError):  # closed under us
                return
            for key, _ in events:
                relay = key.data
                if relay is None:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                    continue
                self._drain(relay)
            now = time.monotonic()
            if self._on_traffic is not None and now - last_report >= _REPORT_EVERY:
                last_report = now
                current = self.stats()
                if current != reported:
                    reported = current
                    try:
                        self._on_traffic(current)
                    except Exception:  # a listener's trouble must not stop the relays
                        log.exception("bridge %s: traffic listener failed", self._name)

    def _drain(self, relay: _Relay) -> None:
        for _ in range(1024):  # bounded: other relays get their turn
            try:
                data, sender = relay.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP "port unreachable" from a tool that went away
                continue
            key = (relay.sock.fileno(), sender)
            with self._lock:
                chan = self._relay_chans.get(key)
                evicted = None
                if chan is None:
                    sock = relay.sock
                    chan = _Chan(self, relay.chip, relay.port, _reply_to(self, sock, sender))
                    self._relay_chans[key] = chan
                    self._channels.append(chan)
                    if len(self._relay_chans) > MAX_RELAY_CHANNELS:
                        _, evicted = self._relay_chans.popitem(last=False)
                    new = True
                else:
                    self._relay_chans.move_to_end(key)
                    new = False
            if evicted is not None:
                self._close_chan(evicted)
            if new:
                self._request_open(chan)
            self._send_on(chan, data)

    # --- channels -------------------------------------------------------------------------

    def _enqueue(self, inbox: queue.Queue[bytes]) -> Callable[[bytes], None]:
        def deliver(data: bytes) -> None:
            try:
                inbox.put_nowait(data)
            except queue.Full:
                self._count(5, 1)

        return deliver

    def _count(self, index: int, value: int) -> None:
        with self._lock:
            self._counts[index] += value

    def _open_and_wait(self, chan: _Chan, timeout: float | None) -> None:
        if self._closed.is_set():
            raise ProtocolError(f"the bridge of {self._name} is closed")
        with self._lock:
            self._channels.append(chan)
        self._request_open(chan)
        if not chan.opened.wait(timeout):
            self._close_chan(chan)
            raise ProtocolTimeoutError(
                f"the proxy of {self._name} did not open a channel within {timeout} s",
                command="open",
                timeout=timeout,
            ) from self._reader_error
        if chan.error is not None or chan.closed:
            self._close_chan(chan)
            raise ProtocolError(
                f"the proxy of {self._name} refused the channel: {chan.error or 'bridge closed'}"
            ) from self._reader_error

    def _request_open(self, chan: _Chan) -> None:
        """Ask for *chan* on the current websocket (if none, it is asked on the next)."""
        ws = self._ws
        if ws is None or not self._up.is_set():
            return
        correlation = next(self._correlations) & 0xFFFFFFFF
        with self._lock:
            if chan.closed:
                return
            self._opening[correlation] = chan
        if chan.connected:
            assert chan.chip is not None
            frame = _W5.pack(OPEN, correlation, chan.chip[0], chan.chip[1], chan.port)
        else:
            frame = _W2.pack(OPEN_UNCONNECTED, correlation)
        self._send_frame(ws, frame)

    def _send_on(
        self, chan: _Chan, data: bytes, target: tuple[int, int, int] | None = None
    ) -> None:
        ws = self._ws
        with self._lock:
            channel_id = chan.channel_id
            if channel_id is None or ws is None:
                if chan.closed or len(chan.held) >= _HELD:
                    self._counts[2] += 1
                    return
                chan.held.append(data if target is None else _W3.pack(*target) + data)
                return
            self._counts[0] += 1
            self._counts[1] += len(data)
        if target is None:
            frame_head = _W2.pack(MESSAGE, channel_id)
        else:
            frame_head = _W5.pack(MESSAGE_TO, channel_id, *target)
        if not self._send_frame(ws, frame_head + data):
            self._count(2, 1)

    def _send_frame(self, ws: Any, frame: bytes) -> bool:
        try:
            ws.send(frame)
        except Exception as exc:  # the websocket dropped: the reader reconnects it
            log.debug("bridge %s: send failed: %s", self._name, exc)
            return False
        return True

    def _close_chan(self, chan: _Chan) -> None:
        with self._lock:
            if chan.closed:
                return
            chan.closed = True
            if chan in self._channels:
                self._channels.remove(chan)
            channel_id = chan.channel_id
            if channel_id is not None:
                self._by_id.pop(channel_id, None)
            dropped = len(chan.held)
            chan.held.clear()
            self._counts[2] += dropped
        ws = self._ws
        if channel_id is not None and ws is not None and self._up.is_set():
            self._send_frame(ws, _W3.pack(CLOSE, next(self._correlations) & 0xFFFFFFFF, channel_id))

    # --- the websocket --------------------------------------------------------------------

    def _wait_up(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            if self._up.wait(0.1 if left is None else min(left, 0.1)):
                return True
        return False

    def _read_websocket(self) -> None:
        """The reader thread: open the websocket, read it, open it again when it drops."""
        delay = _RETRY_FIRST
        opened_before = False
        while not self._closed.is_set():
            try:
                ws = self._open_websocket()
            except Exception as exc:
                self._failed(exc)
                self._closed.wait(delay)
                delay = min(delay * 2, _RETRY_LAST)
                continue
            delay = _RETRY_FIRST
            if opened_before:
                self._count(6, 1)
            opened_before = True
            # python-websockets >= 17 wants its connections used as context managers.
            with ws:
                self._serve(ws)

    def _open_websocket(self) -> Any:
        from websockets.sync.client import connect

        url, headers, context = self._endpoint(time.monotonic() + _WS_OPEN_TIMEOUT)
        ws = connect(
            url,
            ssl=context,
            additional_headers=dict(headers),
            compression=None,  # datagrams are small and latency matters
            proxy=None,  # no HTTP proxy from the environment: as the REST session
            open_timeout=_WS_OPEN_TIMEOUT,
            close_timeout=1.0,
            max_size=1 << 20,
            max_queue=4096,  # a burst from the boards waits here, not in the server's queue
            user_agent_header="spalloc-nb",
        )
        return ws

    def _failed(self, exc: BaseException) -> None:
        if self._closed.is_set():
            return
        self._reader_error = exc
        log.info("bridge %s: proxy websocket unavailable: %s", self._name, exc)
        if self._on_error is not None:
            self._on_error(f"proxy websocket unavailable: {exc}")

    def _serve(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        with self._lock:
            self._ws = ws
            self._by_id.clear()
            self._opening.clear()
            chans = list(self._channels)
            for chan in chans:
                chan.channel_id = None
        self._reader_error = None
        self._up.set()
        if self._closed.is_set():  # close() ran while we connected
            ws.close()
            return
        if self._on_error is not None:
            self._on_error(None)
        for chan in chans:
            self._request_open(chan)
        try:
            while not self._closed.is_set():
                message = ws.recv()
                if isinstance(message, bytes):
                    self._dispatch(ws, message)
        except ConnectionClosed as exc:
            if not self._closed.is_set():
                self._failed(exc)
        except Exception as exc:  # anything else ends this websocket; the next is opened
            if not self._closed.is_set():
                self._failed(exc)
        finally:
            self._up.clear()
            with self._lock:
                if self._ws is ws:
                    self._ws = None
                for chan in self._channels:
                    chan.channel_id = None
            with contextlib.suppress(Exception):
                ws.close()

    def _dispatch(self, ws: Any, frame: bytes) -> None:
        if len(frame) < 8:
            return
        op, first = _W2.unpack_from(frame)
        if op == MESSAGE:
            with self._lock:
                chan = self._by_id.get(first)
                if chan is None:
                    self._counts[5] += 1
                    return
                self._counts[3] += 1
                self._counts[4] += len(frame) - 8
            chan.deliver(frame[8:])
        elif op in (OPEN, OPEN_UNCONNECTED) and len(frame) >= 12:
            (channel_id,) = struct.unpack_from("<I", frame, 8)
            with self._lock:
                chan = self._opening.pop(first, None)
                if chan is None:
                    return
                if chan.closed:
                    closing: int | None = channel_id
                else:
                    closing = None
                    chan.channel_id = channel_id
                    chan.error = None
                    self._by_id[channel_id] = chan
                    if op == OPEN_UNCONNECTED and len(frame) >= 20:
                        ip = socket.inet_ntoa(frame[12:16])
                        (port,) = struct.unpack_from("<I", frame, 16)
                        chan.address = (ip, port)
                    held = list(chan.held)
                    chan.held.clear()
            if closing is not None:
                self._send_frame(ws, _W3.pack(CLOSE, 0, closing))
                return
            chan.opened.set()
            for data in held:
                if chan.connected:
                    self._send_on(chan, data)
                else:
                    target = _W3.unpack_from(data)
                    self._send_on(chan, data[_W3.size :], target)
        elif op == ERROR:
            with self._lock:
                chan = self._opening.pop(first, None)
                if chan is None:
                    return
                self._counts[2] += 1 + len(chan.held)
                chan.held.clear()
                chan.error = frame[8:].decode("utf-8", "replace") or "refused"
                relay_key = next((k for k, c in self._relay_chans.items() if c is chan), None)
                if relay_key is not None:  # the next datagram from that sender asks again
                    del self._relay_chans[relay_key]
                    chan.closed = True
                    if chan in self._channels:
                        self._channels.remove(chan)
            log.info("bridge %s: proxy refused a channel: %s", self._name, chan.error)
            chan.opened.set()
        # CLOSE answers need nothing.


def _reply_to(
    bridge: Bridge, sock: socket.socket, sender: tuple[str, int]
) -> Callable[[bytes], None]:
    """Deliver a board's datagram to the local sender, from the relay's own address."""

    def deliver(data: bytes) -> None:
        try:
            sock.sendto(data, sender)
        except OSError:
            bridge._count(5, 1)

    return deliver
