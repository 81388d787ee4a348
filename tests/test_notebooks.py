"""The example notebooks: every one runs cleanly, and the golden one reproduces its outputs.

Two checks, because each misses something (NOTEBOOK_NOTES.md §2b.7): a magic's ``UsageError``
reaches the front end only as stderr text, so "no error output" (nbval-lax, nbmake) passes a
broken notebook. The run check therefore asserts the *execute reply status* of every cell
(nbclient), and the strict check (nbval, in a subprocess) compares the golden notebook's fresh
outputs with the stored ones after ``nbval-sanitize.cfg`` has masked ports, times and owners.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
GOLDEN = EXAMPLES / "04-admin.ipynb"
SANITIZE = Path(__file__).with_name("nbval-sanitize.cfg")
CELL_TIMEOUT = 60
ALLOWED_TAG = "raises-exception"


@dataclass(frozen=True)
class CellRun:
    """One executed code cell: its index, source, tags, reply status and outputs."""

    index: int
    source: str
    tags: tuple[str, ...]
    status: str
    outputs: tuple[Any, ...]

    def describe(self) -> str:
        texts = []
        for out in self.outputs:
            if out.get("output_type") == "stream":
                texts.append(out["text"])
            elif out.get("output_type") == "error":
                texts.append(f"{out['ename']}: {out['evalue']}")
        return f"cell {self.index} ({self.source[:60]!r}) -> {self.status}: {' '.join(texts)}"


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Keep the developer's IPython/Jupyter/spalloc settings away from the kernels."""
    for key in [k for k in os.environ if k.startswith("SPALLOC_")]:
        monkeypatch.delenv(key)
    for var, sub in (
        ("IPYTHONDIR", "ipython"),
        ("JUPYTER_CONFIG_DIR", "jupyter"),
        ("XDG_CONFIG_HOME", "xdg"),
    ):
        monkeypatch.setenv(var, str(tmp_path / sub))
    return dict(os.environ)


def execute(book: Any, cwd: Path) -> list[CellRun]:
    """Run *book* in a fresh kernel and record every code cell's execute reply status."""
    from nbclient import NotebookClient

    runs: list[CellRun] = []

    def on_executed(cell: Any, cell_index: int, execute_reply: dict[str, Any]) -> None:
        runs.append(
            CellRun(
                cell_index,
                cell.source,
                tuple(cell.metadata.get("tags", ())),
                execute_reply["content"]["status"],
                tuple(cell.outputs),
            )
        )

    # allow_errors: keep going so every failing cell is reported, not just the first.
    client = NotebookClient(
        book,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        allow_errors=True,
        store_widget_state=False,
        record_timing=False,
        on_cell_executed=on_executed,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    return runs


def bad_cells(runs: list[CellRun]) -> list[str]:
    """Cells whose status is wrong: ``error`` anywhere except where a tag expects it."""
    return [
        run.describe()
        for run in runs
        if run.status != ("error" if ALLOWED_TAG in run.tags else "ok")
    ]


def code_cells(book: Any) -> list[Any]:
    return [cell for cell in book.cells if cell.cell_type == "code"]


def test_there_are_examples() -> None:
    names = [path.name for path in NOTEBOOKS]
    assert names[:4] == [
        "01-quick-start.ipynb",
        "02-cell-magic.ipynb",
        "03-board-map.ipynb",
        "04-admin.ipynb",
    ]


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p != GOLDEN], ids=lambda p: p.stem)
def test_example_runs_without_errors(path: Path, kernel_env: dict[str, str]) -> None:
    book = nbformat.read(path, as_version=4)
    runs = execute(book, path.parent)
    assert len(runs) == len(code_cells(book)), "not every code cell ran"
    assert bad_cells(runs) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_example_is_stored_from_a_clean_run(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    # Saved widget state renders blank offline; the text/html fallback is what GitHub shows.
    assert "widgets" not in book.metadata
    assert book.metadata["kernelspec"]["name"] == "python3"
    counts = [cell.execution_count for cell in code_cells(book)]
    assert counts == list(range(1, len(counts) + 1)), "run top to bottom in a fresh kernel"
    for cell in code_cells(book):
        for out in cell.outputs:
            data = out.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                assert "text/html" in data and "text/plain" in data, cell.source
            if out.get("output_type") == "error":
                assert ALLOWED_TAG in cell.metadata.get("tags", ()), cell.source


def test_status_check_catches_a_magic_usage_error(
    tmp_path: Path, kernel_env: dict[str, str]
) -> None:
    # The blind spot of nbval-lax/nbmake: a UsageError leaves no "error" output behind.
    book = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext spalloc_nb"),
            nbformat.v4.new_code_cell("%spalloc --local 1 --no-such-option"),
            nbformat.v4.new_code_cell("print('still running')"),
        ]
    )
    runs = execute(book, tmp_path)
    assert [run.status for run in runs] == ["ok", "error", "ok"]
    assert not any(out.get("output_type") == "error" for out in runs[1].outputs)
    assert len(bad_cells(runs)) == 1


def run_nbval(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Strict nbval on one notebook in a child pytest (so it cannot touch this session)."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--nbval",
        "--nbval-current-env",
        f"--nbval-cell-timeout={CELL_TIMEOUT}",
        "--nbval-sanitize-with",
        str(SANITIZE),
        str(path),
    ]
    return subprocess.run(
        cmd, cwd=path.parent, env=env, capture_output=True, text=True, timeout=300
    )


def test_golden_notebook_reproduces_its_outputs(kernel_env: dict[str, str]) -> None:
    # Also the golden notebook's run check: a magic's UsageError changes its stderr output.
    result = run_nbval(GOLDEN, kernel_env)
    hint = (
        "\nIf the change is intended, store the new outputs: "
        "python examples/refresh_outputs.py examples/04-admin.ipynb"
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:] + hint
    assert " passed" in result.stdout


def test_golden_check_notices_a_changed_output(tmp_path: Path, kernel_env: dict[str, str]) -> None:
    book = nbformat.read(GOLDEN, as_version=4)
    changed = 0
    for cell in code_cells(book):
        if cell.source.strip() == "%spalloc machines":
            for out in cell.outputs:
                if "text/plain" in out.get("data", {}):
                    out["data"]["text/plain"] = out["data"]["text/plain"].replace("m4x2", "m9x9")
                    changed += 1
    assert changed == 1
    copy = tmp_path / GOLDEN.name
    nbformat.write(book, copy)
    result = run_nbval(copy, kernel_env)
    assert result.returncode != 0
    assert "m9x9" in result.stdout
