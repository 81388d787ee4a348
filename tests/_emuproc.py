"""The emulator's command line in a child process, for tests and benchmarks."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _command(args: tuple[str | Path, ...]) -> list[str]:
    return [sys.executable, "-m", "spalloc.emulator", *map(str, args)]


def run_emulator(*args: str | Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m spalloc.emulator *args`` to its end (a refusal, ``--help``)."""
    return subprocess.run(_command(args), capture_output=True, text=True, timeout=timeout)


@contextmanager
def emulator_process(
    *args: str | Path, cwd: Path | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run ``python -m spalloc.emulator *args``; yield it and its start-up line.

    The first line the emulator prints holds its addresses. On exit the process is
    terminated (if still running) and its pipes drained.
    """
    proc = subprocess.Popen(
        _command(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )
    try:
        assert proc.stdout is not None
        yield proc, proc.stdout.readline()
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=30)


def url_in(line: str, scheme: str = "https://") -> str:
    """The first word of *line* that starts with *scheme*; RuntimeError if none."""
    url = next((word for word in line.split() if word.startswith(scheme)), None)
    if url is None:
        raise RuntimeError(f"no {scheme} URL in the emulator's start-up line {line!r}")
    return url
