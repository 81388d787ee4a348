"""Benchmark of ``Job`` over spalloc v2 against SpiNNMan's ``SpallocClient``, side by side.

The server is ``python -m spalloc.emulator --http-port 0`` in its own process, over HTTPS with
a throw-away CA (trusted through ``SSL_CERT_FILE`` and ``REQUESTS_CA_BUNDLE``), no power delay,
users logging in with a password. Measured in the same run:

* **Job(1) life cycle**: create one board, wait until ready, destroy, each cycle from a fresh
  login (``Job(1, hostname=URL, ...)`` as a script would; SpiNNMan's ``SpallocClient(url, ...)``
  ``.create_job()``, ``wait_until_ready()``, ``destroy()``, ``close()``). SpiNNMan runs in its
  own venv (``.peers/spinnman``, see ``tests/interop/_peers.py``) and times its own cycles, so
  its start-up is not counted. Rounds alternate between the two.
* **Import**: ``import spalloc, spalloc.service.v2`` (the v2 path: httpx too) against
  ``import spinnman.spalloc``, each in a fresh interpreter (``python -X importtime`` not used:
  wall time of ``python -c``, minus an empty ``python -c pass``).

Usage: ``python benchmarks/job_v2.py [--cycles 20] [--rounds 5] [--imports 10]``.
It asserts nothing about speed: the figures depend on the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests._emuproc import BENCH_USER, v2_emulator_process  # noqa: E402

_SPINNMAN = textwrap.dedent("""
    import json, sys, time
    from spinnman.config_setup import unittest_setup
    from spinnman.data.spinnman_data_writer import SpiNNManDataWriter
    from spinnman.spalloc import SpallocClient

    url, name, secret, cycles = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    unittest_setup()
    SpiNNManDataWriter.mock().set_n_required(1, None)
    times = []
    for _ in range(cycles):
        start = time.perf_counter()
        client = SpallocClient(url, username=name, password=secret)
        job = client.create_job()
        job.wait_until_ready()
        job.destroy("benchmark")
        client.close()
        times.append(time.perf_counter() - start)
    print(json.dumps(times))
""")


@contextmanager
def _emulator(workdir: Path) -> Iterator[tuple[str, Path]]:
    with v2_emulator_process(workdir, cwd=REPO) as (url, ca):
        yield url, ca


def _ours(url: str, cycles: int) -> list[float]:
    from spalloc import Job

    times = []
    for _ in range(cycles):
        start = time.perf_counter()
        with Job(1, hostname=url, user=BENCH_USER[0], password=BENCH_USER[1], timeout=10.0):
            pass
        times.append(time.perf_counter() - start)
    return times


def _theirs(python: Path, url: str, cycles: int) -> list[float]:
    done = subprocess.run(
        [str(python), "-c", _SPINNMAN, url, *BENCH_USER, str(cycles)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=dict(os.environ),
    )
    if done.returncode != 0:
        raise RuntimeError(f"SpiNNMan failed: {done.stderr[-2000:]}")
    times: list[float] = json.loads(done.stdout.splitlines()[-1])
    return times


def _import_time(python: Path, code: str, runs: int) -> float:
    def once(source: str) -> float:
        start = time.perf_counter()
        subprocess.run(
            [str(python), "-c", source], check=True, capture_output=True, cwd=tempfile.gettempdir()
        )
        return time.perf_counter() - start

    empty = statistics.median(once("pass") for _ in range(runs))
    return statistics.median(once(code) for _ in range(runs)) - empty


def _ms(values: list[float], q: float) -> str:
    ordered = sorted(values)
    return f"{1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20, help="cycles per round and client")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--imports", type=int, default=10, help="interpreters per import")
    args = parser.parse_args(argv)
    from tests.interop._peers import ensure_peer

    spinnman = ensure_peer("spinnman") / "python"
    ours: list[float] = []
    theirs: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, _emulator(Path(tmp)) as (url, ca):
        os.environ["SSL_CERT_FILE"] = os.environ["REQUESTS_CA_BUNDLE"] = str(ca)
        _ours(url, 2)  # warm up: imports, the TLS context
        for _ in range(args.rounds):
            ours.extend(_ours(url, args.cycles))
            theirs.extend(_theirs(spinnman, url, args.cycles))
    print(
        f"Job(1) create -> ready -> destroy over v2 (HTTPS, password login), "
        f"{len(ours)} cycles each"
    )
    print(f"{'client':>22} {'p50 ms':>8} {'p90 ms':>8}")
    for name, times in (("spalloc Job", ours), ("SpiNNMan SpallocClient", theirs)):
        print(f"{name:>22} {_ms(times, 0.5):>8} {_ms(times, 0.9):>8}")
    ratio = statistics.median(ours) / statistics.median(theirs)
    print(f"{'ratio (p50)':>22} {ratio:>8.2f}x")
    ours_import = _import_time(
        Path(sys.executable), "import spalloc, spalloc.service.v2", args.imports
    )
    theirs_import = _import_time(spinnman, "import spinnman.spalloc", args.imports)
    print(
        f"import: spalloc + v2 {1000 * ours_import:.0f} ms, spinnman.spalloc "
        f"{1000 * theirs_import:.0f} ms ({ours_import / theirs_import:.2f}x)"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
