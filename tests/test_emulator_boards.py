"""The emulated boards' SCP sockets: they listen before a job is reported ready (also after a
restart), and two emulators on one host never answer for each other."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest

from spalloc.emulator import Emulator
from spalloc.emulator._boards import SCP_PORT, BoardResponder
from tests._v2 import V2Server, v2_machines
from tests.conftest import LineClient, wait_for
from tests.test_emulator_v2_proxy import (
    TIMEOUT,
    check_version_reply,
    ready_job,
    run_async,
    scp_version_request,
    udp_round_trip,
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


def _ready_board(client: LineClient) -> tuple[int, str]:
    """A one-board v1 job on the default machine, READY: (its id, its board's address)."""
    job_id: int = client.call("create_job", owner="boards-test", keepalive=None)
    wait_for(lambda: client.call("get_job_state", job_id)["state"] == 3)
    info = client.call("get_job_machine_info", job_id)
    return job_id, info["connections"][0][1]


def test_two_emulators_on_one_host_answer_only_for_their_own_boards(
    emulator_factory: Callable[..., Emulator],
    connect: Callable[..., LineClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two emulators with the default machines: the second moves its boards to free
    addresses (and says so), each answers on its own, and a board freed in one is silent
    without taking the other's requests (with SO_REUSEPORT both held 127.64.0.1 and a
    request went to either)."""
    first = emulator_factory(http_port=0, power_delay=0.0)
    with caplog.at_level(logging.WARNING, "spalloc.emulator"):
        second = emulator_factory(http_port=0, power_delay=0.0)
    assert first.machines[0].board_ips != second.machines[0].board_ips
    assert "in use" in caplog.text
    one, two = connect(first), connect(second)
    (first_job, first_ip), (_, second_ip) = _ready_board(one), _ready_board(two)
    assert first_ip != second_ip
    for seq, address in enumerate((first_ip, second_ip)):
        reply = udp_round_trip(address, scp_version_request(seq))
        assert reply is not None
        check_version_reply(reply, seq)
    one.call("destroy_job", first_job)
    assert udp_round_trip(first_ip, scp_version_request(9), timeout=0.3) is None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        for seq in range(20):
            sock.sendto(scp_version_request(seq), (second_ip, SCP_PORT))
            check_version_reply(sock.recv(4096), seq)


def test_explicit_machines_never_move(emulator_factory: Callable[..., Emulator]) -> None:
    """Only the built-in machines move; configured addresses are kept as given."""
    machines: list[Any] = v2_machines()
    first = emulator_factory(machines, http_port=0)
    second = emulator_factory(machines, http_port=0)
    assert first.machines == second.machines == machines
