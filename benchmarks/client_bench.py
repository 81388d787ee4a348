"""Client benchmark: prints figures, asserts nothing.

    python benchmarks/client_bench.py [--iterations N]

Measures, in one run:

* ``Job(1)`` create → ready → destroy with our ``Job``, against the raw-protocol floor (the
  same commands over a bare socket), and against the official clients 1!6.0.0 / 1!7.4.1 when
  their virtualenvs exist in ``.peers/`` (``python tests/interop/_peers.py`` builds them);
  on the emulator (its own process, zero power delay) and on the reference server
  ``spalloc-server 1!7.0.0`` (fake BMP, zero power delay) when ``.peers/refserver`` exists.
  The official clients reject the reference's version string ``1!7.0.0`` (bug B1), so for
  that server only their version check is switched off in their process.
* ``version()`` calls per second on one shared ``ProtocolClient`` from 1 and 4 threads;
* ``import spalloc`` time in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PEERS = REPO / ".peers"
sys.path.insert(0, str(REPO))

from spalloc import Job, ProtocolClient  # noqa: E402

OWNER = "bench@example.org"


# --- servers ------------------------------------------------------------------------------------


@contextmanager
def emulator_server() -> Iterator[tuple[str, int]]:
    """The emulator in its own process, so that it does not share our GIL."""
    from tests._emuproc import emulator_process

    options = ["--port", "0", "--power-delay", "0", "--free-delay", "0.01"]
    with emulator_process(*options, cwd=REPO) as (_, line):
        match = re.search(r"listening on ([\d.]+):(\d+)", line)
        if match is None:
            raise RuntimeError(f"emulator did not start: {line!r}")
        yield match.group(1), int(match.group(2))


@contextmanager
def reference_server() -> Iterator[tuple[str, int] | None]:
    bin_dir = PEERS / "refserver" / "bin"
    if not (bin_dir / "python").exists():
        yield None
        return
    sys.path.insert(0, str(REPO / "tests" / "interop"))
    from refserver import ReferenceServer

    from spalloc.emulator.machines import default_machines

    server = ReferenceServer(
        bin_dir,
        list(default_machines()),
        power_delay=0.0,
        seconds_before_free=0.01,
        timeout_check_interval=0.05,
    )
    server.start()
    try:
        yield server.address
    finally:
        server.stop()


# --- one create → ready → destroy, three ways ----------------------------------------------------


def ours(address: tuple[str, int]) -> float:
    start = time.perf_counter()
    job = Job(
        1,
        hostname=address[0],
        port=address[1],
        owner=OWNER,
        config_filenames=[],
        keepalive=60.0,
        timeout=10.0,
    )
    job.wait_until_ready(timeout=10.0)
    assert job.hostname is not None
    job.destroy()
    return time.perf_counter() - start


class _Lines:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def send(self, command: str, *args: Any, **kwargs: Any) -> None:
        line = json.dumps({"command": command, "args": list(args), "kwargs": kwargs})
        self.sock.sendall(line.encode() + b"\n")

    def read(self) -> dict[str, Any]:
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return dict(json.loads(line))

    def call(self, command: str, *args: Any, **kwargs: Any) -> Any:
        self.send(command, *args, **kwargs)
        for _ in range(10_000):
            message = self.read()
            if "return" in message:
                return message["return"]
            if "exception" in message:
                raise RuntimeError(message["exception"])
        raise RuntimeError("no reply")


def raw_floor(address: tuple[str, int]) -> float:
    """The least any client must do: one command at a time, waiting on a notification."""
    start = time.perf_counter()
    with socket.create_connection(address, timeout=10.0) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lines = _Lines(sock)
        lines.call("version")
        job_id = lines.call("create_job", 1, owner=OWNER, keepalive=60.0)
        lines.call("notify_job", job_id)
        for _ in range(1000):
            if lines.call("get_job_state", job_id)["state"] == 3:
                break
            for _ in range(1000):  # wait for the job's notification
                if "jobs_changed" in lines.read():
                    break
        info = lines.call("get_job_machine_info", job_id)
        assert info["connections"]
        lines.call("destroy_job", job_id, reason=None)
    return time.perf_counter() - start


_OFFICIAL = """
import json, sys, time
host, port, n, patch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
try:
    from spalloc_client import Job
except ImportError:
    from spalloc import Job
assert "/.peers/" in sys.modules[Job.__module__].__file__, "not the official client"
if patch:
    Job._assert_compatible_version = lambda self: None
times = []
for _ in range(n):
    t = time.perf_counter()
    j = Job(1, hostname=host, port=port, owner="bench@example.org", config_filenames=[],
            keepalive=60.0, timeout=10.0)
    j.wait_until_ready(timeout=10.0)
    assert j.hostname
    j.destroy()
    times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def official(name: str, address: tuple[str, int], n: int, patch: bool) -> list[float] | None:
    python = PEERS / name / "bin" / "python"
    if not python.exists():
        return None
    # -I: isolated, so that "import spalloc" cannot pick up this repository's package.
    out = subprocess.run(
        [
            str(python),
            "-I",
            "-c",
            _OFFICIAL,
            address[0],
            str(address[1]),
            str(n),
            "1" if patch else "0",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PEERS,
    )
    if out.returncode != 0:
        print(f"    {name}: failed: {out.stderr.strip().splitlines()[-1:]}")
        return None
    return list(json.loads(out.stdout))


def summary(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    return (
        f"median {statistics.median(ms):7.2f} ms  mean {statistics.fmean(ms):7.2f} ms  "
        f"min {ms[0]:6.2f} ms  (n={len(ms)})"
    )


def lifecycle(
    label: str, address: tuple[str, int], n: int, official_n: int, patch_official: bool
) -> None:
    print(f"Job(1) create -> ready -> destroy, {label}")
    for fn in (raw_floor, ours):  # warm up both paths
        fn(address)
    results: dict[str, list[float]] = {"raw floor": [], "ours": []}
    for _ in range(n):  # interleave, so that drift hits both equally
        results["raw floor"].append(raw_floor(address))
        results["ours"].append(ours(address))
    floor = statistics.median(results["raw floor"])
    for key in ("raw floor", "ours"):
        ratio = statistics.median(results[key]) / floor
        print(f"  {key:16s} {summary(results[key])}  {ratio:5.2f}x floor")
    for name, label_ in (("client60", "spalloc 1!6.0.0"), ("client74", "spalloc 1!7.4.1")):
        times = official(name, address, official_n, patch_official)
        if times is None:
            print(f"  {label_:16s} (not available: no .peers/{name})")
        else:
            ratio = statistics.median(times) / floor
            print(f"  {label_:16s} {summary(times)}  {ratio:5.2f}x floor")


# --- throughput -----------------------------------------------------------------------------


def throughput(address: tuple[str, int], threads: int, seconds: float = 1.0) -> float:
    with ProtocolClient(address[0], address[1], timeout=10.0) as client:
        client.version()
        counts = [0] * threads
        stop = time.perf_counter() + seconds

        def work(i: int) -> None:
            while time.perf_counter() < stop:
                client.version()
                counts[i] += 1

        pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        start = time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return sum(counts) / (time.perf_counter() - start)


def import_time(runs: int = 7) -> tuple[float, list[str]]:
    code = (
        "import sys, time\nt = time.perf_counter()\nimport spalloc\n"
        "d = time.perf_counter() - t\n"
        "heavy = sorted({'IPython', 'ipywidgets', 'rich'} & set(sys.modules))\n"
        "print(d, ','.join(heavy))\n"
    )
    times, heavy = [], []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
        )
        value, _, loaded = out.stdout.strip().partition(" ")
        times.append(float(value))
        heavy = [m for m in loaded.split(",") if m]
    return statistics.median(times), heavy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--official-iterations", type=int, default=10)
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")

    with emulator_server() as address:
        lifecycle(
            "against the emulator (zero power delay)",
            address,
            args.iterations,
            args.official_iterations,
            patch_official=False,
        )
        one = throughput(address, 1)
        four = throughput(address, 4)
        print("version() calls/s on one ProtocolClient (emulator)")
        print(f"  1 thread  {one:9.0f}/s")
        print(f"  4 threads {four:9.0f}/s  ({four / one:.2f}x)")
    with reference_server() as ref:
        if ref is None:
            print("reference server: not available (no .peers/refserver)")
        else:
            lifecycle(
                "against the reference server 1!7.0.0 (zero power delay)",
                ref,
                args.iterations,
                args.official_iterations,
                patch_official=True,
            )
            one = throughput(ref, 1)
            four = throughput(ref, 4)
            print("version() calls/s on one ProtocolClient (reference server)")
            print(f"  1 thread  {one:9.0f}/s")
            print(f"  4 threads {four:9.0f}/s  ({four / one:.2f}x)")
    seconds, heavy = import_time()
    print(
        f"import spalloc: {seconds * 1000:.1f} ms (median of 7 fresh interpreters); "
        f"heavy modules loaded: {heavy or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
