"""The tools against misbehaving servers: hostile hostnames, silence, odd versions, hang-ups.

A small raw-socket server in this file plays the server; it answers each command from a
table, or not at all.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from spalloc.cli import alloc
from spalloc.cli import job as job_cli
from spalloc.cli import machine as machine_cli
from spalloc.cli import ps as ps_cli
from spalloc.cli import where_is as where_is_cli
from tests._lines import lines_from

SILENT = object()
WAIT = 5.0


class FakeServer:
    """Answers ``{"return": answers[command]}`` (a callable gets the request); SILENT = never."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.requests: list[dict[str, Any]] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="fake-server", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        for line in lines_from(conn, self._stop):
            request = json.loads(line)
            self.requests.append(request)
            answer = self.answers.get(request["command"])
            if callable(answer):
                answer = answer(request)
            if answer is SILENT:
                continue
            try:
                conn.sendall(json.dumps({"return": answer}).encode() + b"\n")
            except OSError:
                return

    def hang_up(self) -> None:
        for conn in self._conns:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self.hang_up()
        self._thread.join(WAIT)

    @property
    def args(self) -> list[str]:
        return ["-H", "127.0.0.1", "-P", str(self.port)]


pytestmark = pytest.mark.usefixtures("isolated_config")


@pytest.fixture
def fake() -> Iterator[Callable[[dict[str, Any]], FakeServer]]:
    made: list[FakeServer] = []

    def factory(answers: dict[str, Any]) -> FakeServer:
        server = FakeServer(answers)
        made.append(server)
        return server

    yield factory
    for server in made:
        server.close()


def ready_job(hostname: str) -> dict[str, Any]:
    """Answers of a server whose job 1 is ready on one board called *hostname*."""
    return {
        "version": "5.0.0",
        "create_job": 1,
        "get_job_state": {
            "state": 3,
            "power": True,
            "keepalive": 60.0,
            "reason": None,
            "start_time": 1.0,
            "keepalivehost": "127.0.0.1",
        },
        "get_job_machine_info": {
            "width": 8,
            "height": 8,
            "connections": [[[0, 0], hostname]],
            "machine_name": "m",
            "boards": [[0, 0, 0]],
        },
        "list_jobs": [],
        "list_machines": [],
    }


# --------------------------------------------------------------------------- injection

HOSTILE = "$(touch pwned)"


def test_hostile_hostname_cannot_run_commands_from_a_command_line(
    fake: Callable[..., FakeServer], tmp_path: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    server = fake(ready_job(HOSTILE))
    for command in ("echo {}", "echo '{}'", 'echo "{hostname}"'):
        code = alloc.main([*server.args, "--owner", "o", "-c", command])
        _, err = capfd.readouterr()
        assert code == 2
        assert "not safe to put in a shell command" in err
        assert not (tmp_path / "pwned").exists()
    # The job is still destroyed.
    assert any(r["command"] == "destroy_job" for r in server.requests)


def test_hostile_hostname_as_a_word_is_passed_literally(
    fake: Callable[..., FakeServer], tmp_path: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    server = fake(ready_job(HOSTILE))
    assert alloc.main([*server.args, "--owner", "o", "-c", "echo", "{}", "x{hostname}y"]) == 0
    assert capfd.readouterr()[0] == f"{HOSTILE} x{HOSTILE}y\n"
    assert not (tmp_path / "pwned").exists()


# --------------------------------------------------------------------------- timeouts (B7, B8)


def silent_after_version() -> dict[str, Any]:
    return {
        "version": "5.0.0",
        **{
            name: SILENT
            for name in (
                "list_jobs",
                "list_machines",
                "where_is",
                "destroy_job",
                "create_job",
                "get_job_state",
                "get_job_machine_info",
                "notify_job",
                "power_on_job_boards",
            )
        },
    }


@pytest.mark.parametrize(
    ("main", "argv"),
    [
        (ps_cli.main, []),
        (machine_cli.main, []),
        (job_cli.main, ["1"]),
        (job_cli.main, ["1", "--destroy"]),
        (job_cli.main, ["1", "--power-on"]),
        (where_is_cli.main, ["--job-chip", "7", "0", "0"]),
        (where_is_cli.main, ["--board", "m", "0", "0", "0"]),
    ],
)
def test_every_call_honours_the_timeout(
    fake: Callable[..., FakeServer], main: Any, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    server = fake(silent_after_version())
    assert main([*argv, *server.args, "--timeout", "0.3"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error communicating with server: ") and err.count("\n") == 1


def test_spalloc_honours_the_timeout(
    fake: Callable[..., FakeServer], capsys: pytest.CaptureFixture[str]
) -> None:
    server = fake(silent_after_version())
    assert alloc.main([*server.args, "--owner", "o", "--timeout", "0.3", "-c", "true"]) == 6
    err = capsys.readouterr().err
    assert err.startswith(f"Could not connect to server 127.0.0.1:{server.port}: ")


def test_a_tiny_timeout_is_a_clean_error(
    fake: Callable[..., FakeServer], capsys: pytest.CaptureFixture[str]
) -> None:
    server = fake({"version": "5.0.0", "list_jobs": []})
    code = ps_cli.main([*server.args, "--timeout", "0.000001"])
    err = capsys.readouterr().err
    assert code in (0, 1)  # it may even be fast enough
    assert "Traceback" not in err and err.count("\n") <= 1


def test_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    assert ps_cli.main(["-H", "127.0.0.1", "-P", port]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error communicating with server: cannot connect")
    assert alloc.main(["-H", "127.0.0.1", "-P", port, "--owner", "o", "-q"]) == 6
    # -q keeps error messages (B20).
    assert capsys.readouterr().err.startswith(f"Could not connect to server 127.0.0.1:{port}: ")


# --------------------------------------------------------------------------- versions (B1, B2)


@pytest.mark.parametrize("version", ["1!7.0.0", "4.0.0.post1", "5.0.0", "0.1.0"])
def test_known_versions_are_accepted(
    fake: Callable[..., FakeServer], version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = fake({"version": version, "list_jobs": []})
    assert ps_cli.main(server.args) == 0
    assert capsys.readouterr().out.startswith("ID  State")


def test_unknown_version_is_refused_unless_ignored(
    fake: Callable[..., FakeServer], capsys: pytest.CaptureFixture[str]
) -> None:
    server = fake({"version": "9.0.0", "list_jobs": []})
    assert ps_cli.main(server.args) == 2
    assert capsys.readouterr().err.startswith("Incompatible server version (9.0.0)")
    assert ps_cli.main([*server.args, "--ignore_version", "False"]) == 2
    capsys.readouterr()
    assert ps_cli.main([*server.args, "--ignore_version", "True"]) == 0
    assert ps_cli.main([*server.args, "--ignore-version"]) == 0
    assert alloc.main([*server.args, "--owner", "o", "-c", "true"]) == 2
    assert "Incompatible server version" in capsys.readouterr().err


# --------------------------------------------------------------------------- hang-ups


def test_a_one_shot_tool_loads_neither_rich_nor_the_threaded_client(
    fake: Callable[..., FakeServer],
) -> None:
    import subprocess
    import sys

    server = fake({"version": "5.0.0", "list_jobs": []})
    code = (
        "import sys; from spalloc.cli.ps import main; rc = main(sys.argv[1:]); "
        "print(rc, sorted(m for m in ('rich', 'spalloc.client', 'spalloc.job') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *server.args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.splitlines()[-1] == "0 []", done.stderr


@pytest.mark.parametrize("tool", ["spalloc-ps", "spalloc-machine"])
def test_local_warning_is_one_line_on_stderr(tool: str, tmp_path: Any) -> None:
    import subprocess
    import sys

    module = {"spalloc-ps": "ps", "spalloc-machine": "machine"}[tool]
    code = f"import sys; from spalloc.cli.{module} import main; sys.exit(main(sys.argv[1:]))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", code, "--local"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{tool}: warning: ")
    assert "emulated" in lines[0] and ".py" not in lines[0]
