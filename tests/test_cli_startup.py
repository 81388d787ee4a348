"""What the one-shot tools import: the start-up budget of issue 4 (timed in benchmarks/).

``spalloc-ps`` must start in at most 0.6x the time of the official tool, and most of that
time is imports. These tests pin the modules the admin tools load, so that a stray
``import typing`` or ``import platformdirs`` on their path shows up as a failure here rather
than as a slower benchmark weeks later. Nothing here measures time.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from spalloc.client import ProtocolClient
from spalloc.emulator import Emulator

#: Modules the tools used to load (or could easily start loading again) that their common
#: paths do not need: each costs milliseconds of start-up.
AVOIDED = frozenset(
    {
        "typing",  # only for annotations: TYPE_CHECKING and spalloc._namedtuple instead
        "platformdirs",
        "pathlib",
        "tempfile",
        "shutil",  # XDG paths computed on Linux
        "configparser",  # only when a config file exists
        "socket",
        "selectors",  # the connection uses _socket
        "dataclasses",
        "importlib",
        "logging",
        "threading",
        "rich",
        "spalloc.client",
        "spalloc.job",
        "spalloc.emulator",
    }
)

# Runs a tool's main in a fresh interpreter and prints its exit code and the modules it
# loaded (those loaded before it starts, e.g. by an editable install's hook, do not count).
_PROBE = (
    "import sys\n"
    "before = set(sys.modules)\n"
    "__import__(sys.argv[1])\n"
    "main = sys.modules[sys.argv[1]].main\n"
    "rc = main(sys.argv[2:])\n"
    "print(rc, sorted(set(sys.modules) - before))\n"
)


@pytest.fixture
def emu(emulator_factory: Callable[..., Emulator]) -> Emulator:
    emulator = emulator_factory()
    with ProtocolClient(emulator.host, emulator.port, timeout=5.0) as client:
        client.call("create_job", 1, owner="me@example.org", keepalive=None)
    return emulator


def probe(
    tmp_path: Path, module: str, *args: str, config: str | None = None
) -> tuple[int, set[str]]:
    """Run *module*'s main in a subprocess without config files; its code and new modules."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SPALLOC_")}
    env.update(
        XDG_CONFIG_HOME=str(tmp_path / "user"),
        XDG_CONFIG_DIRS=str(tmp_path / "site"),
        NO_COLOR="1",
        COLUMNS="80",
    )
    if config is not None:
        (tmp_path / ".spalloc").write_text(config, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, module, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    last = done.stdout.splitlines()[-1] if done.stdout else ""
    code, _, modules = last.partition(" ")
    assert code.isdigit(), done.stdout + done.stderr
    return int(code), set(ast.literal_eval(modules))


def server_args(emu: Emulator) -> list[str]:
    return ["-H", emu.host, "-P", str(emu.port)]


@pytest.mark.parametrize(
    "module,args",
    [
        ("spalloc.cli.ps", []),
        ("spalloc.cli.ps", ["--owner", "me@example.org"]),
        ("spalloc.cli.machine", []),
        ("spalloc.cli.machine", ["m4x2"]),
        ("spalloc.cli.job", ["1"]),
        ("spalloc.cli.where_is", ["--board", "m4x2", "0", "0", "0"]),
    ],
)
def test_admin_tools_load_nothing_they_do_not_need(
    tmp_path: Path, emu: Emulator, module: str, args: list[str]
) -> None:
    code, loaded = probe(tmp_path, module, *server_args(emu), *args)
    assert code == 0
    assert module in loaded and "json" in loaded and "_socket" in loaded
    assert loaded & AVOIDED == set()


def test_help_loads_nothing_it_does_not_need(tmp_path: Path) -> None:
    code, loaded = probe(tmp_path, "spalloc.cli.ps", "--help")
    assert code == 0
    assert loaded & AVOIDED == set()


def test_a_config_file_brings_configparser_and_is_used(tmp_path: Path, emu: Emulator) -> None:
    config = f"[spalloc]\nhostname = {emu.host}\nport = {emu.port}\n"
    code, loaded = probe(tmp_path, "spalloc.cli.ps", config=config)
    assert code == 0  # found the server through ./.spalloc
    assert "configparser" in loaded
    assert loaded & (AVOIDED - {"configparser"}) == set()
