"""``spalloc`` against the emulator: WHAT forms, -c, exit codes, Ctrl-C, resume, --local."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from spalloc.cli import alloc
from spalloc.client import ProtocolClient
from spalloc.emulator import Emulator
from spalloc.emulator.machines import parse_machines
from tests._cli import WAIT

pytestmark = pytest.mark.usefixtures("isolated_config")


@pytest.fixture
def big(emulator_factory: Callable[..., Emulator]) -> Emulator:
    """A 4x5-triad machine (60 boards), big enough for every seed example."""
    machines = parse_machines(
        {
            "machine": [
                {
                    "name": "big",
                    "tags": ["default"],
                    "width": 4,
                    "height": 5,
                    "base_ip": "127.70.0.0",
                }
            ]
        },
        "test",
    )
    return emulator_factory(machines, power_delay=0.0)


@pytest.fixture
def client(big: Emulator) -> Iterator[ProtocolClient]:
    with ProtocolClient(big.host, big.port, timeout=WAIT) as c:
        yield c


@pytest.fixture
def configured(big: Emulator, tmp_path: Any) -> Emulator:
    """A ./.spalloc naming the server and an owner, as the seed's examples assume."""
    (tmp_path / ".spalloc").write_text(
        f"[spalloc]\nhostname = {big.host}\nport = {big.port}\nowner = me@example.org\n"
    )
    return big


def live_jobs(client: ProtocolClient) -> list[dict[str, Any]]:
    return list(client.call("list_jobs"))


def test_seed_invocations(
    configured: Emulator, client: ProtocolClient, capfd: pytest.CaptureFixture[str]
) -> None:
    # §3.1: spalloc / spalloc 5 / spalloc 4 2 / spalloc 3 4 0 (here wrapping a command that
    # prints what was allocated; the job is destroyed afterwards).
    shapes = {(): "8 8", ("5",): "28 16", ("4", "2"): "48 28", ("3", "4", "0"): "8 8"}
    for what, size in shapes.items():
        assert alloc.main([*what, "-c", "echo {w} {h} {id}"]) == 0
        out, err = capfd.readouterr()
        width_height, job_id = out.rsplit(" ", 1)
        assert width_height == size
        assert err == f"Job {job_id.strip()}: Ready!\n"
    assert live_jobs(client) == []


def test_seed_command_line_with_shell_syntax(
    configured: Emulator,
    client: ProtocolClient,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # §3.2 verbatim: spalloc 24 -c "rig-boot {} {w} {h} && python my_app.py {}"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "rig-boot").write_text('#!/bin/sh\necho rig-boot "$@"\n')
    (bin_dir / "rig-boot").chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    (tmp_path / "my_app.py").write_text("import sys\nprint('my_app', *sys.argv[1:])\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert alloc.main(["24", "-c", "rig-boot {} {w} {h} && python my_app.py {}"]) == 0
    out, _ = capfd.readouterr()
    boot, app = out.splitlines()
    assert boot.startswith("rig-boot 127.70.") and boot.endswith(" 48 28")
    assert app == "my_app " + boot.split()[1]


def test_literal_braces_and_unknown_fields(
    configured: Emulator, capfd: pytest.CaptureFixture[str]
) -> None:
    assert alloc.main(["-c", "echo {{}} {{id}} '{print}' {id}"]) == 0
    out, _ = capfd.readouterr()
    assert out.startswith("{} {id} {print} ")
    # Separate words, each kept whole (shell syntax in them is not interpreted).
    assert alloc.main(["-c", "awk", 'BEGIN {print "w={w}"}']) == 0
    assert capfd.readouterr()[0] == "w=8\n"
    assert alloc.main(["-c", "echo", "{}", ";", "echo", "$HOME"]) == 0
    assert capfd.readouterr()[0].endswith(" ; echo $HOME\n")


def test_exit_status_of_the_command_is_ours(
    configured: Emulator, client: ProtocolClient, capfd: pytest.CaptureFixture[str]
) -> None:
    assert alloc.main(["-c", "exit 3"]) == 3
    assert alloc.main(["-c", "kill -TERM $$"]) == 128 + signal.SIGTERM  # not 256 - 15 (B15)
    capfd.readouterr()
    assert live_jobs(client) == []


def test_ethernet_csv_exists_while_the_command_runs(
    configured: Emulator, capfd: pytest.CaptureFixture[str]
) -> None:
    assert alloc.main(["2", "-c", "cat {ethernet_ips}; echo path={ethernet_ips}"]) == 0
    out, _ = capfd.readouterr()
    lines = out.splitlines()
    assert lines[0] == "x,y,hostname"
    assert [line.split(",")[:2] for line in lines[1:4]] == [["0", "0"], ["4", "8"], ["8", "4"]]
    path = lines[4].removeprefix("path=")
    assert os.path.basename(path).startswith("spinnaker_ips_") and path.endswith(".csv")
    assert not os.path.exists(path)  # removed on exit


def test_destroyed_before_ready(configured: Emulator, capfd: pytest.CaptureFixture[str]) -> None:
    assert alloc.main(["999", "-c", "true"]) == 1
    _, err = capfd.readouterr()
    assert err.endswith(": Destroyed: Cancelled: No suitable machines available.\n")


def test_no_destroy_keepalive_and_resume(
    configured: Emulator, client: ProtocolClient, capfd: pytest.CaptureFixture[str]
) -> None:
    assert alloc.main(["--no-destroy", "--keepalive", "-1", "-c", "echo {id}"]) == 0
    job_id = int(capfd.readouterr()[0])
    [job] = live_jobs(client)
    assert (job["job_id"], job["keepalive"]) == (job_id, None)
    # §3.4: resume it (no owner needed), then it is destroyed on exit.
    assert alloc.main(["--resume", str(job_id), "-c", "echo resumed {id} {w} {h}"]) == 0
    assert capfd.readouterr()[0] == f"resumed {job_id} 8 8\n"
    assert live_jobs(client) == []
    assert alloc.main(["--resume", str(job_id), "-c", "true"]) == 1
    assert "cannot be resumed" in capfd.readouterr()[1]


def test_fractional_keepalive(
    configured: Emulator, client: ProtocolClient, capfd: pytest.CaptureFixture[str]
) -> None:
    assert alloc.main(["--keepalive", "2.5", "--no-destroy", "-c", "true"]) == 0
    [job] = live_jobs(client)
    assert job["keepalive"] == 2.5
    client.call("destroy_job", job["job_id"])


def test_press_enter_flow(
    configured: Emulator,
    client: ProtocolClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert alloc.main(["3"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("     Hostname: 127.70.")
    assert lines[1:4] == ["        Width: 16", "       Height: 16", "   Num boards: 3"]
    assert lines[4].startswith("All hostnames: ") and lines[4].endswith(".csv")
    assert lines[5:] == ["   Running on: big", "<Press enter when done>"]
    assert err.endswith(": Ready!\n")
    assert live_jobs(client) == []
    # Ctrl-D (end of input) also ends it, with a newline after the prompt.
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert alloc.main([]) == 0
    assert capsys.readouterr()[0].endswith("<Press enter when done>\n")


def test_usage_errors(big: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    server = ["-H", big.host, "-P", str(big.port)]
    assert alloc.main([*server, "1", "2", "3", "4", "--owner", "o"]) == 2
    assert "expected either no arguments" in capsys.readouterr().err
    assert alloc.main(server) == 2
    assert "--owner must be specified" in capsys.readouterr().err
    assert alloc.main(["--owner", "o"]) == 2
    assert "--hostname of spalloc server must be specified" in capsys.readouterr().err
    assert alloc.main([*server, "--owner", "o", "--boot"]) == 2
    assert "Rig" in capsys.readouterr().err
    assert alloc.main([*server, "--keepalive", "soon"]) == 2
    capsys.readouterr()


def test_quiet_hides_progress_but_not_errors(
    configured: Emulator, capfd: pytest.CaptureFixture[str]
) -> None:
    assert alloc.main(["-q", "-c", "true"]) == 0
    assert capfd.readouterr()[1] == ""
    assert alloc.main(["-q", "999", "-c", "true"]) == 1
    assert "Destroyed" in capfd.readouterr()[1]


def test_job_destroyed_while_the_command_runs_is_reported(
    configured: Emulator, client: ProtocolClient, capfd: pytest.CaptureFixture[str]
) -> None:
    def destroy_when_allocated() -> None:
        for _ in range(200):
            jobs = live_jobs(client)
            if jobs and jobs[0]["state"] == 3:
                client.call("destroy_job", jobs[0]["job_id"], reason="admin")
                return
            threading.Event().wait(0.02)

    helper = threading.Thread(target=destroy_when_allocated, daemon=True)
    helper.start()
    # The command waits (bounded) for the notice to be printed.
    assert alloc.main(["-c", "sleep 2"]) == 0
    helper.join(WAIT)
    assert ": Destroyed: admin\n" in capfd.readouterr()[1]


# --------------------------------------------------------------------------- whole process


def spalloc_process(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "spalloc.cli.alloc", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        **kwargs,
    )


def test_ctrl_c_while_queued_destroys_the_job(configured: Emulator, client: ProtocolClient) -> None:
    blocker = client.call("create_job", 4, 5, owner="other", keepalive=None)
    proc = spalloc_process("-c", "true")
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # bounded by pytest-timeout
        assert line.endswith(": Waiting in queue...\n")
        job_id = int(line.split()[1].rstrip(":"))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT * 2)
    finally:
        proc.kill()
    assert proc.returncode == 4
    assert err == f"Job {job_id}: Keyboard interrupt.\n"
    state = client.call("get_job_state", job_id)
    assert (state["state"], state["reason"]) == (4, "Cancelled: Keyboard interrupt.")
    client.call("destroy_job", blocker)


def test_ctrl_c_while_the_command_runs_destroys_the_job(
    configured: Emulator, client: ProtocolClient
) -> None:
    # A terminal sends Ctrl-C to the whole foreground group; here only spalloc gets SIGINT
    # and passes it on to the command (exec: the shell becomes the sleep).
    proc = spalloc_process("-c", "echo started {id}; exec sleep 30")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("started ")
        job_id = int(line.split()[1])
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=WAIT * 2)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGINT
    assert client.call("get_job_state", job_id)["state"] == 4


def test_local_runs_against_the_embedded_emulator() -> None:
    proc = spalloc_process("--local", "2", "-c", "echo {} {w} {h}")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    host, width, height = out.split()
    assert host.startswith("127.") and (width, height) == ("16", "16")
    assert "emulated" in err and "Traceback" not in err


def test_progress_on_a_terminal_shows_state_and_time_waited(
    configured: Emulator,
    client: ProtocolClient,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    stderr = Terminal()
    monkeypatch.setattr("sys.stderr", stderr)
    blocker = client.call("create_job", 4, 5, owner="other", keepalive=None)

    def free_when_queued() -> None:
        for _ in range(200):
            if "Waiting in queue" in stderr.getvalue():
                break
            threading.Event().wait(0.02)
        threading.Event().wait(0.6)  # let the live line refresh at least once
        client.call("destroy_job", blocker)

    helper = threading.Thread(target=free_when_queued, daemon=True)
    helper.start()
    assert alloc.main(["-c", "true"]) == 0
    helper.join(WAIT)
    text = stderr.getvalue()
    assert re.search(r"Job \d+: Waiting in queue\.\.\.\x1b\[0m \(\d+ s\)", text), text
    assert "Ready!" in text


def test_debug_log_lines_appear_once(configured: Emulator) -> None:
    proc = spalloc_process("--debug", "-c", "true")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    created = [line for line in err.splitlines() if "Created spalloc job" in line]
    assert len(created) == 1, err  # B17: the library adds no handler of its own
