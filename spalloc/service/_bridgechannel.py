"""The channels of a proxy bridge: the state the bridge keeps for each proxy channel (its id on
the current websocket, the datagrams held until it opens), and the two handles Python code
gets for one, :class:`Channel` (connected to a board port) and :class:`Listener`
(unconnected), which share their receiving and closing.
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from spalloc.exceptions import ProtocolTimeoutError

__all__ = ["Channel", "ChannelOwner", "ChannelState", "Listener"]

_H = TypeVar("_H", bound="_Handle")


class ChannelOwner(Protocol):
    """What a channel needs of its bridge."""

    _reader_error: BaseException | None

    def _send_on(
        self, chan: ChannelState, data: bytes, target: tuple[int, int, int] | None = None
    ) -> None: ...

    def _close_chan(self, chan: ChannelState) -> None: ...


class ChannelState:
    """One proxy channel (connected to a board port, or unconnected); its id changes with
    every websocket."""

    def __init__(
        self,
        bridge: ChannelOwner,
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


class _Handle:
    """What :class:`Channel` and :class:`Listener` share: the channel and its inbox."""

    def __init__(self, chan: ChannelState, inbox: queue.Queue[bytes]) -> None:
        self._chan = chan
        self._inbox = inbox

    def recv(self, timeout: float | None = None) -> bytes:
        """The next datagram that came in on the channel (from its board, or for a listener
        from any board that sent to its address).

        Raises:
            ProtocolTimeoutError: none within *timeout* seconds (also a ``TimeoutError``).
        """
        try:
            return self._inbox.get(timeout=timeout)
        except queue.Empty:
            raise ProtocolTimeoutError(
                f"no datagram on the bridge's channel within {timeout} s",
                command="receive",
                timeout=timeout,
            ) from self._chan.bridge._reader_error

    def close(self) -> None:
        """Close the channel (idempotent)."""
        self._chan.bridge._close_chan(self._chan)

    def __enter__(self: _H) -> _H:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Channel(_Handle):
    """A connected proxy channel to one board port
    (:meth:`~spalloc.service.bridge.Bridge.open_channel`)."""

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


class Listener(_Handle):
    """An unconnected proxy channel (:meth:`~spalloc.service.bridge.Bridge.open_listener`):
    boards may send to its :attr:`address`, which is real (the server's socket), and it may
    send to any board port.
    """

    @property
    def address(self) -> tuple[str, int]:
        """The ``(ip, port)`` boards send to (a new one after the websocket reconnects)."""
        assert self._chan.address is not None
        return self._chan.address

    def send_to(self, chip: tuple[int, int], port: int, data: bytes) -> None:
        """Send one datagram to port *port* of the board at Ethernet chip *chip*."""
        self._chan.bridge._send_on(self._chan, bytes(data), (int(chip[0]), int(chip[1]), port))
