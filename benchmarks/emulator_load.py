"""Load benchmark: the emulator against the reference server and a do-nothing floor.

One threaded load generator drives three servers, in interleaved rounds, that each run in their
own process on a free loopback port:

* ``emulator``: ``python -m spalloc.emulator`` serving a SpiNNaker1M-sized machine (20x20 triads,
  1200 boards) from a TOML file written for the run;
* ``reference``: ``spalloc-server 1!7.0.0`` (from PyPI, in ``.peers/refserver``, built on demand)
  with an instant fake BMP, serving the same machine;
* ``floor``: a do-nothing asyncio server that parses each line and answers with a canned reply.

Every client thread owns one socket and loops ``create_job(1, keepalive=None)``, ``get_job_state``,
``destroy_job`` until the time or operation budget runs out. Both real servers free boards 0.1 s
after a job ends, so 1200 boards never run short. The script prints operations per second,
p50/p99 latency per operation and the ratios emulator/floor and emulator/reference. It asserts
nothing about speed: the figures depend on the machine and on whatever else is running.

Usage: ``python benchmarks/emulator_load.py [--clients 50 200] [--duration 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OPS = ("create_job", "get_job_state", "destroy_job")
MACHINE_TOML = """\
# SpiNNaker1M-sized: 20x20 triads = 1200 boards, ten cabinets of five 24-board frames.
[[machine]]
name = "spin1m"
tags = ["default"]
width = 20
height = 20
base_ip = "127.80.0.0"
"""
QUARANTINE = 0.1


# --- the do-nothing floor server ---------------------------------------------------------------

_STATE = json.dumps(
    {
        "return": {
            "state": 3,
            "power": True,
            "keepalive": None,
            "reason": None,
            "start_time": 0.0,
            "keepalivehost": "127.0.0.1",
        }
    }
).encode()


async def _floor_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    next_id = 0
    try:
        while line := await reader.readline():
            command = json.loads(line).get("command")
            if command == "create_job":
                next_id += 1
                reply = b'{"return": %d}' % next_id
            elif command == "get_job_state":
                reply = _STATE
            elif command == "version":
                reply = b'{"return": "5.0.0"}'
            else:
                reply = b'{"return": null}'
            writer.write(reply + b"\n")
            await writer.drain()
    except (ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def _serve_floor() -> None:
    server = await asyncio.start_server(_floor_client, "127.0.0.1", 0, limit=1 << 20)
    print(f"floor listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


# --- servers under test, each in its own process ------------------------------------------------

_LISTENING = re.compile(rb"listening on [\d.]+:(\d+)")


@contextmanager
def _listening_process(cmd: Sequence[str], *, timeout: float = 60.0) -> Iterator[int]:
    """Start *cmd*, wait for its ``listening on HOST:PORT`` line, yield the port, stop it."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        assert proc.stdout is not None
        port = None
        deadline = time.monotonic() + timeout
        seen = b""
        while port is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
            match = _LISTENING.search(line)
            if match:
                port = int(match.group(1))
        if port is None:
            raise RuntimeError(f"{cmd[0]} did not start: {seen.decode(errors='replace')}")
        # Keep draining its output so a chatty server can never block on a full pipe.
        threading.Thread(target=proc.stdout.read, name="drain", daemon=True).start()
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def emulator_server(toml: Path) -> Iterator[int]:
    """Our emulator via its command line."""
    with _listening_process(
        [
            sys.executable,
            "-m",
            "spalloc.emulator",
            "--port",
            "0",
            "--machines",
            str(toml),
            "--power-delay",
            "0",
            "--free-delay",
            str(QUARANTINE),
        ]
    ) as port:
        yield port


@contextmanager
def floor_server() -> Iterator[int]:
    """The do-nothing asyncio server (this script with ``--serve-floor``)."""
    with _listening_process([sys.executable, __file__, "--serve-floor"]) as port:
        yield port


@contextmanager
def reference_server(toml: Path) -> Iterator[int]:
    """spalloc-server 1!7.0.0 with a fake BMP, serving the machines of *toml*."""
    sys.path.insert(0, str(REPO / "tests"))
    from interop._peers import ensure_peer
    from interop.refserver import ReferenceServer

    from spalloc.emulator.machines import load_machines

    server = ReferenceServer(
        ensure_peer("refserver"),
        load_machines(toml),
        power_delay=0.0,
        seconds_before_free=QUARANTINE,
        timeout_check_interval=0.1,
    )
    with server:
        yield server.port


# --- the load generator --------------------------------------------------------------------------


@dataclass
class Result:
    """What one run measured."""

    target: str
    clients: int
    elapsed: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPS})
    errors: int = 0
    queued: int = 0

    def merge(self, other: Result) -> None:
        """Add another run's figures to these."""
        self.elapsed += other.elapsed
        for op in OPS:
            self.latencies[op].extend(other.latencies[op])
        self.errors += other.errors
        self.queued += other.queued

    @property
    def ops(self) -> int:
        return sum(len(values) for values in self.latencies.values())

    @property
    def rate(self) -> float:
        return self.ops / self.elapsed if self.elapsed else 0.0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


@dataclass
class _Tally:
    """One client's raw figures: (start, end) per operation, on the perf_counter clock."""

    spans: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: {op: [] for op in OPS}
    )
    errors: int = 0
    queued: int = 0


def _client(
    port: int, start: threading.Barrier, stop: threading.Event, max_cycles: int, tally: _Tally
) -> None:
    """One connection doing create/state/destroy cycles."""
    spans = tally.spans
    with socket.create_connection(("127.0.0.1", port), timeout=30.0) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lines = sock.makefile("rb")
        clock = time.perf_counter

        def call(command: str, args: list[object], kwargs: dict[str, object]) -> object:
            request = json.dumps({"command": command, "args": args, "kwargs": kwargs})
            began = clock()
            sock.sendall(request.encode() + b"\n")
            reply = json.loads(lines.readline())
            spans[command].append((began, clock()))
            if "return" not in reply:
                tally.errors += 1
                return None
            return reply["return"]

        start.wait()
        for _ in range(max_cycles):
            if stop.is_set():
                break
            job_id = call("create_job", [1], {"owner": "bench", "keepalive": None})
            state = call("get_job_state", [job_id], {})
            if isinstance(state, dict) and state.get("state") == 1:
                tally.queued += 1
            call("destroy_job", [job_id], {})


def run_load(target: str, port: int, clients: int, duration: float, max_cycles: int) -> Result:
    """Drive *clients* threads against *port* for *duration* s (or *max_cycles* each).

    Only operations that complete inside the window count, so that clients still finishing
    a slow cycle after the window closes do not stretch it.
    """
    tallies = [_Tally() for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=_client,
            args=(port, start, stop, max_cycles, tally),
            name=f"load-{i}",
            daemon=True,
        )
        for i, tally in enumerate(tallies)
    ]
    for thread in threads:
        thread.start()
    start.wait(timeout=60)
    began = time.perf_counter()
    stop.wait(duration)
    stop.set()
    window_end = time.perf_counter()
    for thread in threads:
        thread.join(timeout=60)
    result = Result(target, clients, elapsed=window_end - began)
    for tally in tallies:
        for op in OPS:
            result.latencies[op].extend(
                end - beg for beg, end in tally.spans[op] if end <= window_end
            )
        result.errors += tally.errors
        result.queued += tally.queued
    return result


# --- report --------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f}"


def report(results: list[Result]) -> str:
    """The table of figures and the ratios the issue asks for."""
    out = [
        f"{'target':<10} {'clients':>7} {'ops':>8} {'ops/s':>8}  "
        + "  ".join(f"{op + ' p50/p99 ms':>29}" for op in OPS)
        + "  errors queued"
    ]
    for r in results:
        cells = "  ".join(
            (
                f"{_ms(_percentile(r.latencies[op], 50))} / {_ms(_percentile(r.latencies[op], 99))}"
            ).rjust(29)
            for op in OPS
        )
        out.append(
            f"{r.target:<10} {r.clients:>7} {r.ops:>8} {r.rate:>8.0f}  {cells}  "
            f"{r.errors:>6} {r.queued:>6}"
        )
    by_key = {(r.target, r.clients): r for r in results}
    for clients in sorted({r.clients for r in results}):
        emulator = by_key.get(("emulator", clients))
        if emulator is None:
            continue
        for other in ("floor", "reference"):
            base = by_key.get((other, clients))
            if base is not None and base.rate:
                out.append(
                    f"{clients:>4} clients: emulator/{other} = {emulator.rate / base.rate:.2f}x"
                )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[50, 200])
    parser.add_argument(
        "--duration", type=float, default=5.0, help="seconds per run (default: %(default)s)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds the duration is split into"
    )
    parser.add_argument(
        "--max-cycles",
        type=int,
        default=100_000,
        help="create/state/destroy cycles per client at most",
    )
    parser.add_argument(
        "--targets",
        nargs="+",
        default=["emulator", "reference", "floor"],
        choices=["emulator", "reference", "floor"],
    )
    parser.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_floor:
        try:
            asyncio.run(_serve_floor())
        except KeyboardInterrupt:
            pass
        return 0

    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.duration} s per "
        f"target and client count in {args.rounds} interleaved rounds, clients {args.clients}",
        flush=True,
    )
    results: dict[tuple[str, int], Result] = {}
    with tempfile.TemporaryDirectory(prefix="spalloc-bench-") as tmp, ExitStack() as stack:
        toml = Path(tmp) / "spin1m.toml"
        toml.write_text(MACHINE_TOML)
        starters = {
            "emulator": lambda: emulator_server(toml),
            "reference": lambda: reference_server(toml),
            "floor": floor_server,
        }
        ports = {target: stack.enter_context(starters[target]()) for target in args.targets}
        # Rounds rotate the targets so that a change in background load hits all of them alike.
        for clients in args.clients:
            for round_ in range(args.rounds):
                for target in args.targets:
                    part = run_load(
                        target, ports[target], clients, args.duration / args.rounds, args.max_cycles
                    )
                    total = results.setdefault((target, clients), Result(target, clients))
                    total.merge(part)
                    print(
                        f"  round {round_ + 1}: {target} x{clients}: {part.rate:.0f} ops/s",
                        flush=True,
                    )
    print(report(list(results.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
