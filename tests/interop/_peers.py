"""Cached virtualenvs holding the official spalloc peers from PyPI.

Each peer lives in ``<repo>/.peers/<name>/`` (gitignored). A build is guarded by an exclusive
file lock, so parallel pytest workers wait for one another instead of racing, and it only counts
as done once a marker file naming the exact requirement has been written: a venv left half-built
by an interrupted run has no marker and is thrown away and rebuilt.

Run ``python tests/interop/_peers.py [NAME ...]`` to build them ahead of a test run. A build
takes tens of seconds per peer, so each one says what it is doing on one line.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PEERS", "PEERS_DIR", "Peer", "PeerUnavailable", "ensure_peer"]

REPO = Path(__file__).resolve().parents[2]
PEERS_DIR = REPO / ".peers"
MARKER = ".spalloc-peer-complete"
#: Where build progress goes when there is a terminal (see :func:`_report`).
TTY = "/dev/tty"


@dataclass(frozen=True)
class Peer:
    """One official package pinned to the version we test against."""

    name: str
    requirement: str
    #: Imported after installation to prove the venv works.
    module: str


PEERS: dict[str, Peer] = {
    peer.name: peer
    for peer in (
        Peer("client74", "spalloc==1!7.4.1", "spalloc_client"),
        Peer("client60", "spalloc==1!6.0.0", "spalloc"),
        Peer("refserver", "spalloc-server==1!7.0.0", "spalloc_server.server"),
        # The v2 client sPyNNaker uses (heavy: numpy, matplotlib), for the v2 front door.
        Peer("spinnman", "SpiNNMan==1!7.4.1", "spinnman.spalloc"),
    )
}


class PeerUnavailable(RuntimeError):
    """A peer's virtualenv could not be built (no network, no PyPI, broken package...)."""


@contextmanager
def _locked(path: Path, *, timeout: float | None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on *path*, polling so that a stuck holder cannot hang us."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    with open(path, "a+b") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() > deadline:
                    raise PeerUnavailable(f"timed out waiting for the lock {path}") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(cmd: list[str], *, timeout: float | None, cwd: Path | None = None) -> None:
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerUnavailable(f"{' '.join(cmd)}: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise PeerUnavailable(f"{' '.join(cmd)} exited {proc.returncode}: " + " | ".join(tail))


def _report(text: str, *, end: str = "\n") -> None:
    """Progress on the user's terminal, else on stderr.

    The first build happens inside ``python -m pytest``, whose output capture would swallow a
    plain ``print`` until the run ends: a newcomer would see a silent minute. The controlling
    terminal is outside that capture; without one (CI) stderr is the place.
    """
    try:
        with open(TTY, "w", encoding="utf-8") as tty:
            tty.write(text + end)
            return
    except OSError:
        pass
    sys.stderr.write(text + end)
    sys.stderr.flush()


def _is_complete(venv: Path, peer: Peer) -> bool:
    marker = venv / MARKER
    return marker.is_file() and marker.read_text().strip() == peer.requirement


def ensure_peer(name: str, *, timeout: float | None = 900.0) -> Path:
    """Return the ``bin`` directory of peer *name*, building its venv first if needed.

    Raises:
        KeyError: *name* is not one of :data:`PEERS`.
        PeerUnavailable: the venv could not be built within *timeout* seconds.
    """
    peer = PEERS[name]
    venv = PEERS_DIR / name
    if _is_complete(venv, peer):
        return venv / "bin"
    with _locked(PEERS_DIR / f"{name}.lock", timeout=timeout):
        # Another worker may have finished the build while we waited for the lock.
        if _is_complete(venv, peer):
            return venv / "bin"
        if venv.exists():
            shutil.rmtree(venv)
        started = time.monotonic()
        _report(f"\nbuilding {name} ({peer.requirement}) in {venv}, first run only...", end="")
        try:
            _run([sys.executable, "-m", "venv", str(venv)], timeout=timeout)
            python = str(venv / "bin" / "python")
            _run(
                [
                    python,
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    peer.requirement,
                ],
                timeout=timeout,
            )
            # In the venv's directory: importing spalloc_server opens spalloc_jobs.log in
            # the working directory, which would otherwise be the repository.
            _run([python, "-c", f"import {peer.module}"], timeout=60, cwd=venv)
        except PeerUnavailable:
            _report(" failed")
            raise
        _report(f" done in {time.monotonic() - started:.0f} s")
        (venv / MARKER).write_text(peer.requirement + "\n")
    return venv / "bin"


def main(argv: list[str] | None = None) -> int:
    """Build the named peers (all by default) and print where they are."""
    names = (sys.argv[1:] if argv is None else argv) or list(PEERS)
    status = 0
    for name in names:
        try:
            print(f"{name}: {ensure_peer(name)}")
        except (KeyError, PeerUnavailable) as exc:
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    os.environ.setdefault("PIP_NO_INPUT", "1")
    raise SystemExit(main())
