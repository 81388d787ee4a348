"""The emulated boards' SCP sockets: they listen before a job is reported ready (also after a
restart), and two emulators on one host never answer for each other."""

from __future__ import annotations

import asyncio
import socket

from spalloc.emulator._boards import SCP_PORT, BoardResponder
from tests._v2 import V2Server, v2_machines
from tests.test_emulator_v2_proxy import (
    TIMEOUT,
    check_version_reply,
    ready_job,
    run_async,
    scp_version_request,
)

RESTARTS = 3


def test_a_restarted_emulators_boards_answer_as_soon_as_it_is_started(
    v2_server: V2Server,
) -> None:
    """The first request, sent the moment ``start()`` returns, is answered: the kept job's
    board sockets are bound before the emulator reports itself started (they used to be
    bound by a task that might not have run yet, and the request met a closed port)."""
    _, _, machine = ready_job(v2_server)
    address = machine["connections"][0][1]
    emulator = v2_server.emulator
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        for seq in range(RESTARTS):
            emulator.stop()
            emulator.start()
            sock.sendto(scp_version_request(seq), (address, SCP_PORT))
            check_version_reply(sock.recv(4096), seq)


def test_sync_binds_before_it_returns() -> None:
    """A request sent right after :meth:`BoardResponder.sync`, before the loop has run
    anything else, is answered: the socket is bound by ``sync`` itself."""
    machine = v2_machines()[0]
    board = (0, 0, 0)
    address = machine.ip(board)
    assert address is not None

    async def main() -> bytes:
        responder = BoardResponder(lambda m, b: True, lambda m, b: True)
        loop = asyncio.get_running_loop()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                responder.sync(machine, (board,))
                sock.sendto(scp_version_request(1), (address, SCP_PORT))  # no await before
                return await asyncio.wait_for(loop.sock_recv(sock, 4096), TIMEOUT)
        finally:
            responder.close()

    check_version_reply(run_async(main()), 1)
