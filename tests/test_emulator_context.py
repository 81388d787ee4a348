"""The Emulator context manager and the spalloc-emulator command line."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import threading

import pytest

from spalloc.emulator import Emulator
from spalloc.emulator.__main__ import main
from tests._emuproc import emulator_process, run_emulator
from tests.conftest import WAIT, LineClient


def test_context_manager_binds_loopback_on_a_free_port(appendix_machines):
    with Emulator(appendix_machines) as emulator:
        assert emulator.running
        host, port = emulator.address
        assert host == emulator.host == "127.0.0.1" and port == emulator.port > 0
        threads = [t for t in threading.enumerate() if t.name.startswith("spalloc-emulator")]
        assert threads and all(t.daemon for t in threads)
        with LineClient(emulator.address) as client:
            assert client.call("version") == "5.0.0"
    assert not emulator.running
    with pytest.raises(OSError):
        LineClient(emulator.address, timeout=1.0).call("version")


def test_default_machines_stay_in_loopback(emulator, connect):
    machines = connect(emulator).call("list_machines")
    assert {"default", "single"} <= {tag for m in machines for tag in m["tags"]}
    for machine in emulator.machines:
        for ip in machine.board_ips.values():
            assert ipaddress.IPv4Address(ip).is_loopback


def test_machines_from_a_toml_file(tmp_path):
    path = tmp_path / "machines.toml"
    path.write_text(
        '[[machine]]\nname = "solo"\nsingle_board = true\ntags = ["default"]\n'
        'base_ip = "127.81.0.0"\n'
    )
    with Emulator(path) as emulator, LineClient(emulator.address) as client:
        assert [m["name"] for m in client.call("list_machines")] == ["solo"]
        job = client.call("create_job", owner="x")
        assert client.call("get_job_machine_info", job)["connections"] == [[[0, 0], "127.81.0.1"]]


def test_start_and_stop_are_idempotent(appendix_machines):
    emulator = Emulator(appendix_machines)
    emulator.stop()
    assert emulator.start() is emulator.start()
    port = emulator.port
    emulator.stop()
    emulator.stop()
    assert emulator.port == port


def test_restart_keeps_port_and_jobs(appendix_machines):
    emulator = Emulator(appendix_machines, free_delay=0.01)
    with emulator:
        with LineClient(emulator.address) as client:
            job = client.call("create_job", owner="x", keepalive=None)
            client.call("destroy_job", client.call("create_job", owner="y"), "bye")
        port = emulator.port
    with emulator:
        assert emulator.port == port
        with LineClient(emulator.address) as client:
            assert client.call("get_job_state", job)["state"] == 3
            assert client.call("get_job_state", job + 1)["reason"] == "bye"
            assert client.call("create_job", owner="z") == job + 2
    emulator.start(keep_state=False)
    try:
        with LineClient(emulator.address) as client:
            assert client.call("get_job_state", job)["state"] == 0
            assert client.call("create_job", owner="z") == 1
    finally:
        emulator.stop()


def test_introspection(emulator_factory, appendix_machines, connect):
    emulator = emulator_factory(appendix_machines)
    client = connect(emulator)
    job = client.call("create_job", 1, 1, owner="me", keepalive=None)
    [info] = emulator.jobs()
    assert (info.job_id, info.owner, info.machine, len(info.boards)) == (job, "me", "m", 3)
    assert emulator.board_power("m", (0, 0, 0)) is True
    assert emulator.retired_jobs() == {}


def test_port_in_use_raises(emulator):
    other = Emulator(emulator.machines, port=emulator.port)
    with pytest.raises(OSError):
        other.start(timeout=WAIT)
    assert not other.running


# --- the command line ---------------------------------------------------------------------------


def test_cli_bad_machines_file_exits_2(tmp_path):
    bad = tmp_path / "machines.toml"
    bad.write_text('[[machine]]\nname = "md"\nwidth = 2\nheight = 2\ndead_boards = [[9, 9, 9]]\n')
    assert main(["--machines", str(bad), "--port", "0"]) == 2
    result = run_emulator("--machines", bad, "--port", "0")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "machines.toml" in lines[0] and "md" in lines[0] and "dead_boards" in lines[0]


def test_cli_missing_file_and_bad_options_exit_2(tmp_path, capsys):
    assert main(["--machines", str(tmp_path / "absent.toml"), "--port", "0"]) == 2
    assert "absent.toml" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--power-delay", "-1"])
    assert exc.value.code == 2


def test_cli_serves_until_ctrl_c(tmp_path):
    machines = tmp_path / "m.toml"
    machines.write_text(
        '[[machine]]\nname = "tiny"\ntags = ["default"]\nwidth = 1\n'
        'height = 1\nbase_ip = "127.80.0.0"\n'
    )
    with emulator_process(
        "--port", "0", "--machines", machines, "--free-delay", "0.01", "--power-delay", "0"
    ) as (process, line):
        assert "127.0.0.1:" in line and "tiny" in line
        port = int(line.split("127.0.0.1:")[1].split()[0])
        with LineClient(("127.0.0.1", port)) as client:
            assert client.call("version") == "5.0.0"
            assert [m["name"] for m in client.call("list_machines")] == ["tiny"]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=WAIT) == 0


def test_cli_port_in_use_exits_1(emulator):
    result = run_emulator("--port", str(emulator.port))
    assert result.returncode == 1
    assert "cannot listen" in result.stderr


@pytest.mark.skipif(os.name != "posix", reason="console script lookup is POSIX-specific here")
def test_console_script_is_installed():
    script = os.path.join(os.path.dirname(sys.executable), "spalloc-emulator")
    assert os.path.exists(script)
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0 and "--free-delay" in result.stdout
