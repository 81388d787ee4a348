"""The older official client ``spalloc==1!6.0.0``, unchanged, against our emulator.

6.0.0 only accepts servers below 5.0.1 and sends ``destroy_job``'s reason positionally.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from spalloc.emulator import Emulator

from ._wire import Wire
from .conftest import Run

pytestmark = pytest.mark.interop

_LIBRARY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from spalloc import Job, JobState, ProtocolClient

    host, port = sys.argv[1], int(sys.argv[2])
    out = {}
    job = Job(2, 1, hostname=host, port=port, owner="lib60", keepalive=4.0,
              config_filenames=[])
    try:
        job.wait_until_ready(timeout=30)
        out["id"] = job.id
        out["state"] = job.state.name
        out["size"] = [job.width, job.height]
        out["machine"] = job.machine_name
        out["hostname"] = job.hostname
        out["n_connections"] = len(job.connections)
        out["boards"] = sorted(list(b) for b in job.boards)
        out["where_is_machine"] = list(job.where_is_machine(0, 0))
        job.set_power(False)
        job.wait_until_ready(timeout=30)
        out["after_off"] = [job.state.name, job.power]
        job.reset()
        job.wait_until_ready(timeout=30)
        out["after_reset"] = [job.state.name, job.power]
        with ProtocolClient(host, port) as client:
            out["version"] = client.version(timeout=10)
            out["where_is"] = client.where_is(machine="m", x=1, y=1, z=2, timeout=10)
    finally:
        job.destroy("bye from 6.0.0")
    print(json.dumps(out))
    """
)


def test_library_job_life_cycle(client60: Path, emulator_for_peers: Emulator, run_peer: Run):
    emulator = emulator_for_peers
    proc = run_peer(client60, "python", "-c", _LIBRARY_SCRIPT, emulator.host, str(emulator.port))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["state"] == "ready"
    assert out["size"] == [24, 16]
    assert out["machine"] == "m"
    assert out["hostname"] == "10.11.0.1"
    assert out["n_connections"] == 6
    assert out["boards"] == [[x, 0, z] for x in range(2) for z in range(3)]
    assert out["where_is_machine"] == [0, 0, 0]
    assert out["after_off"] == ["ready", False]
    assert out["after_reset"] == ["ready", True]
    assert out["version"] == "5.0.0"
    assert out["where_is"]["physical"] == [0, 0, 11]
    assert out["where_is"]["job_id"] is None
    with Wire(emulator.address) as wire:
        state = wire.ret("get_job_state", out["id"])
        assert (state["state"], state["reason"]) == (4, "bye from 6.0.0")


def test_spalloc_ps(client60: Path, emulator_for_peers: Emulator, run_peer: Run):
    emulator = emulator_for_peers
    with Wire(emulator.address) as wire:
        job_id = wire.ret("create_job", 3, owner="frank", keepalive=None)
        for _ in range(250):
            if wire.ret("get_job_state", job_id)["state"] == 3:
                break
            time.sleep(0.02)
        queued = wire.ret("create_job", 2, 2, owner="grace", keepalive=30.0)
        proc = run_peer(
            client60, "spalloc-ps", "--hostname", emulator.host, "--port", str(emulator.port)
        )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "State", "Power"]
    rows = {int(line.split()[0]): line.split() for line in lines[1:]}
    assert set(rows) == {job_id, queued}
    assert rows[job_id][1:5] == ["ready", "on", "3", "m"]
    assert rows[job_id][-2:] == ["frank", "(127.0.0.1)"]
    assert rows[queued][1] == "queue"
    assert rows[queued][-3:] == ["30.0", "grace", "(127.0.0.1)"]


def test_spalloc_command(client60: Path, emulator_for_peers: Emulator, run_peer: Run):
    emulator = emulator_for_peers
    proc = run_peer(
        client60,
        "spalloc",
        "--hostname",
        emulator.host,
        "--port",
        str(emulator.port),
        "--owner",
        "cli60",
        "--machine",
        "board",
        "-c",
        "echo",
        "{id}",
        "{w}x{h}",
        "{hostname}",
    )
    assert proc.returncode == 0, proc.stderr
    job_id, size, host = proc.stdout.split()
    assert (size, host) == ("8x8", "10.12.0.2")
    with Wire(emulator.address) as wire:
        assert wire.ret("get_job_state", int(job_id))["state"] == 4
