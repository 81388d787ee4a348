"""The reference-server fixture serves jobs, and shows why the emulator does not copy its
version string: the official clients cannot parse ``1!7.0.0`` (PROTOCOL.md §9 #1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spalloc.emulator import Emulator

from ._machines import differential_machines
from ._wire import Wire
from .conftest import PS_HEADER, Run
from .refserver import REFERENCE_VERSION

pytestmark = pytest.mark.interop


def test_official_cli_against_reference_needs_ignore_version(
    client74: Path, reference_server: tuple[str, int], run_peer: Run
):
    host, port = reference_server
    with Wire(reference_server) as wire:
        assert wire.ret("version") == REFERENCE_VERSION
        job_id = wire.ret("create_job", 3, owner="ref", keepalive=None)
        address = ["--hostname", host, "--port", str(port)]
        refused = run_peer(client74, "spalloc-ps", *address)
        assert refused.returncode == 1
        assert "invalid literal for int() with base 10: '1!7'" in refused.stderr
        listed = run_peer(client74, "spalloc-ps", *address, "--ignore_version", "1")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == [str(job_id)]
    assert rows[0][4] == "m"


def test_emulator_version_is_accepted(client74: Path, run_peer: Run):
    with Emulator(differential_machines()) as emulator:
        proc = run_peer(
            client74, "spalloc-ps", "--hostname", emulator.host, "--port", str(emulator.port)
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == PS_HEADER
