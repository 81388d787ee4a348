"""Static checks run as part of the one test command: ruff (lint) and mypy (types)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff():
    result = _run("ruff", "check", "spalloc", "spalloc_nb", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format():
    result = _run(
        "ruff",
        "format",
        "--check",
        "spalloc",
        "spalloc_nb",
        "tests",
        "benchmarks",
        "docs/conf.py",
        "docs/_ext",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy():
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
