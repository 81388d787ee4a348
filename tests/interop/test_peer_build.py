"""Building a peer virtualenv: one progress line per peer, and nothing left in the working
directory (the reference server's package opens ``spalloc_jobs.log`` there on import).

The slow steps (``python -m venv``, ``pip install``) are stood in for, so the test needs no
network; the import check, the step that wrote the log into the repository, runs for real.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from . import _peers

MODULE = """\
open("spalloc_jobs.log", "a").close()  # as spalloc_server.controller does on import
"""


def test_a_build_reports_progress_and_leaves_the_working_directory_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    package = tmp_path / "package"
    package.mkdir()
    (package / "tinypeer.py").write_text(MODULE)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("PYTHONPATH", str(package))
    monkeypatch.setattr(_peers, "PEERS_DIR", tmp_path / "peers")
    monkeypatch.setattr(_peers, "TTY", str(tmp_path / "no-terminal" / "tty"))
    monkeypatch.setitem(_peers.PEERS, "tiny", _peers.Peer("tiny", "tinypeer==1.0", "tinypeer"))
    real_run = _peers._run
    skipped: list[list[str]] = []

    def run(cmd: list[str], *, timeout: float | None, cwd: Path | None = None) -> Any:
        if cmd[1:3] == ["-m", "venv"]:  # a "venv" whose python is this interpreter
            (Path(cmd[3]) / "bin").mkdir(parents=True)
            os.symlink(sys.executable, Path(cmd[3]) / "bin" / "python")
            skipped.append(cmd)
        elif cmd[1:4] == ["-m", "pip", "install"]:
            skipped.append(cmd)
        else:
            return real_run(cmd, timeout=timeout, cwd=cwd)
        return None

    monkeypatch.setattr(_peers, "_run", run)
    bin_dir = _peers.ensure_peer("tiny", timeout=60)

    assert len(skipped) == 2
    assert (bin_dir.parent / "spalloc_jobs.log").exists()  # the import check did run
    assert list(cwd.iterdir()) == []  # ... but not here
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"building tiny (tinypeer==1.0) in {tmp_path / 'peers'}")
    assert lines[0].endswith(" s") and "first run only... done in " in lines[0]
    # Built once: the next call says nothing.
    assert _peers.ensure_peer("tiny") == bin_dir
    assert capfd.readouterr().err == ""


@pytest.mark.interop
def test_the_reference_server_leaves_the_working_directory_clean(
    refserver_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It writes spalloc_jobs.log (and its state) into its own temporary directory."""
    from ._machines import peer_machines
    from .refserver import ReferenceServer

    monkeypatch.chdir(tmp_path)
    server = ReferenceServer(refserver_bin, peer_machines())
    with server:
        workdir = Path(server._tmp.name) if server._tmp else None
        assert workdir is not None and (workdir / "spalloc_jobs.log").exists()
    assert list(tmp_path.iterdir()) == []
    assert not workdir.exists()  # removed when the server stopped
