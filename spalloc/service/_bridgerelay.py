"""The UDP side of a proxy bridge (a mixin of :class:`~spalloc.service.bridge.Bridge`, which
holds the state declared here): the relay sockets bound on loopback addresses of
:data:`BRIDGE_NETWORK`, one per board port an Ethernet chip's address stands for, and the relay
thread that reads them, gives each local sender its own proxy channel and reports the traffic.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import random
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from spalloc._proxywire import BOOT_PORT, SCP_PORT
from spalloc.models import BridgeTraffic
from spalloc.service._bridgechannel import ChannelState

__all__ = [
    "BOOT_PORT",
    "BRIDGE_NETWORK",
    "MAX_RELAY_CHANNELS",
    "RELAYED_PORTS",
    "SCP_PORT",
    "Relay",
    "Relays",
]

log = logging.getLogger("spalloc.service.bridge")

#: The board ports every bridge address relays.
RELAYED_PORTS = (SCP_PORT, BOOT_PORT)
#: Where bridge addresses come from (see :mod:`spalloc.service.bridge` for why).
BRIDGE_NETWORK = "127.1.0.0/16"
#: Relay channels (one per local sender and board port) kept open; the server allows 256
#: per websocket and the Python API's channels need some too.
MAX_RELAY_CHANNELS = 128

# Receive buffer asked for each relay socket (the kernel caps it at net.core.rmem_max): a
# tool's burst waits there while the relay thread forwards it.
_RELAY_BUFFER = 1 << 22
# Seconds between two traffic reports.
_REPORT_EVERY = 0.5


class Relay:
    """One relay socket: a bridge address and port standing for a board's port."""

    def __init__(self, sock: socket.socket, chip: tuple[int, int], port: int) -> None:
        self.sock = sock
        self.chip = chip
        self.port = port


class Relays:
    """The UDP half of :class:`~spalloc.service.bridge.Bridge`."""

    if TYPE_CHECKING:  # what the bridge provides
        _name: str
        _on_traffic: Callable[[BridgeTraffic], None] | None
        _lock: threading.Lock
        _closed: threading.Event
        _reader_error: BaseException | None
        _channels: list[ChannelState]
        _relay_chans: collections.OrderedDict[tuple[int, tuple[str, int]], ChannelState]
        _relays: dict[int, Relay]
        _connections: dict[tuple[int, int], str]
        _selector: selectors.BaseSelector
        _wake_r: socket.socket
        _wake_w: socket.socket

        def stats(self) -> BridgeTraffic: ...
        def _count(self, index: int, value: int) -> None: ...
        def _request_open(self, chan: ChannelState) -> None: ...
        def _send_on(
            self, chan: ChannelState, data: bytes, target: tuple[int, int, int] | None = None
        ) -> None: ...
        def _close_chan(self, chan: ChannelState) -> None: ...

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
                relay = Relay(sock, chip, port)
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

    def _drain(self, relay: Relay) -> None:
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
                    chan = ChannelState(self, relay.chip, relay.port, _reply_to(self, sock, sender))
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


def _reply_to(
    relays: Relays, sock: socket.socket, sender: tuple[str, int]
) -> Callable[[bytes], None]:
    """Deliver a board's datagram to the local sender, from the relay's own address."""

    def deliver(data: bytes) -> None:
        try:
            sock.sendto(data, sender)
        except OSError:
            relays._count(5, 1)

    return deliver
