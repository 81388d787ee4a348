"""``--watch`` when the connection goes: the tools say so, reconnect, subscribe again and go on
redrawing (the official tools exited with "Error communicating with server", rc 1).

The tools run against the emulator through a loopback proxy that can hang up every connection
(as a server that restarts does) and refuse new ones for a while.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spalloc.cli import job as job_cli
from spalloc.client import ProtocolClient
from spalloc.emulator import Emulator
from tests._proxy import FreezingProxy
from tests.conftest import wait_for

pytestmark = pytest.mark.usefixtures("isolated_config")

WAIT = 5.0
REPO = Path(__file__).resolve().parent.parent


class _Stream(io.StringIO):
    """A thread-safe text stream whose contents a test can wait for."""

    def __init__(self, tty: bool = False) -> None:
        super().__init__()
        self._tty = tty
        self._lock = threading.Lock()

    def isatty(self) -> bool:
        return self._tty

    def write(self, text: str) -> int:
        with self._lock:
            return super().write(text)

    def text(self) -> str:
        with self._lock:
            return self.getvalue()


@pytest.fixture
def proxy(emulator: Emulator) -> Iterator[FreezingProxy]:
    p = FreezingProxy(emulator.address)
    yield p
    p.close()


@pytest.fixture
def client(emulator: Emulator) -> Iterator[ProtocolClient]:
    with ProtocolClient(emulator.host, emulator.port, timeout=WAIT) as c:
        yield c


def _job(client: ProtocolClient) -> int:
    job_id = client.call("create_job", 1, owner="watcher@example.org", keepalive=None)
    assert isinstance(job_id, int)
    return job_id


def _watch_in_thread(argv: list[str]) -> tuple[threading.Thread, list[int]]:
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(job_cli.main(argv)), daemon=True)
    thread.start()
    return thread, codes


def test_a_watch_reconnects_and_follows_again_after_a_hang_up(
    proxy: FreezingProxy, client: ProtocolClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = _job(client)
    stdout, stderr = _Stream(), _Stream()
    monkeypatch.setattr("sys.stdout", stdout)
    monkeypatch.setattr("sys.stderr", stderr)
    argv = [str(job_id), "--watch", "-H", proxy.host, "-P", str(proxy.port), "--timeout", "5"]
    thread, codes = _watch_in_thread(argv)
    assert wait_for(lambda: "State: ready" in stdout.text())

    proxy.hang_up()
    assert wait_for(lambda: "Reconnected to server." in stderr.text())
    assert proxy.accepted == 2
    # The new connection is subscribed again: a change is seen and the watch ends with it.
    client.call("destroy_job", job_id, reason="gone while watched")
    thread.join(WAIT)
    assert codes == [0]
    assert stdout.text().split("\n\n")[-2].endswith("Reason: gone while watched")
    err = stderr.text()
    assert err.count("Error communicating with server: ") == 1
    assert "Connection closed. Reconnecting every 5 s (Ctrl-C to stop).\n" in err
    assert "Traceback" not in err


def test_a_watch_on_a_terminal_shows_the_outage_then_carries_on(
    proxy: FreezingProxy, client: ProtocolClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = _job(client)
    monkeypatch.setenv("SPALLOC_RECONNECT_DELAY", "0.2")
    monkeypatch.setenv("TERM", "xterm")
    stdout, stderr = _Stream(tty=True), _Stream()
    monkeypatch.setattr("sys.stdout", stdout)
    monkeypatch.setattr("sys.stderr", stderr)
    argv = [str(job_id), "--watch", "-H", proxy.host, "-P", str(proxy.port), "--timeout", "5"]
    thread, codes = _watch_in_thread(argv)
    assert wait_for(lambda: "ready" in stdout.text())

    proxy.refusing = True
    proxy.hang_up()
    assert wait_for(lambda: "Connection lost" in stdout.text())
    assert "reconnecting every 0.2 s" in stdout.text()
    time.sleep(0.5)  # a few refused attempts, spaced by the reconnect delay
    refused_at = stdout.text().count("Connection lost")
    proxy.refusing = False
    client.call("destroy_job", job_id, reason="destroyed during the outage")
    thread.join(WAIT)
    assert codes == [0]
    final = stdout.text().rsplit("Connection lost", 1)[1]
    assert "destroyed during the outage" in final  # the status line went with the outage
    assert refused_at >= 2 and stderr.text() == ""  # on a terminal, all of it is on screen


def test_ctrl_c_ends_a_watch_while_the_server_is_away(proxy: FreezingProxy) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPALLOC_")}
    env["SPALLOC_RECONNECT_DELAY"] = "30"  # Ctrl-C must not wait for the next attempt
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spalloc.cli.ps",
            "--watch",
            "-H",
            proxy.host,
            "-P",
            str(proxy.port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith("ID  State")
        proxy.refusing = True
        proxy.hang_up()
        assert "Reconnecting every 30 s" in proc.stderr.readline()
        proc.send_signal(signal.SIGINT)
        # Well before the next attempt (30 s): the wait itself is interrupted.
        _, err = proc.communicate(timeout=WAIT * 2)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err
