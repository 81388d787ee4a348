"""Run the front-end (anywidget ES module) tests with node's own test runner.

So that the one ``python -m pytest`` command also covers the JavaScript: installs the npm
test dependencies from the lockfile when they are missing, then runs ``node --test tests/js/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from spalloc_nb.widgets._esm import widget_esm

ROOT = Path(__file__).resolve().parent.parent
JS_DIR = ROOT / "tests" / "js"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        # Outside CI a machine without node just cannot run these; in CI that is a failure.
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; the JS tests cannot run")
        pytest.skip(f"{name} is not installed")
    return path


def _ensure_deps() -> None:
    if (JS_DIR / "node_modules" / "jsdom").is_dir():
        return
    npm = _tool("npm")
    lock = JS_DIR / "package-lock.json"
    cmd = [npm, "ci" if lock.exists() else "install", "--no-audit", "--no-fund"]
    result = subprocess.run(cmd, cwd=JS_DIR, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"


def test_node_suites_pass() -> None:
    node = _tool("node")
    _ensure_deps()
    result = subprocess.run(
        [node, "--test", "tests/js/"], cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Guard against a runner that found nothing to run.
    assert "# pass 0" not in output and "# tests 0" not in output, output


@pytest.mark.parametrize("name", ["boardmap.js", "jobstatus.js"])
def test_node_suites_load_the_module_python_serves(name: str) -> None:
    """tests/js/esm.js joins a widget's modules exactly as widgets/_esm.py does."""
    node = _tool("node")
    script = (
        f"import {{ widgetSource }} from {(JS_DIR / 'esm.js').as_uri()!r};"
        f"process.stdout.write(widgetSource({name!r}));"
    )
    result = subprocess.run(
        [node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == widget_esm(name)
