"""Building a peer virtualenv: one progress line per peer, and nothing left in the working
directory (the reference server's package opens ``spalloc_jobs.log`` there on import).

The peer here is a tiny wheel made on the spot, so the test needs no network.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from . import _peers

MODULE = '''\
open("spalloc_jobs.log", "a").close()  # as spalloc_server.controller does on import
'''


def _wheel(directory: Path) -> Path:
    """A minimal pure-Python wheel holding module ``tinypeer``."""
    files = {
        "tinypeer.py": MODULE,
        "tinypeer-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinypeer\n"
                                           "Version: 1.0\n",
        "tinypeer-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
                                        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest())
        record.append(f"{name},sha256={digest.rstrip(b'=').decode()},{len(text.encode())}")
    record.append("tinypeer-1.0.dist-info/RECORD,,")
    files["tinypeer-1.0.dist-info/RECORD"] = "\n".join(record) + "\n"
    path = directory / "tinypeer-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
    return path


@pytest.mark.slow
def test_a_build_reports_progress_and_leaves_the_working_directory_clean(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    wheel = _wheel(tmp_path)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(_peers, "PEERS_DIR", tmp_path / "peers")
    monkeypatch.setattr(_peers, "TTY", str(tmp_path / "no-terminal" / "tty"))
    monkeypatch.setitem(_peers.PEERS, "tiny", _peers.Peer("tiny", str(wheel), "tinypeer"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")

    bin_dir = _peers.ensure_peer("tiny", timeout=300)

    assert (bin_dir / "python").exists()
    assert list(cwd.iterdir()) == []  # the import check ran elsewhere
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"building tiny ({wheel}) in ")
    assert lines[0].endswith(" s") and "first run only... done in " in lines[0]
    # Built once: the next call says nothing.
    assert _peers.ensure_peer("tiny") == bin_dir
    assert capfd.readouterr().err == ""


@pytest.mark.interop
def test_the_reference_server_leaves_the_working_directory_clean(
        refserver_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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
