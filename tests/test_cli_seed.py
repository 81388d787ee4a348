"""The seed documentation's examples for spalloc-job, -ps, -machine and -where-is, verbatim.

As the seed assumes, a config file names the server and the owner. Most examples run
in-process through ``main``; a few run the installed console scripts as whole processes.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spalloc.cli import job as job_cli
from spalloc.cli import machine as machine_cli
from spalloc.cli import ps as ps_cli
from spalloc.cli import where_is as where_is_cli
from spalloc.client import ProtocolClient
from spalloc.emulator import Emulator
from tests._cli import WAIT

OWNER = "jdh@cs.man.ac.uk"


pytestmark = pytest.mark.usefixtures("isolated_config")


@pytest.fixture
def emu(
    emulator_factory: Callable[..., Emulator], appendix_machines: Any, tmp_path: Path
) -> Emulator:
    emulator = emulator_factory(appendix_machines, power_delay=0.05)
    (tmp_path / ".spalloc").write_text(
        f"[spalloc]\nhostname = {emulator.host}\nport = {emulator.port}\nowner = {OWNER}\n"
    )
    return emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[ProtocolClient]:
    with ProtocolClient(emu.host, emu.port, timeout=WAIT) as c:
        yield c


@pytest.fixture
def my_job(client: ProtocolClient) -> int:
    """The owner's one running job: 6 boards on machine m (as in the seed's CSV example)."""
    job_id = int(client.call("create_job", 6, owner=OWNER, keepalive=None))
    for _ in range(200):
        if client.call("get_job_state", job_id)["state"] == 3:
            return job_id
        threading.Event().wait(0.02)
    raise AssertionError("job never became ready")


# --------------------------------------------------------------------------- §4 spalloc-job


def test_job_watch(
    emu: Emulator, client: ProtocolClient, my_job: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # $ spalloc-job --watch   (your currently running job; ends when it is destroyed)
    stdout = io.StringIO()
    monkeypatch.setattr("sys.stdout", stdout)
    threading.Timer(0.3, lambda: client.call("destroy_job", my_job, reason="done")).start()
    assert job_cli.main(["--watch"]) == 0
    assert stdout.getvalue().endswith(f"Job ID: {my_job}\n State: destroyed\nReason: done\n\n")


def test_job_reset(emu: Emulator, client: ProtocolClient, my_job: int) -> None:
    # $ spalloc-job --reset   (blocks until the action is completed)
    assert job_cli.main(["--reset"]) == 0
    state = client.call("get_job_state", my_job)
    assert (state["state"], state["power"]) == (3, True)


def test_job_ethernet_ips(emu: Emulator, my_job: int, capsys: pytest.CaptureFixture[str]) -> None:
    # $ spalloc-job --ethernet-ips
    assert job_cli.main(["--ethernet-ips"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "x,y,hostname"
    chips = [tuple(map(int, row.split(",")[:2])) for row in rows[1:]]
    assert len(chips) == 6 and chips == sorted(chips) and chips[0] == (0, 0)


def test_job_destroy(emu: Emulator, client: ProtocolClient, my_job: int) -> None:
    # $ spalloc-job --destroy "Your job is taking too long..."
    assert job_cli.main(["--destroy", "Your job is taking too long..."]) == 0
    assert client.call("get_job_state", my_job)["reason"] == "Your job is taking too long..."


# --------------------------------------------------------------------------- §5 spalloc-ps


def test_ps_lists_filters_and_watches(
    emu: Emulator, client: ProtocolClient, my_job: int, capsys: pytest.CaptureFixture[str]
) -> None:
    client.call("create_job", owner="other@example.org", keepalive=None)
    assert ps_cli.main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("  ")[0] == "ID" and len(lines) == 3
    assert ps_cli.main(["--owner", OWNER]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert ps_cli.main(["--machine", "m"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


# --------------------------------------------------------------------------- §6 spalloc-machine


def test_machine_list_detail_and_detailed(
    emu: Emulator, my_job: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert machine_cli.main([]) == 0
    assert capsys.readouterr().out.splitlines()[1].split() == ["m", "12", "6", "1", "default"]
    assert machine_cli.main(["m"]) == 0
    assert capsys.readouterr().out.endswith(f"\nA:{my_job}\n")
    assert machine_cli.main(["m", "--detailed"]) == 0
    row = f"\nA         {my_job}           6  {OWNER} (127.0.0.1)\n"
    assert capsys.readouterr().out.endswith(row)


# --------------------------------------------------------------------------- §7 spalloc-where-is


def test_where_is_forms(emu: Emulator, my_job: int, capsys: pytest.CaptureFixture[str]) -> None:
    # spalloc-where-is --board MACHINE X Y Z / --physical MACHINE CABINET FRAME BOARD /
    # --chip MACHINE X Y / --job-chip JOB_ID X Y
    for argv in (
        ["--board", "m", "0", "0", "1"],
        ["--physical", "m", "0", "0", "1"],
        ["--chip", "m", "8", "4"],
        ["--job-chip", str(my_job), "8", "4"],
    ):
        assert where_is_cli.main(argv) == 0, argv
        out = capsys.readouterr().out
        assert "Board coordinate: (0, 0, 1)" in out
        assert f"Job using board: {my_job}" in out


# --------------------------------------------------------------------------- console scripts


def script(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.skip(f"console script {name} not installed")
    return str(path)


def run_script(*argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=60, env=env, check=False, **kwargs
    )


def test_console_scripts_against_the_emulator(emu: Emulator, my_job: int) -> None:
    done = run_script(script("spalloc-ps"))
    assert done.returncode == 0 and f"{OWNER} (127.0.0.1)" in done.stdout
    assert "\x1b[" not in done.stdout  # not a terminal: no colour
    done = run_script(script("spalloc-where-is"), "--job-chip", str(my_job), "0", "0")
    assert done.returncode == 0 and "Physical location: Cabinet 0, Frame 0, Board" in done.stdout
    done = run_script(script("spalloc-job"), "-e")
    assert done.returncode == 0 and done.stdout.startswith("x,y,hostname\n")
    done = run_script(script("spalloc-machine"), "nope")
    assert (done.returncode, done.stderr) == (6, "No machine 'nope' was found\n")
    done = run_script(script("spalloc"), "-c", "echo {id}")
    assert done.returncode == 0 and done.stdout.strip().isdigit()


def test_console_script_version_and_help() -> None:
    from spalloc import __version__

    for name in ("spalloc", "spalloc-job", "spalloc-ps", "spalloc-machine", "spalloc-where-is"):
        done = run_script(script(name), "--version")
        assert (done.returncode, done.stdout.strip()) == (0, __version__)
        done = run_script(script(name), "--help")
        assert done.returncode == 0 and "exit codes:" in done.stdout, name


@pytest.mark.parametrize(
    "argv",
    [["spalloc-machine", "--local"], ["spalloc-where-is", "--local", "-b", "m4x2", "1", "0", "2"]],
)
def test_local_admin_tools(argv: list[str]) -> None:
    done = run_script(script(argv[0]), *argv[1:])
    assert done.returncode == 0, done.stderr
    assert "emulated" in done.stderr and "Traceback" not in done.stderr
    assert "m4x2" in done.stdout


def test_ps_watch_process_stops_on_ctrl_c(emu: Emulator) -> None:
    proc = subprocess.Popen(
        [script("spalloc-ps"), "--watch"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("ID  State")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT * 2)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err


def test_no_colour_even_on_a_terminal_with_no_color(emu: Emulator, my_job: int) -> None:
    if shutil.which("script") is None:
        pytest.skip("script(1) is not available to provide a terminal")
    command = f"{script('spalloc-ps')}"
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    coloured = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert "\x1b[" in coloured.stdout
    plain = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "NO_COLOR": "1"},
        check=False,
    )
    assert "\x1b[" not in plain.stdout and f"{OWNER} (127.0.0.1)" in plain.stdout
