"""The rough edges a newcomer hit on the command line (issue 15), each pinned down.

Every tool runs in-process through ``main([...])`` against the emulator on a loopback port.
"""

from __future__ import annotations

import io
import re
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from spalloc.cli import alloc
from spalloc.cli import job as job_cli
from spalloc.cli import machine as machine_cli
from spalloc.cli import ps as ps_cli
from spalloc.cli import where_is as where_is_cli
from spalloc.client import ProtocolClient
from spalloc.emulator import Emulator
from tests._cli import WAIT, server

TOOLS = {
    "spalloc": alloc.main,
    "spalloc-job": job_cli.main,
    "spalloc-ps": ps_cli.main,
    "spalloc-machine": machine_cli.main,
    "spalloc-where-is": where_is_cli.main,
}

pytestmark = pytest.mark.usefixtures("isolated_config")


@pytest.fixture
def emu(emulator_factory: Callable[..., Emulator], appendix_machines: Any) -> Emulator:
    return emulator_factory(appendix_machines, power_delay=0.0)


@pytest.fixture
def client(emu: Emulator) -> Iterator[ProtocolClient]:
    with ProtocolClient(emu.host, emu.port, timeout=WAIT) as c:
        yield c


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- 1: one-line errors

USAGE_ERRORS = [
    ("spalloc", ["-H", "h", "--owner", "o", "two"], "argument WHAT: invalid int value"),
    ("spalloc", ["-H", "h"], "--owner must be specified"),
    ("spalloc", ["--owner", "o"], "--hostname of spalloc server must be specified"),
    ("spalloc", ["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ("spalloc-job", ["-H", "h"], "job ID (or --owner) not specified"),
    ("spalloc-job", ["1", "--watch", "--destroy"], "not allowed with argument"),
    ("spalloc-ps", [], "--hostname of spalloc server must be specified"),
    ("spalloc-ps", ["--port", "many"], "argument --port/-P: invalid int value"),
    ("spalloc-ps", ["-P", "99999"], "argument --port/-P: not a TCP port number (1-65535): 99999"),
    ("spalloc-machine", ["-H", "h", "--detailed"], "--detailed only works"),
    ("spalloc-where-is", ["-H", "h"], "one of the arguments"),
    ("spalloc-where-is", ["-H", "h", "-c", "m", "x", "0"], "invalid literal for int()"),
]


@pytest.mark.parametrize(("tool", "argv", "expected"), USAGE_ERRORS)
def test_argument_errors_are_one_line(
    tool: str, argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert TOOLS[tool](argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "usage:" not in err, err
    assert err.startswith(f"{tool}: error: ") and expected in err


@pytest.mark.parametrize("tool", TOOLS)
def test_help_keeps_the_usage_and_the_exit_codes(
    tool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert TOOLS[tool](["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {tool} ") and "exit codes:" in out


# --------------------------------------------------------------------------- 2: host and port


def test_connection_errors_name_the_host_and_port(capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    where = f"127.0.0.1:{port}"
    assert alloc.main(["-H", "127.0.0.1", "-P", str(port), "--owner", "o"]) == 6
    err = capsys.readouterr().err
    assert err.startswith(f"Could not connect to server {where}: ") and err.count("\n") == 1
    for tool, extra in (
        ("spalloc-job", ["1"]),
        ("spalloc-ps", []),
        ("spalloc-machine", []),
        ("spalloc-where-is", ["-j", "1", "0", "0"]),
    ):
        assert TOOLS[tool](["-H", "127.0.0.1", "-P", str(port), *extra]) == 1
        err = capsys.readouterr().err
        assert where in err and err.count("\n") == 1, (tool, err)


def test_an_ipv6_address_is_bracketed() -> None:
    from spalloc.cli._common import server_address

    assert server_address("::1", 22244) == "[::1]:22244"
    assert server_address("spalloc.example.org", 22244) == "spalloc.example.org:22244"


# --------------------------------------------------------------------------- 3: unknown jobs


def test_info_of_an_unknown_job_keeps_stdout_and_fails(
    emu: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert job_cli.main(["99", *server(emu)]) == job_cli.EXIT_UNKNOWN_JOB == 5
    out, err = capsys.readouterr()
    assert out == "Job ID: 99\n State: unknown\n"  # as the official tool printed it
    assert err == (
        "Job 99 is unknown to the server: it never existed, or it was destroyed "
        "and has been forgotten\n"
    )
    assert job_cli.main(["99", "--watch", *server(emu)]) == 5
    out, err = capsys.readouterr()
    assert out == "Job ID: 99\n State: unknown\n\n" and "unknown to the server" in err


def test_info_of_known_jobs_still_exits_0(
    emu: Emulator, client: ProtocolClient, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = client.call("create_job", owner="me", keepalive=None)
    assert job_cli.main([str(job_id), *server(emu)]) == 0
    client.call("destroy_job", job_id, reason="done")
    assert job_cli.main([str(job_id), *server(emu)]) == 0
    out, err = capsys.readouterr()
    assert out.endswith(" State: destroyed\nReason: done\n") and err == ""


def test_where_is_says_why_a_job_has_no_such_chip(
    emu: Emulator, client: ProtocolClient, capsys: pytest.CaptureFixture[str]
) -> None:
    def where(job_id: int) -> tuple[int, str, str]:
        code = where_is_cli.main(["--job-chip", str(job_id), "14", "3", *server(emu)])
        out, err = capsys.readouterr()
        return code, out, err

    assert where(99) == (
        where_is_cli.EXIT_UNKNOWN_JOB,
        "",
        "No boards at the specified location: job 99 is unknown to the server\n",
    )
    ready = client.call("create_job", owner="me", keepalive=None)
    # A real job, but the chip is outside its one board: the original message and code.
    assert where(ready) == (4, "", "No boards at the specified location\n")
    client.call("create_job", 2, 2, owner="big", keepalive=None)  # takes machine m
    queued = client.call("create_job", 2, 2, owner="me", keepalive=None)
    assert where(queued) == (
        4,
        "",
        f"No boards at the specified location: job {queued} is queued and has no boards yet\n",
    )
    client.call("destroy_job", ready, reason="finished")
    assert where(ready) == (
        4,
        "",
        f"No boards at the specified location: job {ready} was destroyed (finished)\n",
    )


@pytest.mark.parametrize(("main", "code"), [(job_cli.main, "5"), (where_is_cli.main, "5")])
def test_the_unknown_job_code_is_documented(
    main: Callable[[list[str]], int], code: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--help"])
    epilog = capsys.readouterr().out.split("exit codes:")[1]
    assert re.search(rf"^  {code}    .*(server does not know|unknown)", epilog, re.M), epilog


# --------------------------------------------------------------------------- 4: messages


def test_too_many_what_values_says_what_was_given(capsys: pytest.CaptureFixture[str]) -> None:
    assert alloc.main(["--local", "1", "2", "3", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "4 WHAT values given (1 2 3 4)" in err
    assert "NUM (at least NUM boards)" in err and "X Y Z (the board at logical position" in err


def test_boot_help_says_it_is_not_supported_and_what_to_do(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert alloc.main(["--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    boot = help_text.split("--boot, -B ")[1].split(" --")[0]
    assert boot.startswith("not supported") and "Python 3.11" in boot and "-c" in boot
    assert "see the message" not in boot


# --------------------------------------------------------------------------- 5: the prompt


def test_press_enter_prompt_ends_its_line_when_stdin_is_a_pipe(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))  # not a terminal: nothing is echoed
    assert alloc.main([*server(emu), "--owner", "me", "--machine", "board"]) == 0
    out = capsys.readouterr().out
    assert out.endswith("\nRunning on: board\n<Press enter when done>\n")
