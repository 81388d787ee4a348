"""Notebook extension figures, measured in a warm ipykernel (not a timed test).

Prints:

* ``%spalloc --local 1 --wait`` to ready (embedded emulator, zero power delay), warm kernel;
* latency from a server-side state change (another client powers the boards off/on) to the
  widget's traits changing;
* comm messages per minute on IOPub while a displayed job widget sits idle (short keepalive,
  so the job's snapshot is refreshed many times in the window).

Usage: ``python benchmarks/nb_bench.py [--runs 20] [--idle-seconds 60]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parent.parent

ALLOC_TIMING = """
import json, time, warnings
warnings.simplefilter("ignore")
%load_ext spalloc_nb
_warm = %spalloc --local 1 --wait
_warm.destroy()
_times = []
for _ in range({runs}):
    _t = time.perf_counter()
    _j = get_ipython().run_line_magic("spalloc", "--local 1 --wait")
    _times.append(time.perf_counter() - _t)
    _j.destroy()
print(json.dumps(_times))
"""

LATENCY = """
import json, threading, time
from spalloc.client import ProtocolClient
from spalloc._local import local_emulator
from spalloc_nb import job_widget
_job = %spalloc --local 1 --wait
_w = job_widget(_job)
_emu = local_emulator()
_other = ProtocolClient(_emu.host, _emu.port, timeout=5)
_other.connect()
_lat = []
for _i in range({runs}):
    _seen = threading.Event()
    def _mark(change, _seen=_seen):
        _seen.set()
    _w.observe(_mark, "power")
    _t = time.perf_counter()
    _other.call("power_off_job_boards" if _i % 2 == 0 else "power_on_job_boards", _job.id)
    _seen.wait(5)
    _lat.append(time.perf_counter() - _t)
    _w.unobserve(_mark, "power")
    _job.wait_until_ready(timeout=5)
    while _w.state != "ready":
        time.sleep(0.001)
_other.close()
_job.destroy()
print(json.dumps(_lat))
"""

IDLE_SETUP = """
_idle = %spalloc --local 1 --wait --keepalive 2
display(_idle)
"""


def _run(client: Any, code: str, timeout: float = 120) -> tuple[str, dict[str, Any]]:
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    reply = client.execute_interactive(code, timeout=timeout, output_hook=hook)
    return "".join(out), reply["content"]


def _summary(name: str, values: list[float], unit: float = 1000.0, label: str = "ms") -> None:
    scaled = sorted(v * unit for v in values)
    print(
        f"{name}: median {statistics.median(scaled):.1f} {label}, "
        f"min {scaled[0]:.1f}, max {scaled[-1]:.1f} (n={len(scaled)})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="nb-bench-"))
    env = dict(
        os.environ,
        XDG_CONFIG_HOME=str(home),
        IPYTHONDIR=str(home / "ipy"),
        SPALLOC_OWNER="bench@example.org",
        PYTHONPATH=str(ROOT),
    )
    env.pop("SPALLOC_HOSTNAME", None)
    manager = KernelManager(kernel_name="python3")
    manager.kernel_spec.argv[0] = sys.executable
    manager.start_kernel(env=env, cwd=str(home))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        out, reply = _run(client, ALLOC_TIMING.format(runs=args.runs))
        if reply["status"] != "ok":
            print(out)
            return 1
        _summary("%spalloc --local 1 --wait (warm kernel)", json.loads(out.strip()))

        out, reply = _run(client, LATENCY.format(runs=args.runs))
        if reply["status"] != "ok":
            print(out)
            return 1
        _summary("server-side change -> widget trait", json.loads(out.strip()))

        out, reply = _run(client, IDLE_SETUP)
        if reply["status"] != "ok":
            print(out)
            return 1
        # Let the display's own messages drain, then count for the idle window.
        time.sleep(1.0)
        while client.iopub_channel.msg_ready():
            client.get_iopub_msg(timeout=1)
        counts: dict[str, int] = {}
        deadline = time.monotonic() + args.idle_seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                msg = client.get_iopub_msg(timeout=min(remaining, 1.0))
            except Exception:  # queue.Empty: nothing arrived in this slice
                continue
            kind = msg["msg_type"]
            counts[kind] = counts.get(kind, 0) + 1
        comm_msgs = counts.get("comm_msg", 0)
        per_minute = comm_msgs * 60.0 / args.idle_seconds
        print(
            f"idle widget (keepalive 2 s, {args.idle_seconds:.0f} s window): "
            f"{comm_msgs} comm_msg ({per_minute:.1f}/min); all IOPub messages: {counts}"
        )
        # Sanity check of the counter: one server-side change must show up as comm traffic.
        seen: list[str] = []
        client.execute_interactive(
            "_idle.set_power(False)\n_idle.wait_until_ready(timeout=5)\n"
            "import time; time.sleep(0.5)",
            timeout=30,
            output_hook=lambda msg: seen.append(msg["msg_type"]),
        )
        print(f"sanity: one power-off afterwards sent {seen.count('comm_msg')} comm_msg")
        _run(client, "_idle.destroy()")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
