"""The layers import only downward: the notebook never imports the CLI, the core neither."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_by(*modules: str) -> set[str]:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print('\\n'.join(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    return set(out.split())


def test_the_notebook_extension_imports_no_cli_module() -> None:
    loaded = imported_by(
        "spalloc_nb",
        "spalloc_nb.magics",
        "spalloc_nb.widgets.job",
        "spalloc_nb.widgets.boardmap",
        "spalloc_nb._api",
        "spalloc_nb._html",
    )
    assert "spalloc_nb.magics" in loaded
    assert sorted(m for m in loaded if m == "spalloc.cli" or m.startswith("spalloc.cli.")) == []


#: What the notebook extension must reach only through spalloc.service (and spalloc.ui).
_BELOW_THE_SERVICE = ("spalloc.client", "spalloc.cli", "spalloc.ProtocolClient")


def forbidden_imports(source: str) -> list[str]:
    """The imports in *source* (at any depth) of the client or the CLI, by full name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found += [
            name
            for name in names
            if any(name == bad or name.startswith(bad + ".") for bad in _BELOW_THE_SERVICE)
        ]
    return found


def test_the_notebook_extension_uses_the_service_not_the_client_or_the_cli() -> None:
    # Not sys.modules: the v1 service loads the client underneath, as it should.
    sources = sorted((ROOT / "spalloc_nb").rglob("*.py"))
    assert len(sources) > 8
    found = {
        str(path.relative_to(ROOT)): names
        for path in sources
        if (names := forbidden_imports(path.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_the_import_check_sees_every_form() -> None:
    for line in (
        "import spalloc.client",
        "from spalloc.client import ProtocolClient",
        "from spalloc import client",
        "from spalloc import ProtocolClient",
        "from spalloc.cli._render import x",
        "from spalloc import cli",
        "def f():\n    from spalloc.cli import ps\n",
    ):
        assert forbidden_imports(line), line
    assert (
        forbidden_imports(
            "from spalloc.service import open_service\nfrom spalloc.client_extra import x\n"
        )
        == []
    )


@pytest.mark.parametrize(
    "module",
    [
        "spalloc.job",
        "spalloc.client",
        "spalloc.ui.render",
        "spalloc.ui.options",
        "spalloc.emulator",
    ],
)
def test_the_core_imports_neither_front_end(module: str) -> None:
    loaded = imported_by(module)
    front_ends = [
        m
        for m in loaded
        if m in ("spalloc.cli", "spalloc_nb") or m.startswith(("spalloc.cli.", "spalloc_nb."))
    ]
    assert front_ends == []


def test_the_client_never_imports_the_emulator_and_both_share_the_wire_facts() -> None:
    """The bridge and the emulator take ports, opcodes and frame words from one module."""
    loaded = imported_by("spalloc.service.bridge", "spalloc.service._reach")
    assert sorted(m for m in loaded if m.startswith("spalloc.emulator")) == []
    assert "spalloc._proxywire" in loaded
    from spalloc import _proxywire
    from spalloc.emulator import _boards, _proxy
    from spalloc.service import _bridgeproxy, _bridgerelay, _reach

    assert _bridgerelay.SCP_PORT is _boards.SCP_PORT is _proxywire.SCP_PORT
    assert vars(_bridgeproxy)["W5"] is vars(_proxy)["W5"] is _proxywire.W5
    assert _reach.version_request is _proxywire.version_request


def test_every_error_raised_on_purpose_is_in_the_tree() -> None:
    from spalloc.cli._command import UnsafeValueError
    from spalloc.emulator.machines import MachineConfigError
    from spalloc.exceptions import ServerConnectionError, SpallocError
    from spalloc_nb.magics import CellFailed

    for cls in (UnsafeValueError, MachineConfigError, CellFailed, ServerConnectionError):
        assert issubclass(cls, SpallocError), cls
    assert issubclass(UnsafeValueError, ValueError) and issubclass(MachineConfigError, ValueError)
    assert issubclass(ServerConnectionError, ConnectionError)


def test_the_v2_libraries_load_only_for_a_v2_server() -> None:
    # httpx and websockets are imported by spalloc.service.v2 and .bridge alone, for a URL.
    loaded = imported_by(
        "spalloc",
        "spalloc.job",
        "spalloc.service",
        "spalloc.service.v1",
        "spalloc.service.v1light",
        "spalloc.cli.ps",
    )
    assert "spalloc.service.v1" in loaded
    assert {"httpx", "websockets", "aiohttp"} & loaded == set()
