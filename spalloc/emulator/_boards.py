"""Emulated boards that answer SCP: each allocated board's Ethernet address, UDP port 17893.

Only ``CMD_VER`` is understood (V2_PROTOCOL.md §7). A request is a 2-byte pad, the 8-byte SDP
header, ``cmd_rc`` and ``seq`` (16 bits each, little-endian), three 32-bit arguments and data.
The reply swaps the SDP source and destination (flags ``0x07``: no reply wanted), carries
``RC_OK`` (``0x80``) and the request's sequence number, then the version block SpiNNMan's
``VersionInfo`` parses:

* ``arg1``: the answering CPU (0), its physical CPU (0), then the y and x of the chip the
  request was addressed to (one byte each);
* ``arg2``: 0 in the low half, ``0xFFFF`` in the high half ("the version is a string");
* ``arg3``: the build date, epoch seconds (:data:`BUILD_DATE`);
* data: ``SC&MP/SpiNNaker\\0`` then ``4.0.0\\0`` (:data:`SCAMP_VERSION`).

Any other command gets ``RC_CMD`` (``0x83``) with the same sequence number. A board answers
only while it belongs to a job and is powered. Sockets are bound when boards are allocated
(tracked per changed job, so the cost does not grow with the machine), at once, in
:meth:`BoardResponder.sync`: a request sent as soon as the change is known waits in the
socket's buffer even if the loop has not started reading it yet. Freed boards' sockets
are parked, silent, for reuse, up to :data:`MAX_IDLE_SOCKETS`, the oldest closed beyond that.
Sockets use ``SO_REUSEPORT`` so that several emulators on one host (parallel tests) can each
hold an address; whichever receives a request answers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import OrderedDict
from collections.abc import Callable

from spalloc.emulator._proxy import udp_socket
from spalloc.geometry import Board, Machine

__all__ = ["BUILD_DATE", "SCAMP_VERSION", "SCP_PORT", "BoardResponder", "version_reply"]

SCP_PORT = 17893
#: Sockets of freed boards kept open (silent) for reuse.
MAX_IDLE_SOCKETS = 256
SCAMP_VERSION = "4.0.0"
#: 2024-01-01T00:00:00Z, fixed so that replies are reproducible.
BUILD_DATE = 1704067200

CMD_VER = 0
RC_OK = 0x80
RC_CMD = 0x83

_SDP = struct.Struct("<2x8B")  # pad, flags, tag, dst port/cpu, src port/cpu, dy, dx, sy, sx
_SCP = struct.Struct("<HH")  # cmd_rc, seq
_VERSION = struct.Struct("<BBBBHHI")  # p, physical cpu, y, x, unused, version, build date
_MIN_REQUEST = _SDP.size + _SCP.size

_log = logging.getLogger(__name__)


def version_reply(request: bytes) -> bytes | None:
    """The reply to one SCP request datagram, or None if it is too short to be SCP."""
    if len(request) < _MIN_REQUEST:
        return None
    _flags, tag, dst_pc, src_pc, dy, dx, sy, sx = _SDP.unpack_from(request)
    command, seq = _SCP.unpack_from(request, _SDP.size)
    header = _SDP.pack(0x07, tag, src_pc, dst_pc, sy, sx, dy, dx)
    if command != CMD_VER:
        return header + _SCP.pack(RC_CMD, seq)
    # The version block names the chip the request was addressed to.
    block = _VERSION.pack(0, 0, dy, dx, 0, 0xFFFF, BUILD_DATE)
    text = b"SC&MP/SpiNNaker\0" + SCAMP_VERSION.encode() + b"\0"
    return header + _SCP.pack(RC_OK, seq) + block + text


class _Board(asyncio.DatagramProtocol):
    def __init__(self, answering: Callable[[], bool]) -> None:
        self._answering = answering
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is None or not self._answering():
            return
        reply = version_reply(data)
        if reply is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # e.g. ICMP port unreachable from a client that went away


class BoardResponder:
    """Keeps one SCP socket per allocated board; call :meth:`sync` when jobs change.

    Args:
        is_answering: ``(machine, board) -> bool``: allocated and powered right now.
        is_allocated: ``(machine, board) -> bool``: held by a live job right now.
    """

    def __init__(
        self,
        is_answering: Callable[[Machine, Board], bool],
        is_allocated: Callable[[Machine, Board], bool],
    ) -> None:
        self._is_answering = is_answering
        self._is_allocated = is_allocated
        self._open: dict[tuple[str, Board], _Board] = {}
        # Sockets of freed boards, kept (silent) for a while: boards are often handed out
        # again at once, and reusing the socket saves a bind per job.
        self._idle: OrderedDict[tuple[str, Board], _Board] = OrderedDict()
        self._pending: set[tuple[str, Board]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def sync(self, machine: Machine, boards: tuple[Board, ...]) -> None:
        """Open sockets for *boards* now allocated; park those of the ones now free."""
        loop = asyncio.get_running_loop()
        for board_xyz in boards:
            key = (machine.name, board_xyz)
            if not self._is_allocated(machine, board_xyz):
                protocol = self._open.pop(key, None)
                if protocol is not None:
                    self._park(key, protocol)
                continue
            parked = self._idle.pop(key, None)
            if parked is not None:
                self._open[key] = parked
                continue
            if key in self._open or key in self._pending:
                continue
            ip = machine.ip(board_xyz)
            if ip is None:
                continue
            # Bound now, before anyone hears of the change: a request sent as soon as the
            # job is reported ready waits in the socket's buffer until the loop reads it.
            sock = self._listen(machine, board_xyz, ip)
            if sock is None:
                continue
            self._pending.add(key)
            task = loop.create_task(self._attach(machine, board_xyz, sock))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def settled(self) -> None:
        """Wait until every socket bound so far is being read."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _park(self, key: tuple[str, Board], protocol: _Board) -> None:
        """Keep a free board's socket, silent, for reuse; close the oldest beyond the cap."""
        self._idle[key] = protocol
        while len(self._idle) > MAX_IDLE_SOCKETS:
            _, oldest = self._idle.popitem(last=False)
            if oldest.transport is not None:
                oldest.transport.close()

    def _listen(self, machine: Machine, board: Board, ip: str) -> socket.socket | None:
        """A socket bound to the board's SCP address, or None (logged) if it cannot be."""
        try:
            # A large receive buffer: a burst of requests through the proxy lands here at once.
            sock = udp_socket()
            try:
                if hasattr(socket, "SO_REUSEPORT"):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind((ip, SCP_PORT))
            except OSError:
                sock.close()
                raise
        except OSError as exc:
            # A board that cannot listen just stays silent, as a broken board would.
            _log.warning(
                "emulated board %s %s cannot listen on %s:%d: %s",
                machine.name,
                board,
                ip,
                SCP_PORT,
                exc,
            )
            return None
        return sock

    async def _attach(self, machine: Machine, board: Board, sock: socket.socket) -> None:
        key = (machine.name, board)
        try:
            protocol = _Board(lambda: self._is_answering(machine, board))
            await asyncio.get_running_loop().create_datagram_endpoint(lambda: protocol, sock=sock)
        except BaseException:
            sock.close()
            raise
        finally:
            self._pending.discard(key)
        if self._is_allocated(machine, board) and key not in self._open:
            self._open[key] = protocol
        elif key not in self._idle and key not in self._open:
            self._park(key, protocol)  # freed while we were attaching
        elif protocol.transport is not None:
            protocol.transport.close()  # freed while we were attaching

    def close(self) -> None:
        """Close every socket."""
        for task in self._tasks:
            task.cancel()
        for board in [*self._open.values(), *self._idle.values()]:
            if board.transport is not None:
                with contextlib.suppress(Exception):
                    board.transport.close()
        self._open.clear()
        self._idle.clear()
