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

The relay sockets and their thread are in :mod:`spalloc.service._bridgerelay`, the websocket
and its reader in :mod:`spalloc.service._bridgeproxy`, the channels in
:mod:`spalloc.service._bridgechannel`; :class:`Bridge` puts them together.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import queue
import selectors
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any

from spalloc.exceptions import ProtocolError, ProtocolTimeoutError
from spalloc.models import BridgeTraffic
from spalloc.service._bridgechannel import Channel, ChannelState, Listener
from spalloc.service._bridgeproxy import ProxyEndpoint, ProxyLink
from spalloc.service._bridgerelay import (
    BOOT_PORT,
    BRIDGE_NETWORK,
    MAX_RELAY_CHANNELS,
    RELAYED_PORTS,
    SCP_PORT,
    Relay,
    Relays,
)

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

# Datagrams queued for a Python-API reader that does not read.
_QUEUED = 65536
# Longest close() waits for each thread.
_JOIN = 5.0


class Bridge(ProxyLink, Relays):
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
        self._opening: dict[int, ChannelState] = {}
        self._by_id: dict[int, ChannelState] = {}
        self._channels: list[ChannelState] = []  # every channel not closed, to reopen
        self._relay_chans: collections.OrderedDict[tuple[int, tuple[str, int]], ChannelState] = (
            collections.OrderedDict()
        )
        self._counts = [0] * 7  # BridgeTraffic's fields, in its order
        self._relays: dict[int, Relay] = {}
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
        chan = ChannelState(self, (int(chip[0]), int(chip[1])), int(port), self._enqueue(inbox))
        self._open_and_wait(chan, timeout)
        return Channel(chan, inbox)

    def open_listener(self, *, timeout: float | None = 10.0) -> Listener:
        """An unconnected channel boards may send to (its :attr:`Listener.address`).

        Raises:
            ProtocolError, ProtocolTimeoutError: as :meth:`open_channel`.
        """
        inbox: queue.Queue[bytes] = queue.Queue(_QUEUED)
        chan = ChannelState(self, None, 0, self._enqueue(inbox))
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
