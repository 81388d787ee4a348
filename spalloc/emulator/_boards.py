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

Sockets do not use ``SO_REUSEPORT``: with it, two emulators holding the same address shared its
datagrams at random, and a board allocated in one went silent whenever the other's idle socket
took the request. An address can now be held by one emulator only; a second one's board that
cannot bind stays silent (with a logged warning). An emulator with the default machines avoids
that by :func:`claim_default_machines`: it moves them to free networks when the usual ones are
taken (by another emulator on the same host).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
from collections import OrderedDict
from collections.abc import Callable

from spalloc._proxywire import CMD_VER, RC_CMD, RC_OK, SCP_PORT
from spalloc._proxywire import SCP as _SCP
from spalloc._proxywire import SDP as _SDP
from spalloc.emulator._proxy import udp_socket
from spalloc.geometry import Board, Machine

__all__ = [
    "BUILD_DATE",
    "SCAMP_VERSION",
    "SCP_PORT",
    "BoardResponder",
    "claim_boards",
    "claim_default_machines",
    "version_reply",
]

#: Sockets of freed boards kept open (silent) for reuse.
MAX_IDLE_SOCKETS = 256
SCAMP_VERSION = "4.0.0"
#: 2024-01-01T00:00:00Z, fixed so that replies are reproducible.
BUILD_DATE = 1704067200

#: The networks tried for the default machines, in order: 127.64 (and 127.66), 127.68 (and
#: 127.70)... up to 127.92, below the 127.100-249 the tests pick at random.
DEFAULT_NETS = range(64, 96, 4)

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


def claim_boards(machines: list[Machine]) -> dict[str, socket.socket]:
    """Bind every board's SCP address now; the sockets by IP, for :class:`BoardResponder`.

    Raises:
        OSError: an address cannot be bound (nothing is left bound).
    """
    claimed: dict[str, socket.socket] = {}
    try:
        for machine in machines:
            for ip in sorted(set(machine.board_ips.values())):
                sock = udp_socket()
                claimed[ip] = sock
                sock.bind((ip, SCP_PORT))
    except OSError:
        for sock in claimed.values():
            sock.close()
        raise
    return claimed


def claim_default_machines() -> tuple[list[Machine], dict[str, socket.socket]]:
    """The default machines on the first of :data:`DEFAULT_NETS` whose board addresses are
    all free, and their claimed sockets (held until the responder closes).

    Moving is logged as a warning. If the addresses cannot be bound at all (not in use, but
    e.g. a system whose loopback is only 127.0.0.1), the usual machines come back unclaimed,
    their boards silent as before.
    """
    from spalloc.emulator.machines import default_machines

    taken = []
    for net in DEFAULT_NETS:
        machines = default_machines(net)
        try:
            claimed = claim_boards(machines)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                _log.warning("the emulated boards cannot listen: %s", exc)
                return default_machines(), {}
            taken.append(f"127.{net}.0.0")
            continue
        if taken:
            _log.warning(
                "emulator: the default machines' board addresses on %s are in use (another "
                "emulator on this host?); serving them on 127.%d.0.0 and 127.%d.0.0 instead",
                ", ".join(taken),
                net,
                net + 2,
            )
        return machines, claimed
    _log.warning("emulator: every default board network is in use; boards may stay silent")
    return default_machines(), {}


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
        claimed: sockets already bound to boards' addresses (:func:`claim_boards`), by IP:
            used for those boards instead of binding, closed by :meth:`close`.
    """

    def __init__(
        self,
        is_answering: Callable[[Machine, Board], bool],
        is_allocated: Callable[[Machine, Board], bool],
        claimed: dict[str, socket.socket] | None = None,
    ) -> None:
        self._is_answering = is_answering
        self._is_allocated = is_allocated
        self._claimed = dict(claimed or {})
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
        claimed = self._claimed.pop(ip, None)
        if claimed is not None:
            # Requests that came before the board was allocated get no answer, not a late one.
            with contextlib.suppress(OSError):
                while True:
                    claimed.recv(65536)
            return claimed
        try:
            # A large receive buffer: a burst of requests through the proxy lands here at once.
            sock = udp_socket()
            try:
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
        for sock in self._claimed.values():
            sock.close()
        self._open.clear()
        self._idle.clear()
        self._claimed.clear()
