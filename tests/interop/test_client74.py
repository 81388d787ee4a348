"""The official client ``spalloc==1!7.4.1``, unchanged, against our emulator.

The library runs in its own venv through a small script; the CLIs run as installed there. The
emulator serves ``m`` (2x2 triads, tag default, IPs 10.11.0.x) and ``board`` (single board).
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import textwrap
import threading
import time
from pathlib import Path
from subprocess import CompletedProcess
from typing import IO, Any

import pytest

from spalloc.emulator import Emulator

from ._wire import Wire
from .conftest import PS_HEADER, PeerEnv, Run

pytestmark = pytest.mark.interop

_LIBRARY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from spalloc_client import Job, JobState, ProtocolClient

    host, port = sys.argv[1], int(sys.argv[2])
    out = {}
    job = Job(3, hostname=host, port=port, owner="lib74", keepalive=4.0, config_filenames=[])
    try:
        job.wait_until_ready(timeout=30)
        out["id"] = job.id
        out["state"] = job.state.name
        out["power"] = job.power
        out["size"] = [job.width, job.height]
        out["machine"] = job.machine_name
        out["hostname"] = job.hostname
        out["connections"] = sorted([list(k), v] for k, v in job.connections.items())
        out["boards"] = sorted(list(b) for b in job.boards)
        out["where_is_machine"] = list(job.where_is_machine(12, 8))
        job.set_power(False)
        job.wait_until_ready(timeout=30)
        out["after_off"] = [job.state.name, job.power]
        job.set_power(True)
        job.wait_until_ready(timeout=30)
        out["after_on"] = [job.state.name, job.power]
        job.reset()
        job.wait_until_ready(timeout=30)
        out["after_reset"] = [job.state.name, job.power]
        with ProtocolClient(host, port, timeout=10.0) as client:
            out["version"] = client.version()
            out["jobs"] = [[j["job_id"], j["owner"], j["state"]] for j in client.list_jobs()]
            out["machines"] = sorted(m["name"] for m in client.list_machines())
            out["position"] = client.get_board_position("m", 0, 0, 2)
            out["at_position"] = client.get_board_at_position("m", 0, 0, 2)
            out["where_is"] = client.where_is(job_id=job.id, chip_x=4, chip_y=8)
    finally:
        job.destroy("bye from 7.4.1")
    print(json.dumps(out))
    """
)


def _address_args(emulator: Emulator) -> list[str]:
    return ["--hostname", emulator.host, "--port", str(emulator.port)]


def _ok(proc: CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}"
    return proc.stdout


def _job(wire: Wire, *args: Any, **kwargs: Any) -> int:
    """Create a job from the raw side and wait (bounded) until it is ready."""
    kwargs.setdefault("keepalive", None)
    job_id = wire.ret("create_job", *args, **kwargs)
    for _ in range(200):
        state = wire.ret("get_job_state", job_id)
        if state["state"] in (3, 4):
            break
        time.sleep(0.02)
    assert state["state"] == 3, state
    return int(job_id)


def test_library_job_life_cycle(client74: Path, emulator_for_peers: Emulator, run_peer: Run):
    emulator = emulator_for_peers
    proc = run_peer(client74, "python", "-c", _LIBRARY_SCRIPT, emulator.host, str(emulator.port))
    out = json.loads(_ok(proc))
    job_id = out["id"]
    assert out["state"] == "ready"
    assert out["power"] is True
    assert out["size"] == [16, 16]
    assert out["machine"] == "m"
    assert out["hostname"] == "10.11.0.1"
    assert out["connections"] == [
        [[0, 0], "10.11.0.1"],
        [[4, 8], "10.11.0.17"],
        [[8, 4], "10.11.0.9"],
    ]
    assert out["boards"] == [[0, 0, 0], [0, 0, 1], [0, 0, 2]]
    # Job chip (12, 8) lies on board (0, 0, 1), the second board of frame 0.
    assert out["where_is_machine"] == [0, 0, 1]
    assert out["after_off"] == ["ready", False]
    assert out["after_on"] == ["ready", True]
    assert out["after_reset"] == ["ready", True]
    assert out["version"] == "5.0.0"
    assert [job_id, "lib74", 3] in out["jobs"]
    assert out["machines"] == ["board", "m"]
    assert out["position"] == [0, 0, 2]
    assert out["at_position"] == [0, 0, 2]
    assert out["where_is"]["logical"] == [0, 0, 2]
    assert out["where_is"]["job_id"] == job_id
    # destroy() closed the client's connection, so check the outcome from our side.
    with Wire(emulator.address) as wire:
        state = wire.ret("get_job_state", job_id)
        assert (state["state"], state["reason"]) == (4, "bye from 7.4.1")
        assert wire.ret("list_jobs") == []
    for _ in range(250):  # power-off takes the emulator's 0.05 s power delay
        if not any(emulator.board_power("m", (0, 0, z)) for z in range(3)):
            break
        time.sleep(0.02)
    assert not any(emulator.board_power("m", (0, 0, z)) for z in range(3))


def test_spalloc_command_one_board(client74: Path, emulator_for_peers: Emulator, run_peer: Run):
    emulator = emulator_for_peers
    proc = run_peer(
        client74,
        "spalloc",
        *_address_args(emulator),
        "--owner",
        "cli74",
        "-c",
        "echo",
        "JOB={id}",
        "W={w}",
        "H={h}",
        "HOST={hostname}",
    )
    out = _ok(proc)
    match = re.search(r"JOB=(\d+) W=8 H=8 HOST=10\.11\.0\.1$", out, re.MULTILINE)
    assert match, out
    job_id = int(match.group(1))
    assert f"Job {job_id}: Ready!" in proc.stderr
    with Wire(emulator.address) as wire:
        assert wire.ret("get_job_state", job_id)["state"] == 4  # destroyed on exit


def test_spalloc_command_triad_and_csv(client74: Path, emulator_for_peers: Emulator, run_peer: Run):
    emulator = emulator_for_peers
    proc = run_peer(
        client74,
        "spalloc",
        *_address_args(emulator),
        "--owner",
        "cli74",
        "3",
        "-c",
        "sh",
        "-c",
        "echo size={w}x{h}; cat {ethernet_ips}",
    )
    out = _ok(proc)
    assert "size=16x16" in out
    assert "x,y,hostname\n0,0,10.11.0.1\n4,8,10.11.0.17\n8,4,10.11.0.9\n" in out


def test_spalloc_command_impossible_request(
    client74: Path, emulator_for_peers: Emulator, run_peer: Run
):
    emulator = emulator_for_peers
    proc = run_peer(
        client74, "spalloc", *_address_args(emulator), "--owner", "cli74", "3", "3", "-c", "true"
    )
    assert proc.returncode == 1, proc.stderr
    assert "Destroyed: Cancelled: No suitable machines available." in proc.stderr


def test_spalloc_ps(client74: Path, emulator_for_peers: Emulator, run_peer: Run):
    emulator = emulator_for_peers
    with Wire(emulator.address) as wire:
        one = _job(wire, owner="alice")
        triad = _job(wire, 3, owner="bob")
        out = _ok(run_peer(client74, "spalloc-ps", *_address_args(emulator)))
        lines = out.splitlines()
        assert lines[0].split() == PS_HEADER
        rows = {int(line.split()[0]): line.split() for line in lines[1:]}
        assert set(rows) == {one, triad}
        assert rows[one][1:5] == ["ready", "on", "1", "m"]
        assert rows[triad][1:5] == ["ready", "on", "3", "m"]
        assert rows[one][-3:] == ["None", "alice", "(127.0.0.1)"]
        out = _ok(run_peer(client74, "spalloc-ps", *_address_args(emulator), "--owner", "bob"))
        assert [int(line.split()[0]) for line in out.splitlines()[1:]] == [triad]


def test_spalloc_machine(client74: Path, emulator_for_peers: Emulator, run_peer: Run):
    emulator = emulator_for_peers
    with Wire(emulator.address) as wire:
        _job(wire, 3, owner="carol")
        _job(wire, owner="carol", machine="board")
        out = _ok(run_peer(client74, "spalloc-machine", *_address_args(emulator)))
        table = [line.split() for line in out.splitlines()]
        assert table[0] == ["Name", "Num", "boards", "In-use", "Jobs", "Tags"]
        assert ["m", "12", "3", "1", "default"] in table
        assert ["board", "1", "1", "1", "single"] in table
        out = _ok(run_peer(client74, "spalloc-machine", *_address_args(emulator), "m"))
        assert re.search(r"^\s*Name: m$", out, re.MULTILINE), out
        assert re.search(r"^\s*In-use: 3 of 12$", out, re.MULTILINE), out
        nope = run_peer(client74, "spalloc-machine", *_address_args(emulator), "nope")
        assert nope.returncode == 6
        assert "No machine 'nope' was found" in nope.stdout + nope.stderr


def test_spalloc_where_is_job_chip(client74: Path, emulator_for_peers: Emulator, run_peer: Run):
    emulator = emulator_for_peers
    with Wire(emulator.address) as wire:
        _job(wire, 3, owner="dave")
        job_id = _job(wire, 1, 1, owner="dave")  # the next triad: (0, 1)
        out = _ok(
            run_peer(
                client74,
                "spalloc-where-is",
                *_address_args(emulator),
                "--job-chip",
                str(job_id),
                "9",
                "5",
            )
        )
    fields = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in out.splitlines())
    )
    assert fields["Machine"] == "m"
    assert fields["Board coordinate"] == "(0, 1, 1)"
    assert fields["Physical location"] == "Cabinet 0, Frame 0, Board 4"
    assert fields["Machine chip coordinates"] == "(9, 17)"
    assert fields["Coordinates within board"] == "(1, 1)"
    assert fields["Job using board"] == str(job_id)
    assert fields["Coordinates within job"] == "(9, 5)"


def test_spalloc_job(client74: Path, emulator_for_peers: Emulator, run_peer: Run):
    emulator = emulator_for_peers
    address = _address_args(emulator)
    with Wire(emulator.address) as wire:
        job_id = _job(wire, 3, owner="erin")
        out = _ok(run_peer(client74, "spalloc-job", *address, str(job_id)))
        assert re.search(rf"^\s*Job ID: {job_id}$", out, re.MULTILINE), out
        assert re.search(r"^\s*Owner: erin$", out, re.MULTILINE), out
        assert re.search(r"^\s*State: ready$", out, re.MULTILINE), out
        assert re.search(r"^\s*Num boards: 3$", out, re.MULTILINE), out
        assert re.search(r"^\s*Board power: on$", out, re.MULTILINE), out
        assert re.search(r"^\s*Running on: m$", out, re.MULTILINE), out
        # --owner picks the owner's only live job.
        out = _ok(run_peer(client74, "spalloc-job", *address, "--owner", "erin"))
        assert re.search(rf"^\s*Job ID: {job_id}$", out, re.MULTILINE), out

        _ok(run_peer(client74, "spalloc-job", *address, str(job_id), "--power-off"))
        state = wire.ret("get_job_state", job_id)
        assert (state["state"], state["power"]) == (3, False)
        assert not emulator.board_power("m", (0, 0, 1))
        _ok(run_peer(client74, "spalloc-job", *address, str(job_id), "--power-on"))
        state = wire.ret("get_job_state", job_id)
        assert (state["state"], state["power"]) == (3, True)
        assert emulator.board_power("m", (0, 0, 1))

        out = _ok(run_peer(client74, "spalloc-job", *address, str(job_id), "--ethernet-ips"))
        assert out == "x,y,hostname\n0,0,10.11.0.1\n4,8,10.11.0.17\n8,4,10.11.0.9\n"

        _ok(run_peer(client74, "spalloc-job", *address, str(job_id), "--destroy", "done"))
        state = wire.ret("get_job_state", job_id)
        assert (state["state"], state["reason"]) == (4, "done")
        out = _ok(run_peer(client74, "spalloc-job", *address, str(job_id)))
        assert re.search(r"^\s*State: destroyed$", out, re.MULTILINE), out
        assert re.search(r"^\s*Reason: done$", out, re.MULTILINE), out


_QUEUED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from spalloc_client import Job

    host, port = sys.argv[1], int(sys.argv[2])
    job = Job(1, hostname=host, port=port, owner="queued74", keepalive=10.0, machine="m",
              config_filenames=[])
    print(json.dumps({"id": job.id, "first": job.state.name}), flush=True)
    job.wait_until_ready(timeout=60)
    print(json.dumps({"then": job.state.name, "boards": job.boards}), flush=True)
    job.destroy()
    """
)


def _live_jobs(wire: Wire) -> dict[str, dict[str, Any]]:
    """Live jobs by owner, read with list_jobs (which, unlike get_job_state, keeps no job alive)."""
    return {job["owner"]: job for job in wire.ret("list_jobs")}


def _pump(stream: IO[str] | None, lines: queue.Queue[str]) -> None:
    for line in stream or ():
        lines.put(line)


def test_library_waits_in_queue(client74: Path, emulator_for_peers: Emulator, peer_env: PeerEnv):
    emulator = emulator_for_peers
    with Wire(emulator.address) as wire:
        holder = _job(wire, 2, 2, owner="holder", machine="m")
        proc = subprocess.Popen(
            [str(client74 / "python"), "-c", _QUEUED_SCRIPT, emulator.host, str(emulator.port)],
            cwd=peer_env.cwd,
            env=peer_env.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(
            target=_pump, args=(proc.stdout, lines), name="peer-stdout", daemon=True
        )
        reader.start()
        try:
            # Free the machine only once the client has seen its job queued.
            first = json.loads(lines.get(timeout=60))
            assert _live_jobs(wire)["queued74"]["state"] == 1
            wire.ret("destroy_job", holder, "make room")
            then = json.loads(lines.get(timeout=60))
            proc.wait(timeout=60)
            reader.join(timeout=10)
            err = proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    assert proc.returncode == 0, err
    assert first["first"] == "queued"
    assert then == {"then": "ready", "boards": [[0, 0, 0]]}


_KEEPALIVE_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from spalloc_client import Job

    host, port = sys.argv[1], int(sys.argv[2])
    job = Job(1, hostname=host, port=port, owner="keep74", keepalive=1.0, config_filenames=[])
    job.wait_until_ready(timeout=30)
    # Only the official keepalive process (every keepalive/2 s) keeps the job alive meanwhile.
    time.sleep(3.0)
    print(json.dumps({"id": job.id, "after_3s": job.state.name}), flush=True)
    job.close()  # stops the keepalives without destroying the job
    """
)


def test_keepalive_process_keeps_job_then_expiry(
    client74: Path, emulator_for_peers: Emulator, run_peer: Run
):
    emulator = emulator_for_peers
    proc = run_peer(client74, "python", "-c", _KEEPALIVE_SCRIPT, emulator.host, str(emulator.port))
    out = json.loads(_ok(proc))
    assert out["after_3s"] == "ready"
    with Wire(emulator.address) as wire:
        for _ in range(500):  # expiry is due 1 s after the last keepalive
            if "keep74" not in _live_jobs(wire):
                break
            time.sleep(0.02)
        state = wire.ret("get_job_state", out["id"])
    assert (state["state"], state["reason"]) == (4, "Job timed out.")


def test_cli_with_a_config_file(
    client74: Path, emulator_for_peers: Emulator, peer_env: PeerEnv, run_peer: Run
):
    emulator = emulator_for_peers
    (peer_env.cwd / ".spalloc").write_text(
        f"[spalloc]\nhostname = {emulator.host}\nport = {emulator.port}\nowner = conf74\n"
        "keepalive = 5.0\n"
    )
    out = _ok(run_peer(client74, "spalloc", "-c", "echo", "{id}"))
    job_id = int(out.split()[-1])
    with Wire(emulator.address) as wire:
        assert wire.ret("get_job_state", job_id)["state"] == 4
        live = _job(wire, owner="conf74-live")
        out = _ok(run_peer(client74, "spalloc-ps"))
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(live)]
