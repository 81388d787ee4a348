"""The websocket side of a proxy bridge (a mixin of :class:`~spalloc.service.bridge.Bridge`,
which holds the state declared here): the proxy's binary frames, opening, using and closing
channels on the current websocket, and the reader thread that opens the websocket, reads it,
hands the boards' datagrams to their channels and opens it again when it drops.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from spalloc._deadline import deadline_of, remaining
from spalloc._proxywire import (
    CLOSE,
    ERROR,
    MESSAGE,
    MESSAGE_TO,
    OPEN,
    OPEN_UNCONNECTED,
    W1,
    W2,
    W3,
    W5,
)
from spalloc.exceptions import ProtocolError, ProtocolTimeoutError
from spalloc.service._bridgechannel import ChannelState

__all__ = ["ProxyEndpoint", "ProxyLink"]

log = logging.getLogger("spalloc.service.bridge")

#: What ``endpoint`` returns: the proxy's URL, the upgrade's headers, the TLS settings.
ProxyEndpoint = tuple[str, Mapping[str, str], ssl.SSLContext | None]

# Datagrams held for a channel that is not open yet (first datagram, websocket down).
_HELD = 256
# Seconds between reconnection attempts: doubling from the first to the last.
_RETRY_FIRST, _RETRY_LAST = 0.1, 2.0
_WS_OPEN_TIMEOUT = 10.0


class ProxyLink:
    """The websocket half of :class:`~spalloc.service.bridge.Bridge`."""

    if TYPE_CHECKING:  # what the bridge provides
        _endpoint: Callable[[float | None], ProxyEndpoint]
        _name: str
        _on_error: Callable[[str | None], None] | None
        _lock: threading.Lock
        _closed: threading.Event
        _up: threading.Event
        _ws: Any
        _reader_error: BaseException | None
        _correlations: itertools.count[int]
        _opening: dict[int, ChannelState]
        _by_id: dict[int, ChannelState]
        _channels: list[ChannelState]
        _relay_chans: collections.OrderedDict[tuple[int, tuple[str, int]], ChannelState]
        _counts: list[int]

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

    def _open_and_wait(self, chan: ChannelState, timeout: float | None) -> None:
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

    def _request_open(self, chan: ChannelState) -> None:
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
            frame = W5.pack(OPEN, correlation, chan.chip[0], chan.chip[1], chan.port)
        else:
            frame = W2.pack(OPEN_UNCONNECTED, correlation)
        self._send_frame(ws, frame)

    def _send_on(
        self, chan: ChannelState, data: bytes, target: tuple[int, int, int] | None = None
    ) -> None:
        ws = self._ws
        with self._lock:
            channel_id = chan.channel_id
            if channel_id is None or ws is None:
                if chan.closed or len(chan.held) >= _HELD:
                    self._counts[2] += 1
                    return
                chan.held.append(data if target is None else W3.pack(*target) + data)
                return
            self._counts[0] += 1
            self._counts[1] += len(data)
        if target is None:
            frame_head = W2.pack(MESSAGE, channel_id)
        else:
            frame_head = W5.pack(MESSAGE_TO, channel_id, *target)
        if not self._send_frame(ws, frame_head + data):
            self._count(2, 1)

    def _send_frame(self, ws: Any, frame: bytes) -> bool:
        try:
            ws.send(frame)
        except Exception as exc:  # the websocket dropped: the reader reconnects it
            log.debug("bridge %s: send failed: %s", self._name, exc)
            return False
        return True

    def _close_chan(self, chan: ChannelState) -> None:
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
            self._send_frame(ws, W3.pack(CLOSE, next(self._correlations) & 0xFFFFFFFF, channel_id))

    # --- the websocket --------------------------------------------------------------------

    def _wait_up(self, timeout: float | None) -> bool:
        deadline = deadline_of(timeout)
        while not self._closed.is_set():
            left = remaining(deadline)
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
        op, first = W2.unpack_from(frame)
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
            (channel_id,) = W1.unpack_from(frame, 8)
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
                        (port,) = W1.unpack_from(frame, 16)
                        chan.address = (ip, port)
                    held = list(chan.held)
                    chan.held.clear()
            if closing is not None:
                self._send_frame(ws, W3.pack(CLOSE, 0, closing))
                return
            chan.opened.set()
            for data in held:
                if chan.connected:
                    self._send_on(chan, data)
                else:
                    target = W3.unpack_from(data)
                    self._send_on(chan, data[W3.size :], target)
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
