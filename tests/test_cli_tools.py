"""Golden output and exit codes of spalloc-ps, -machine, -job and -where-is against the emulator.

The tools run in-process through ``main([...])``; stdout is not a terminal here, so the text
is plain, and start times are replaced by a placeholder before comparing.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from spalloc.cli import job as job_cli
from spalloc.cli import machine as machine_cli
from spalloc.cli import ps as ps_cli
from spalloc.cli import where_is as where_is_cli
from spalloc.client import ProtocolClient
from spalloc.emulator import Emulator
from tests._cli import WAIT, server

TIME = re.compile(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d")


pytestmark = pytest.mark.usefixtures("isolated_config")


@pytest.fixture
def emu(emulator_factory: Callable[..., Emulator], appendix_machines: Any) -> Emulator:
    """Appendix A's machines (m, md, board) so outputs match PROTOCOL.md's numbers."""
    return emulator_factory(appendix_machines, power_delay=0.0)


@pytest.fixture
def client(emu: Emulator) -> Iterator[ProtocolClient]:
    with ProtocolClient(emu.host, emu.port, timeout=WAIT) as c:
        yield c


def run(
    capsys: pytest.CaptureFixture[str], main: Callable[[list[str]], int], argv: list[str]
) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, TIME.sub("DD/MM/YYYY HH:MM:SS", out), err


def three_jobs(client: ProtocolClient) -> tuple[int, int, int]:
    """Appendix A's first jobs: alice's board, bob's 4 boards, carol's queued 2x2."""
    a = client.call("create_job", owner="alice")
    b = client.call("create_job", 4, owner="bob", keepalive=None)
    c = client.call("create_job", 2, 2, owner="carol", keepalive=None)
    return a, b, c


# --------------------------------------------------------------------------- spalloc-ps

PS = """\
ID  State  Power  Boards  Machine  Created at           Keepalive  Owner (Host)
 1  ready  on          1  m        DD/MM/YYYY HH:MM:SS  60.0       alice (127.0.0.1)
 2  ready  on          6  m        DD/MM/YYYY HH:MM:SS  None       bob (127.0.0.1)
 3  queue                          DD/MM/YYYY HH:MM:SS  None       carol (127.0.0.1)
"""

EMPTY_PS = "ID  State  Power  Boards  Machine  Created at  Keepalive  Owner (Host)\n"


def test_ps_golden(
    emu: Emulator, client: ProtocolClient, capsys: pytest.CaptureFixture[str]
) -> None:
    three_jobs(client)
    assert run(capsys, ps_cli.main, server(emu)) == (0, PS, "")


def test_ps_filters(
    emu: Emulator, client: ProtocolClient, capsys: pytest.CaptureFixture[str]
) -> None:
    three_jobs(client)
    code, out, _ = run(capsys, ps_cli.main, [*server(emu), "--owner", "bob"])
    assert code == 0 and out == PS.splitlines()[0] + "\n" + PS.splitlines()[2] + "\n"
    # --machine matches the allocated machine, so the queued job is not listed.
    code, out, _ = run(capsys, ps_cli.main, [*server(emu), "-m", "m"])
    assert out == "\n".join(PS.splitlines()[:3]) + "\n"
    code, out, _ = run(capsys, ps_cli.main, [*server(emu), "-m", "nothing"])
    assert out == EMPTY_PS


# --------------------------------------------------------------------------- spalloc-machine

MACHINES = """\
Name   Num boards  In-use  Jobs  Tags
m              12       7     2  default
md             11       0     0  dead
board           1       0     0  single
"""

MACHINE_M = """\
  Name: m
  Tags: default
In-use: 7 of 12
  Jobs: 2

 ___     ___
/ . \\___/ B \\___
\\___/ . \\___/ B \\
/ . \\___/ B \\___/
\\___/ . \\___/ B \\___
    \\___/ . \\___/ B \\
    / A \\___/ B \\___/
    \\___/   \\___/

"""


def test_machine_list_golden(
    emu: Emulator, client: ProtocolClient, capsys: pytest.CaptureFixture[str]
) -> None:
    three_jobs(client)
    assert run(capsys, machine_cli.main, server(emu)) == (0, MACHINES, "")


def test_machine_detail_golden(
    emu: Emulator, client: ProtocolClient, capsys: pytest.CaptureFixture[str]
) -> None:
    three_jobs(client)
    assert run(capsys, machine_cli.main, ["m", *server(emu)]) == (0, MACHINE_M + "A:1  B:2\n", "")
    assert run(capsys, machine_cli.main, ["m", "-d", *server(emu)]) == (
        0,
        MACHINE_M
        + (
            "Key  Job ID  Num boards  Owner (Host)\n"
            "A         1           1  alice (127.0.0.1)\n"
            "B         2           6  bob (127.0.0.1)\n"
        ),
        "",
    )


def test_machine_with_dead_board_and_no_jobs(
    emu: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, machine_cli.main, ["md", *server(emu)])
    assert code == 0
    assert "In-use: 0 of 11" in out
    # Dead board (1, 1, 1) is left blank; no jobs: two blank lines after the map.
    assert out.splitlines()[7] == "\\___/ . \\___/"  # with (1, 1, 1): "\\___/ . \\___/ . \\"
    assert out.endswith("\\___/   \\___/\n\n\n")


def test_machine_errors(emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, machine_cli.main, ["nope", *server(emu)])
    assert (code, out, err) == (6, "", "No machine 'nope' was found\n")
    code, _, err = run(capsys, machine_cli.main, ["-d", *server(emu)])
    assert code == 2 and "--detailed only works when a specific machine is specified" in err


# --------------------------------------------------------------------------- spalloc-job

JOB_2 = """\
     Job ID: 2
      Owner: bob
      State: ready
 Start time: DD/MM/YYYY HH:MM:SS
  Keepalive: None
 Owner host: 127.0.0.1
    Request: Job(4)
 Allocation:  ___
             / . \\___
             \\___/ . \\
             / . \\___/
             \\___/ . \\___
                 \\___/ . \\
                 / . \\___/
                 \\___/
   Hostname: 10.11.0.49
      Width: 16
     Height: 24
 Num boards: 6
Board power: on
 Running on: m
"""


def test_job_info_golden(
    emu: Emulator, client: ProtocolClient, capsys: pytest.CaptureFixture[str]
) -> None:
    three_jobs(client)
    assert run(capsys, job_cli.main, ["2", *server(emu)]) == (0, JOB_2, "")
    # The only live job of an owner is picked without an ID.
    assert run(capsys, job_cli.main, ["--owner", "bob", *server(emu)]) == (0, JOB_2, "")


def test_job_info_request_with_keywords_and_queued(
    emu: Emulator, client: ProtocolClient, capsys: pytest.CaptureFixture[str]
) -> None:
    three_jobs(client)
    client.call("create_job", 0, 1, 2, owner="dave", machine="m", keepalive=None)
    code, out, _ = run(capsys, job_cli.main, ["4", *server(emu)])
    assert code == 0
    assert "     State: queued\n" in out
    assert "   Request: Job(0, 1, 2,\n                machine='m')\n" in out
    assert "Allocation" not in out and "Hostname" not in out


def test_job_info_of_destroyed_and_unknown_jobs(
    emu: Emulator, client: ProtocolClient, capsys: pytest.CaptureFixture[str]
) -> None:
    a, _, _ = three_jobs(client)
    client.call("destroy_job", a, reason="finished")
    assert run(capsys, job_cli.main, [str(a), *server(emu)]) == (
        0,
        "Job ID: 1\n State: destroyed\nReason: finished\n",
        "",
    )
    code, out, err = run(capsys, job_cli.main, ["9999", *server(emu)])
    assert (code, out) == (5, "Job ID: 9999\n State: unknown\n") and "unknown to" in err


def test_job_owner_selection_errors(
    emu: Emulator, client: ProtocolClient, capsys: pytest.CaptureFixture[str]
) -> None:
    three_jobs(client)
    client.call("create_job", owner="bob", keepalive=None)
    assert run(capsys, job_cli.main, ["--owner", "bob", *server(emu)])[::2] == (
        3,
        "Ambiguous: bob has 2 live jobs: 2, 4\n",
    )
    assert run(capsys, job_cli.main, ["--owner", "nobody", *server(emu)])[::2] == (
        3,
        "Owner nobody has no live jobs\n",
    )
    code, _, err = run(capsys, job_cli.main, server(emu))
    assert code == 2 and "job ID (or --owner) not specified" in err


def test_job_ethernet_ips(
    emu: Emulator, client: ProtocolClient, capsys: pytest.CaptureFixture[str]
) -> None:
    three_jobs(client)
    assert run(capsys, job_cli.main, ["2", "-e", *server(emu)]) == (
        0,
        (
            "x,y,hostname\n0,0,10.11.0.49\n0,12,10.11.0.73\n4,8,10.11.0.65\n4,20,10.11.0.89\n"
            "8,4,10.11.0.57\n8,16,10.11.0.81\n"
        ),
        "",
    )
    assert run(capsys, job_cli.main, ["3", "--ethernet-ips", *server(emu)]) == (
        9,
        "",
        "Job 3 is queued or does not exist\n",
    )


def test_job_destroy_with_and_without_reason(
    emu: Emulator, client: ProtocolClient, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, _ = three_jobs(client)
    assert run(capsys, job_cli.main, [str(a), "--destroy", "too long", *server(emu)]) == (0, "", "")
    assert client.call("get_job_state", a)["reason"] == "too long"
    # No reason given: never an empty one (B21).
    assert run(capsys, job_cli.main, ["--owner", "bob", "-D", *server(emu)])[0] == 0
    assert client.call("get_job_state", b)["reason"] == "Destroyed by bob"


def test_job_power_blocks_until_done(
    emulator_factory: Callable[..., Emulator],
    appendix_machines: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emu = emulator_factory(appendix_machines, power_delay=0.2)
    with ProtocolClient(emu.host, emu.port, timeout=WAIT) as c:
        a = c.call("create_job", owner="alice", keepalive=None)
        code, _, _ = run(capsys, job_cli.main, [str(a), "--power-off", *server(emu)])
        assert code == 0
        state = c.call("get_job_state", a)
        assert (state["state"], state["power"]) == (3, False)
        assert emu.board_power("m", (0, 0, 0)) is False
        code, _, _ = run(capsys, job_cli.main, [str(a), "--reset", *server(emu)])
        assert code == 0
        state = c.call("get_job_state", a)
        assert (state["state"], state["power"]) == (3, True)
        assert emu.board_power("m", (0, 0, 0)) is True
        c.call("destroy_job", a)
    assert run(capsys, job_cli.main, [str(a), "-p", *server(emu)])[::2] == (
        8,
        "Error: Cannot power on job 1 in state destroyed\n",
    )


class _FirstWrite(io.StringIO):
    """A stdout that tells a test when the first frame has been written."""

    def __init__(self) -> None:
        super().__init__()
        self.written = threading.Event()
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            count = super().write(text)
        self.written.set()
        return count


def test_job_watch_ends_when_the_job_is_destroyed(
    emu: Emulator, client: ProtocolClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _, _ = three_jobs(client)
    stdout = _FirstWrite()
    monkeypatch.setattr("sys.stdout", stdout)

    def destroy_after_first_frame() -> None:
        if stdout.written.wait(WAIT):
            client.call("destroy_job", a, reason="watched")

    helper = threading.Thread(target=destroy_after_first_frame, daemon=True)
    helper.start()
    code = job_cli.main([str(a), "--watch", *server(emu)])  # bounded by pytest-timeout
    helper.join(WAIT)
    frames = stdout.getvalue().split("\n\n")
    assert code == 0
    assert "State: ready" in frames[0]
    assert frames[-2] == "Job ID: 1\n State: destroyed\nReason: watched"


def test_ps_watch_redraws_on_change(
    emu: Emulator, client: ProtocolClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    stdout = _FirstWrite()
    monkeypatch.setattr("sys.stdout", stdout)
    done = threading.Event()

    def change_then_interrupt() -> None:
        if stdout.written.wait(WAIT):
            client.call("create_job", owner="eve")
        # Stop the watch the way a user would, once the new job is on screen.
        for _ in range(100):
            if "eve" in stdout.getvalue() or done.wait(0.05):
                break
        import _thread

        _thread.interrupt_main()

    helper = threading.Thread(target=change_then_interrupt, daemon=True)
    helper.start()
    code = ps_cli.main(["--watch", *server(emu)])
    done.set()
    helper.join(WAIT)
    frames = stdout.getvalue().split("\n\n")
    assert code == 130  # Ctrl-C
    assert frames[0].count("\n") == 0  # only the header at first
    assert "eve (127.0.0.1)" in frames[-2]


# --------------------------------------------------------------------------- spalloc-where-is


def test_where_is_all_four_forms(
    emu: Emulator, client: ProtocolClient, capsys: pytest.CaptureFixture[str]
) -> None:
    three_jobs(client)
    expected = (
        "                 Machine: m\n"
        "       Physical location: Cabinet 0, Frame 0, Board 9\n"
        "        Board coordinate: (1, 1, 0)\n"
        "Machine chip coordinates: (13, 14)\n"
        "Coordinates within board: (1, 2)\n"
        "         Job using board: 2\n"
        "  Coordinates within job: (1, 14)\n"
    )
    assert run(capsys, where_is_cli.main, ["--job-chip", "2", "1", "14", *server(emu)]) == (
        0,
        expected,
        "",
    )
    assert run(capsys, where_is_cli.main, ["--chip", "m", "13", "14", *server(emu)]) == (
        0,
        expected,
        "",
    )
    board = (
        expected.replace("Coordinates within board: (1, 2)\n", "")
        .replace("(13, 14)", "(12, 12)")
        .replace("(1, 14)", "(0, 12)")
    )
    assert run(capsys, where_is_cli.main, ["--board", "m", "1", "1", "0", *server(emu)]) == (
        0,
        board,
        "",
    )
    assert run(capsys, where_is_cli.main, ["-p", "m", "0", "0", "9", *server(emu)]) == (
        0,
        board,
        "",
    )
    code, out, _ = run(capsys, where_is_cli.main, ["-l", "m", "0", "1", "0", *server(emu)])
    assert code == 0 and out.endswith("Job using board: None\n")


def test_where_is_errors(
    emu: Emulator, client: ProtocolClient, capsys: pytest.CaptureFixture[str]
) -> None:
    three_jobs(client)
    assert run(capsys, where_is_cli.main, ["-j", "2", "13", "14", *server(emu)]) == (
        4,
        "",
        "No boards at the specified location\n",
    )
    assert run(capsys, where_is_cli.main, ["-b", "md", "1", "1", "1", *server(emu)])[0] == 4
    code, _, err = run(capsys, where_is_cli.main, ["-c", "m", "x", "0", *server(emu)])
    assert code == 2 and "Error: invalid literal for int() with base 10: 'x'" in err
    code, _, err = run(capsys, where_is_cli.main, server(emu))
    assert code == 2 and "one of the arguments" in err


# --------------------------------------------------------------------------- every tool


@pytest.mark.parametrize("main", [ps_cli.main, machine_cli.main, job_cli.main, where_is_cli.main])
def test_version_and_help(
    main: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    from spalloc import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == __version__
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out and "--hostname" in out and "--timeout" in out


@pytest.mark.parametrize("main", [ps_cli.main, machine_cli.main])
def test_no_hostname_is_a_usage_error(
    main: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "--hostname of spalloc server must be specified" in err
    assert "SPALLOC_HOSTNAME" in err and "--local" in err


def test_config_file_supplies_hostname_and_port(
    emu: Emulator, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".spalloc").write_text(f"[spalloc]\nhostname = {emu.host}\nport = {emu.port}\n")
    assert run(capsys, ps_cli.main, []) == (0, EMPTY_PS, "")


def test_environment_supplies_hostname(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SPALLOC_HOSTNAME", emu.host)
    monkeypatch.setenv("SPALLOC_PORT", str(emu.port))
    assert run(capsys, machine_cli.main, [])[0] == 0


def test_bad_config_is_one_line(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".spalloc").write_text("[spalloc]\nport = lots\n")
    assert ps_cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "port" in err and "Traceback" not in err


class _Terminal(_FirstWrite):
    """A stdout that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


def test_job_watch_on_a_terminal_redraws_in_place(
    emu: Emulator, client: ProtocolClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _, _ = three_jobs(client)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    stdout = _Terminal()
    monkeypatch.setattr("sys.stdout", stdout)

    def destroy_after_first_frame() -> None:
        for _ in range(250):  # the first frame on screen, then destroy the job
            if "ready" in stdout.getvalue():
                break
            threading.Event().wait(0.02)
        client.call("destroy_job", a, reason="watched")

    helper = threading.Thread(target=destroy_after_first_frame, daemon=True)
    helper.start()
    assert job_cli.main([str(a), "--watch", *server(emu)]) == 0
    helper.join(WAIT)
    text = stdout.getvalue()
    assert "\x1b[2K" in text  # rich's Live erased the old frame to draw the new one
    assert "watched" in text and "ready" in text


def test_colour_follows_stdout_not_stderr(
    emu: Emulator, client: ProtocolClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    three_jobs(client)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    stdout = _Terminal()
    monkeypatch.setattr("sys.stdout", stdout)
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal: irrelevant (B18)
    assert ps_cli.main(server(emu)) == 0
    coloured = stdout.getvalue()
    assert "\x1b[" in coloured
    assert TIME.sub("DD/MM/YYYY HH:MM:SS", re.sub(r"\x1b\[[0-9;]*m", "", coloured)) == PS
    monkeypatch.setenv("NO_COLOR", "1")
    stdout = _Terminal()
    monkeypatch.setattr("sys.stdout", stdout)
    assert ps_cli.main(server(emu)) == 0
    assert "\x1b[" not in stdout.getvalue()


def test_help_shows_the_real_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    from spalloc.cli import alloc

    assert alloc.main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: default)" in out  # the tags (B23)
    assert "--keepalive SECONDS" in out and "fractions allowed (default: 60.0)" in out


def test_machine_watch_redraws_on_power_changes(
    emu: Emulator, client: ProtocolClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _, _ = three_jobs(client)
    stdout = _FirstWrite()
    monkeypatch.setattr("sys.stdout", stdout)

    def power_off_then_interrupt() -> None:
        if stdout.written.wait(WAIT):
            client.call("power_off_job_boards", a)
        for _ in range(250):  # a second frame, drawn because of the power change (B19)
            if stdout.getvalue().count("Name: m") >= 2:
                break
            threading.Event().wait(0.02)
        import _thread

        _thread.interrupt_main()

    helper = threading.Thread(target=power_off_then_interrupt, daemon=True)
    helper.start()
    assert machine_cli.main(["m", "--watch", *server(emu)]) == 130
    helper.join(WAIT)
    assert stdout.getvalue().count("Name: m") >= 2
