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


#: The one user of :func:`v2_emulator_process` (name, password).
BENCH_USER = ("bench", "bench-secret")


@contextmanager
def v2_emulator_process(
    workdir: Path, *args: str | Path, cwd: Path | None = None
) -> Iterator[tuple[str, Path]]:
    """Run the emulator serving v2 over HTTPS (a throw-away CA made in *workdir*), one user
    (:data:`BENCH_USER`), power and freeing instant, with *args* added; yield (its v2 URL,
    the CA file)."""
    from tests._v2 import make_ca  # not at the top: it imports the emulator

    ca, cert, key = make_ca(workdir)
    users = workdir / "users.toml"
    name, password = BENCH_USER
    users.write_text(f'[[user]]\nname = "{name}"\npassword = "{password}"\ngroups = ["{name}"]\n')
    options: list[str | Path] = ["--port", "0", "--http-port", "0", "--tls-cert", cert]
    options += ["--tls-key", key]
    options += ["--users", users, "--power-delay", "0", "--free-delay", "0"]
    with emulator_process(*options, *args, cwd=cwd) as (_, line):
        yield url_in(line), ca


def url_in(line: str, scheme: str = "https://") -> str:
    """The first word of *line* that starts with *scheme*; RuntimeError if none."""
    url = next((word for word in line.split() if word.startswith(scheme)), None)
    if url is None:
        raise RuntimeError(f"no {scheme} URL in the emulator's start-up line {line!r}")
    return url
