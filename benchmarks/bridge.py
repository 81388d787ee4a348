"""Benchmark of the proxy bridge: SCP through a v2 job's websocket vs direct UDP to the board.

The server is ``python -m spalloc.emulator --http-port 0`` in its own process, over HTTPS with
a throw-away CA, no power delay. One ``Job(1, proxy="always")`` gives both paths to the same
emulated board: ``job.hostname`` (the bridge's loopback address, relayed through the
websocket) and ``job.snapshot.board_connections[(0, 0)]`` (the board's own address). Measured
in the same run:

* **SCP round trips**: one plain UDP socket sends ``CMD_VER`` to port 17893 and waits for each
  answer before the next; rate and p50/p99 latency, rounds alternating direct and bridged.
  A bare websocket client on the same proxy (no bridge threads) shows the floor the
  websocket and the server's proxy set.
* **Bursts**: 10,000 datagrams sent as fast as one socket can, each way through the bridge's
  boot port (54321): a tool sends to ``job.hostname:54321`` and a socket standing for the
  board on its own address counts arrivals; then that socket sends 10,000 back to where the
  bridge's datagrams came from and the tool counts them. Losses are counted after 1 s of quiet.

Usage: ``python benchmarks/bridge.py [--requests 2000] [--rounds 3] [--burst 10000]``.
It asserts nothing about speed: the figures depend on the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests._emuproc import BENCH_USER, v2_emulator_process  # noqa: E402

SCP_PORT, BOOT_PORT = 17893, 54321
_BUFFER = 1 << 23


@contextmanager
def _emulator(workdir: Path) -> Iterator[tuple[str, Path]]:
    """The emulator in its own process (HTTPS, a throw-away CA); (its v2 URL, the CA file).

    Its boards are on a random 127.x/16: another emulator on this host (a test run) may hold
    the default addresses, and then our board could not listen.
    """
    machines = workdir / "machines.toml"
    machines.write_text(
        '[[machine]]\nname = "bench"\ntags = ["default"]\nwidth = 1\nheight = 1\n'
        f'base_ip = "127.{random.randrange(100, 250)}.0.0"\n'
    )
    with v2_emulator_process(workdir, "--machines", machines, cwd=REPO) as (url, ca):
        yield url, ca


def _request(seq: int) -> bytes:
    sdp = struct.pack("<2x8B", 0x87, 0xFF, 0, (7 << 5) | 31, 0, 0, 0, 0)
    return sdp + struct.pack("<HH3I", 0, seq & 0xFFFF, 0, 0, 0)


def _round_trips(address: str, count: int) -> list[float]:
    times = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        for seq in range(count):
            start = time.perf_counter()
            sock.sendto(_request(seq), (address, SCP_PORT))
            while True:  # a late answer to an earlier (lost) request is skipped
                reply = sock.recv(4096)
                if struct.unpack_from("<H", reply, 12)[0] == seq & 0xFFFF:
                    break
            times.append(time.perf_counter() - start)
    return times


def _websocket_round_trips(job: object, count: int) -> list[float]:
    """The floor under the bridge: the same round trips on a bare websocket to the proxy
    (python-websockets' sync client, ``OPEN`` then ``MESSAGE`` frames), no bridge threads."""
    from websockets.sync.client import connect

    service, job_id = job.service, job.id  # type: ignore[attr-defined]
    url, headers, context = service.proxy_endpoint(job_id, None)
    times = []
    with connect(
        url, ssl=context, additional_headers=dict(headers), compression=None, proxy=None
    ) as ws:
        ws.send(struct.pack("<5I", 0, 1, 0, 0, SCP_PORT))  # OPEN, correlation 1, chip (0, 0)
        channel = struct.unpack_from("<3I", ws.recv())[2]  # type: ignore[arg-type]
        head = struct.pack("<2I", 2, channel)  # MESSAGE on it
        for seq in range(count):
            start = time.perf_counter()
            ws.send(head + _request(seq))
            ws.recv(timeout=2.0)
            times.append(time.perf_counter() - start)
    return times


def _drain(sock: socket.socket, expected: int, quiet: float = 1.0) -> tuple[int, object]:
    """Datagrams received until *expected* came or *quiet* seconds passed without one."""
    got = 0
    sender = None
    sock.settimeout(quiet)
    while got < expected:
        try:
            _, sender = sock.recvfrom(65536)
        except TimeoutError:
            break
        got += 1
    return got, sender


def _socket(address: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
    sock.bind(address)
    return sock


def _burst(bridge_ip: str, board_ip: str, count: int) -> tuple[int, int, float, float]:
    """(arrived at the board, arrived back at the tool, seconds out, seconds back)."""
    payload = b"\0" * 64
    with _socket((board_ip, BOOT_PORT)) as board, _socket(("127.0.0.1", 0)) as tool:
        tool.sendto(b"hello", (bridge_ip, BOOT_PORT))  # opens the tool's channel first
        _, proxy_side = _drain(board, 1, 5.0)
        start = time.perf_counter()
        for _ in range(count):
            tool.sendto(payload, (bridge_ip, BOOT_PORT))
        out, _ = _drain(board, count)
        took_out = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(count):
            board.sendto(payload, proxy_side)  # type: ignore[arg-type]
        back, _ = _drain(tool, count)
        took_back = time.perf_counter() - start
    return out, back, took_out, took_back


def _summary(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p50 = statistics.median(ordered) * 1e3
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3
    rate = len(times) / sum(times)
    return f"{name:9} {rate:9.0f} round trips/s   p50 {p50:7.3f} ms   p99 {p99:7.3f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="round trips per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burst", type=int, default=10_000, help="datagrams each way")
    args = parser.parse_args()
    from spalloc import Job

    with tempfile.TemporaryDirectory() as tmp, _emulator(Path(tmp)) as (url, ca):
        os.environ["SSL_CERT_FILE"] = str(ca)
        with Job(
            1,
            hostname=url,
            user=BENCH_USER[0],
            password=BENCH_USER[1],
            proxy="always",
            timeout=10.0,
            config_filenames=[],
        ) as job:
            assert job.bridge is not None and job.hostname is not None
            job.bridge.wait_connected(10.0)
            boards = job.snapshot.board_connections or {}
            board_ip, bridge_ip = boards[(0, 0)], job.hostname
            print(f"board {board_ip} (direct), bridge {bridge_ip} (websocket {url})")
            _round_trips(bridge_ip, 200)  # warm up both paths
            _round_trips(board_ip, 200)
            direct: list[float] = []
            bridged: list[float] = []
            bare: list[float] = []
            for _ in range(args.rounds):
                direct += _round_trips(board_ip, args.requests)
                bridged += _round_trips(bridge_ip, args.requests)
                bare += _websocket_round_trips(job, args.requests)
            print(_summary("direct", direct))
            print(_summary("bridged", bridged))
            print(_summary("websocket", bare) + "   (bare client on the proxy: the floor)")
            ratio = (len(bridged) / sum(bridged)) / (len(direct) / sum(direct))
            added = (statistics.median(bridged) - statistics.median(direct)) * 1e3
            print(f"bridged/direct rate {ratio:.2f}x, p50 added {added:.3f} ms")
            out, back, took_out, took_back = _burst(bridge_ip, board_ip, args.burst)
            n = args.burst
            print(
                f"burst of {n} to the board: {out} arrived, {n - out} lost ({took_out:.2f} s); "
                f"{n} back: {back} arrived, {n - back} lost ({took_back:.2f} s)"
            )
            print(f"bridge counters: {job.bridge.stats()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
