"""Benchmark of the emulator's v2 service: REST job cycles and the websocket proxy.

Two measurements, each against a baseline measured in the same run:

* **REST cycles.** N concurrent clients (aiohttp, one process) each repeat: ``POST jobs``
  (one board), ``GET jobs/{id}`` until READY, ``DELETE jobs/{id}``. The server is
  ``python -m spalloc.emulator --http-port 0`` in its own process, serving a 20x20-triad
  machine (1200 boards, so boards never run short) with no power delay; clients log in with a
  bearer token. The floor is a do-nothing aiohttp server in its own process answering the same
  three requests with canned bodies. Printed: cycles/s, p50/p99 cycle time, emulator/floor.
* **Proxy.** One READY job; SCP ``CMD_VER`` round trips to the board sent directly over UDP
  and through the proxy websocket (OPEN then MESSAGE frames), one at a time: p50/p99 and the
  added p50. Then packets through one websocket with up to ``--window`` requests in flight:
  replies per second (each is one packet each way).

Usage: ``python benchmarks/emulator_v2.py [--clients 50 200] [--duration 5] [--rounds 5]
[--round-trips 2000] [--window 32]``; each target gets ``--duration`` seconds per client count,
split into interleaved rounds.
It asserts nothing about speed: the figures depend on the machine and on what else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"

_FLOOR = textwrap.dedent("""
    import sys
    from aiohttp import web

    STATE = b'{"state": "READY", "owner": "bench"}'

    async def create(request):
        await request.read()
        ref = f"http://{request.host}/spalloc/srv/spalloc/jobs/1"
        return web.json_response({"job-id": 1, "job-ref": ref}, status=201,
                                 headers={"Location": ref})

    async def state(request):
        return web.Response(body=STATE, content_type="application/json")

    async def delete(request):
        return web.Response(status=204)

    async def main():
        app = web.Application()
        app.router.add_post("/spalloc/srv/spalloc/jobs", create)
        app.router.add_get("/spalloc/srv/spalloc/jobs/{id}", state)
        app.router.add_delete("/spalloc/srv/spalloc/jobs/{id}", delete)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        print(f"floor listening on http://127.0.0.1:{port}/spalloc/", flush=True)
        await asyncio.Event().wait()

    import asyncio
    asyncio.run(main())
""")


@contextmanager
def _server(cmd: Sequence[str]) -> Iterator[str]:
    """Start *cmd*, read its start-up line, yield the ``http://…/spalloc/`` URL in it."""
    proc = subprocess.Popen(
        list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = next((w for w in line.split() if w.startswith("http")), None)
        if url is None:
            raise RuntimeError(
                f"no URL in start-up line {line!r}: {proc.stderr.read()}" if proc.stderr else line
            )
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@contextmanager
def _emulator(workdir: Path) -> Iterator[str]:
    net = random.randrange(100, 250)
    (workdir / "machines.toml").write_text(
        f'[[machine]]\nname = "big"\ntags = ["default"]\nwidth = 20\nheight = 20\n'
        f'base_ip = "127.{net}.0.0"\n'
    )
    (workdir / "users.toml").write_text(
        f'[[user]]\nname = "bench"\ntokens = ["{TOKEN}"]\ngroups = ["bench"]\n'
    )
    with _server(
        [
            sys.executable,
            "-m",
            "spalloc.emulator",
            "--port",
            "0",
            "--http-port",
            "0",
            "--machines",
            str(workdir / "machines.toml"),
            "--users",
            str(workdir / "users.toml"),
            "--power-delay",
            "0",
            "--free-delay",
            "0",
        ]
    ) as url:
        yield url


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- REST cycles ------------------------------------------------------------------------------


async def _cycles(base: str, clients: int, duration: float) -> tuple[int, list[float], int]:
    jobs = base + "srv/spalloc/jobs"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = {"num-boards": 1, "keepalive-interval": "PT60S"}
    times: list[float] = []
    errors = 0
    deadline = time.monotonic() + duration

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                async with session.post(jobs, json=body, headers=headers) as reply:
                    if reply.status != 201:
                        errors += 1
                        continue
                    ref = reply.headers["Location"]
                for _ in range(1000):
                    async with session.get(ref, params={"wait": "false"}, headers=headers) as reply:
                        if (await reply.json())["state"] == "READY":
                            break
                async with session.delete(ref, headers=headers) as reply:
                    if reply.status != 204:
                        errors += 1
                        continue
            except aiohttp.ClientError:
                errors += 1
                continue
            times.append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return len(times), times, errors


def rest(clients_list: Sequence[int], duration: float, rounds: int, workdir: Path) -> None:
    print(
        "REST create -> ready -> destroy cycles (one board each; bearer token); "
        f"{rounds} interleaved rounds per target"
    )
    print(
        f"{'clients':>8} {'target':>9} {'cycles/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>7} {'vs floor':>9}"
    )
    with _emulator(workdir) as emulator, _server([sys.executable, "-c", _FLOOR]) as floor:
        targets = (("floor", floor), ("emulator", emulator))
        for clients in clients_list:
            counts = {name: 0 for name, _ in targets}
            times: dict[str, list[float]] = {name: [] for name, _ in targets}
            errors = {name: 0 for name, _ in targets}
            # Alternate short rounds so that other load on the host falls on both alike.
            for _ in range(rounds):
                for name, base in targets:
                    count, taken, failed = asyncio.run(_cycles(base, clients, duration / rounds))
                    counts[name] += count
                    times[name].extend(taken)
                    errors[name] += failed
            rates = {name: counts[name] / duration for name, _ in targets}
            for name, _ in targets:
                ratio = "" if name == "floor" else f"{rates[name] / rates['floor']:.2f}x"
                print(
                    f"{clients:>8} {name:>9} {rates[name]:>10.0f} "
                    f"{1000 * _percentile(times[name], 0.5):>8.1f} "
                    f"{1000 * _percentile(times[name], 0.99):>8.1f} {errors[name]:>7} "
                    f"{ratio:>9}"
                )


# --- proxy ------------------------------------------------------------------------------------


def _scp_version(seq: int) -> bytes:
    sdp = struct.pack("<2x8B", 0x87, 0xFF, 0, (7 << 5) | 31, 0, 0, 0, 0)
    return sdp + struct.pack("<HH3I", 0, seq & 0xFFFF, 0, 0, 0)


async def _proxy(base: str, round_trips: int, window: int, duration: float) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            base + "srv/spalloc/jobs",
            headers=headers,
            json={"num-boards": 1, "keepalive-interval": "PT300S"},
        ) as r:
            ref = r.headers["Location"]
        for _ in range(1000):
            async with session.get(ref, headers=headers) as r:
                state = await r.json()
            if state["state"] == "READY":
                break
            await asyncio.sleep(0.01)
        async with session.get(ref + "/machine", headers=headers) as r:
            address = (await r.json())["connections"][0][1]

        # Direct UDP, one at a time.
        direct: list[float] = []
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((address, 17893))
            sock.settimeout(5)
            for seq in range(round_trips):
                start = time.perf_counter()
                await loop.run_in_executor(None, sock.send, _scp_version(seq))
                await loop.run_in_executor(None, sock.recv, 4096)
                direct.append(time.perf_counter() - start)
        # The same from a plain blocking loop, the lowest the board itself allows.
        bare: list[float] = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((address, 17893))
            sock.settimeout(5)
            for seq in range(round_trips):
                start = time.perf_counter()
                sock.send(_scp_version(seq))
                sock.recv(4096)
                bare.append(time.perf_counter() - start)

        async with session.ws_connect(state["proxy-ref"], headers=headers) as ws:
            await ws.send_bytes(struct.pack("<5I", 0, 1, 0, 0, 17893))
            channel = struct.unpack_from("<3I", (await ws.receive()).data)[2]
            prefix = struct.pack("<2I", 2, channel)
            proxied: list[float] = []
            for seq in range(round_trips):
                start = time.perf_counter()
                await ws.send_bytes(prefix + _scp_version(seq))
                await ws.receive()
                proxied.append(time.perf_counter() - start)

            # Throughput: keep up to *window* requests in flight for *duration* seconds.
            received = 0
            in_flight = asyncio.Semaphore(window)
            stop = time.monotonic() + duration

            async def sender() -> None:
                seq = 0
                while time.monotonic() < stop:
                    await in_flight.acquire()
                    await ws.send_bytes(prefix + _scp_version(seq))
                    seq += 1

            async def receiver() -> None:
                nonlocal received
                while time.monotonic() < stop + 0.5:
                    try:
                        msg = await asyncio.wait_for(ws.receive(), 1.0)
                    except asyncio.TimeoutError:
                        # A lost datagram: let another request go.
                        in_flight.release()
                        continue
                    if msg.type != aiohttp.WSMsgType.BINARY:
                        break
                    if time.monotonic() < stop:
                        received += 1
                    in_flight.release()

            start = time.monotonic()
            await asyncio.gather(sender(), receiver())
            elapsed = min(time.monotonic(), stop) - start
        async with session.delete(ref, headers=headers):
            pass

    def row(name: str, values: list[float]) -> str:
        return (
            f"{name:>28} p50 {1e6 * statistics.median(values):8.0f} us   "
            f"p99 {1e6 * _percentile(values, 0.99):8.0f} us"
        )

    print(f"\nSCP CMD_VER round trips to one board ({round_trips} each, one at a time)")
    print(row("direct UDP (blocking loop)", bare))
    print(row("direct UDP (from asyncio)", direct))
    print(row("through the proxy websocket", proxied))
    added = statistics.median(proxied) - statistics.median(direct)
    print(
        f"{'added by the proxy (p50)':>28} {1e6 * added:8.0f} us vs asyncio UDP, "
        f"{1e6 * (statistics.median(proxied) - statistics.median(bare)):.0f} us vs blocking"
    )
    print(
        f"\nThrough one websocket, window {window}: {received / elapsed:,.0f} round trips/s "
        f"= {2 * received / elapsed:,.0f} packets/s (both directions)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[50, 200])
    parser.add_argument(
        "--duration", type=float, default=5.0, help="seconds per measurement (default: %(default)s)"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds per target and client count"
    )
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--skip-rest", action="store_true")
    parser.add_argument("--skip-proxy", action="store_true")
    args = parser.parse_args(argv)
    print(
        f"python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, "
        f"{os.cpu_count()} CPUs (shared: figures vary with other load)\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if not args.skip_rest:
            rest(args.clients, args.duration, args.rounds, workdir)
        if not args.skip_proxy:
            with _emulator(workdir) as base:
                asyncio.run(_proxy(base, args.round_trips, args.window, args.duration))
    return 0


if __name__ == "__main__":
    sys.exit(main())
