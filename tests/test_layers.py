"""The layers import only downward: the notebook never imports the CLI, the core neither."""

from __future__ import annotations

import subprocess
import sys

import pytest


def imported_by(*modules: str) -> set[str]:
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + "print('\\n'.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, timeout=120).stdout
    return set(out.split())


def test_the_notebook_extension_imports_no_cli_module() -> None:
    loaded = imported_by("spalloc_nb", "spalloc_nb.magics", "spalloc_nb.widgets.job",
                         "spalloc_nb.widgets.boardmap", "spalloc_nb._api", "spalloc_nb._html")
    assert "spalloc_nb.magics" in loaded
    assert sorted(m for m in loaded if m == "spalloc.cli" or m.startswith("spalloc.cli.")) == []


@pytest.mark.parametrize("module", ["spalloc.job", "spalloc.client", "spalloc.ui.render",
                                    "spalloc.ui.options", "spalloc.emulator"])
def test_the_core_imports_neither_front_end(module: str) -> None:
    loaded = imported_by(module)
    front_ends = [m for m in loaded if m in ("spalloc.cli", "spalloc_nb")
                  or m.startswith(("spalloc.cli.", "spalloc_nb."))]
    assert front_ends == []


def test_every_error_raised_on_purpose_is_in_the_tree() -> None:
    from spalloc.cli._command import UnsafeValueError
    from spalloc.emulator.machines import MachineConfigError
    from spalloc.exceptions import ServerConnectionError, SpallocError
    from spalloc_nb.magics import CellFailed

    for cls in (UnsafeValueError, MachineConfigError, CellFailed, ServerConnectionError):
        assert issubclass(cls, SpallocError), cls
    assert issubclass(UnsafeValueError, ValueError) and issubclass(MachineConfigError, ValueError)
    assert issubclass(ServerConnectionError, ConnectionError)
