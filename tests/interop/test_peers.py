"""The peer machinery itself: skip or fail when a peer cannot be built, and rebuild half-built
virtualenvs. Nothing here contacts PyPI; the real builds run in the peer fixtures."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from . import _peers, conftest
from ._peers import MARKER, Peer, PeerUnavailable, ensure_peer

pytestmark = pytest.mark.interop


def test_unavailable_peer_fails_under_ci(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(conftest._failures, "nope", "PyPI unreachable")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="PyPI unreachable"):
        conftest.peer_bin("nope")


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_unavailable_peer_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, value: str | None):
    monkeypatch.setitem(conftest._failures, "nope", "PyPI unreachable")
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="'nope' is unavailable: PyPI unreachable"):
        conftest.peer_bin("nope")


def test_complete_peer_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_peers, "PEERS_DIR", tmp_path)
    peer = Peer("cached", "something==1.0", "something")
    monkeypatch.setitem(_peers.PEERS, "cached", peer)
    (tmp_path / "cached").mkdir()
    (tmp_path / "cached" / MARKER).write_text("something==1.0\n")
    assert ensure_peer("cached") == tmp_path / "cached" / "bin"


def test_half_built_peer_is_discarded_and_failure_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(_peers, "PEERS_DIR", tmp_path)
    peer = Peer("broken", "broken==1.0", "broken")
    monkeypatch.setitem(_peers.PEERS, "broken", peer)
    venv = tmp_path / "broken"
    venv.mkdir()
    (venv / "left-over").write_text("from an interrupted build")
    # A marker for another requirement does not count as complete either.
    (venv / MARKER).write_text("something-else==2\n")
    commands: list[list[str]] = []

    def run(cmd: list[str], *, timeout: float | None, cwd: Path | None = None) -> None:
        # Stand-in for the slow part (venv + pip): the venv step works, pip fails.
        commands.append(cmd)
        if "venv" in cmd:
            (venv / "bin").mkdir(parents=True)
        else:
            raise PeerUnavailable("pip install exited 1: no such package")

    monkeypatch.setattr(_peers, "_run", run)
    with pytest.raises(PeerUnavailable, match="no such package"):
        ensure_peer("broken")
    assert not (venv / "left-over").exists()
    assert not (venv / MARKER).exists()
    assert commands[1][-1] == "broken==1.0"
    assert (tmp_path / "broken.lock").exists()


def test_concurrent_builds_run_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_peers, "PEERS_DIR", tmp_path)
    monkeypatch.setitem(_peers.PEERS, "shared", Peer("shared", "shared==1.0", "shared"))
    commands: list[list[str]] = []

    def run(cmd: list[str], *, timeout: float | None, cwd: Path | None = None) -> None:
        # Stand-in for venv + pip + import check; slow enough for the builds to overlap.
        commands.append(cmd)
        if "venv" in cmd:
            (tmp_path / "shared" / "bin").mkdir(parents=True)
            threading.Event().wait(0.3)

    monkeypatch.setattr(_peers, "_run", run)
    with ThreadPoolExecutor(4) as pool:
        bins = list(pool.map(lambda _: ensure_peer("shared", timeout=30), range(4)))
    assert bins == [tmp_path / "shared" / "bin"] * 4
    assert sum("venv" in cmd for cmd in commands) == 1
    assert (tmp_path / "shared" / MARKER).read_text() == "shared==1.0\n"
