"""Fixtures for the interop tests: the official peers from PyPI in their own venvs.

Building a peer needs PyPI. When that fails the tests are skipped with the reason, except under
CI (environment variable ``CI`` set), where a missing peer must fail the run rather than let the
interop suite silently vanish.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spalloc.emulator import Emulator
from spalloc.geometry import Machine

from ._machines import differential_machines, peer_machines
from ._peers import PeerUnavailable, ensure_peer
from .refserver import ReferenceServer

_failures: dict[str, str] = {}

#: Seconds an interop test may take: the first one to need a peer builds its venv from PyPI.
INTEROP_TIMEOUT = 900

#: :func:`run_peer`'s runner: ``run(bin_dir, program, *args, timeout=60.0, input="")``.
Run = Callable[..., subprocess.CompletedProcess[str]]

#: The words of the header line the official ``spalloc-ps`` prints.
PS_HEADER = [
    "ID",
    "State",
    "Power",
    "Boards",
    "Machine",
    "Created",
    "at",
    "Keepalive",
    "Owner",
    "(Host)",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give interop tests room for a first-time peer build (the suite default is 120 s)."""
    for item in items:
        if item.get_closest_marker("interop") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(INTEROP_TIMEOUT))


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def peer_bin(name: str) -> Path:
    """The peer's venv ``bin`` directory; skip (or, under CI, fail) when it cannot be built."""
    if name not in _failures:
        try:
            return ensure_peer(name)
        except PeerUnavailable as exc:
            _failures[name] = str(exc)
    message = f"official peer {name!r} is unavailable: {_failures[name]}"
    if _in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def client74() -> Path:
    """``bin`` of a venv with ``spalloc==1!7.4.1`` (module ``spalloc_client``)."""
    return peer_bin("client74")


@pytest.fixture(scope="session")
def client60() -> Path:
    """``bin`` of a venv with ``spalloc==1!6.0.0`` (module ``spalloc``)."""
    return peer_bin("client60")


@pytest.fixture(scope="session")
def refserver_bin() -> Path:
    """``bin`` of a venv with ``spalloc-server==1!7.0.0``."""
    return peer_bin("refserver")


@pytest.fixture
def reference_server_factory(
    refserver_bin: Path, tmp_path: Path
) -> Iterator[Callable[..., ReferenceServer]]:
    """Call with machines and ReferenceServer keywords; returns a started server."""
    made: list[ReferenceServer] = []

    def factory(machines: Sequence[Machine], **kwargs: Any) -> ReferenceServer:
        kwargs.setdefault("workdir", tmp_path / f"ref{len(made)}")
        server = ReferenceServer(refserver_bin, machines, **kwargs)
        made.append(server)
        server.start()
        return server

    yield factory
    for server in made:
        server.stop()


@pytest.fixture
def reference_server(
    reference_server_factory: Callable[..., ReferenceServer],
) -> tuple[str, int]:
    """Address of a cold-started reference server serving the differential machines."""
    return reference_server_factory(differential_machines()).address


@pytest.fixture
def emulator_for_peers() -> Iterator[Emulator]:
    """Our emulator serving ``m`` (2x2, default) and ``board`` (single), small delays."""
    with Emulator(peer_machines(), power_delay=0.05, free_delay=0.05) as emulator:
        yield emulator


@dataclass(frozen=True)
class PeerEnv:
    """Where and with which environment peer programs run: a fresh home directory as the
    working directory, so that no ``.spalloc`` or user config of ours is in reach."""

    cwd: Path
    env: dict[str, str]


@pytest.fixture
def peer_env(tmp_path: Path) -> PeerEnv:
    """A clean directory and environment for running peer programs."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), PYTHONUNBUFFERED="1")
    return PeerEnv(home, env)


@pytest.fixture
def run_peer(peer_env: PeerEnv) -> Run:
    """Run a program from a peer venv (see :class:`PeerEnv`), bounded by *timeout*."""

    def run(
        bin_dir: Path, program: str, *args: str, timeout: float = 60.0, input: str = ""
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir / program), *args],
            cwd=peer_env.cwd,
            env=peer_env.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
