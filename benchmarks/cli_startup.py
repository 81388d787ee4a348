"""Whole-process time of ``spalloc-ps``: ours against the official 1!6.0.0, one emulator.

Run with ``python benchmarks/cli_startup.py [--runs N]``. The official client is taken
from ``.peers/client60/`` (a virtualenv with ``spalloc==1!6.0.0``) when it exists; without
it that column is skipped. ``python -c pass`` is timed too, as the floor. Runs are
interleaved so that all commands see the same machine load; medians and minima of wall time
and of CPU time (user + system, less sensitive to other load) are printed, with the ratio
ours / official (target: at most 0.6). The outputs are compared as well, since ours must
keep the official layout.

Ours is timed twice: from the shared development virtualenv (an *editable* install, whose
import hook and extra ``.pth`` files slow down every Python start, ``pass`` included) and
from a throw-away virtualenv that sees this checkout and the dependencies as plain paths,
which is how a regular ``pip install`` behaves. The headline ratio uses the latter.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spalloc.client import ProtocolClient
from spalloc.emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent
OFFICIAL = ROOT / ".peers" / "client60" / "bin" / "spalloc-ps"


_FLOOR = (
    "import argparse, json, _socket, spalloc.config; spalloc.config.load_config(); "
    "argparse.ArgumentParser().add_argument('-x')"
)


def ours_command() -> list[str]:
    script = Path(sys.executable).parent / "spalloc-ps"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "spalloc.cli.ps"]


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system) and stdout of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed, cpu, done.stdout


def clean_venv(where: Path) -> Path:
    """A virtualenv seeing this checkout and the shared site-packages as plain paths."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    site_dir = subprocess.run(
        [str(python), "-c", "import site; print(site.getsitepackages()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    shared = next(p for p in sys.path if p.endswith("site-packages"))
    Path(site_dir, "spalloc-bench.pth").write_text(f"{ROOT}\n{shared}\n")
    script = where / "bin" / "spalloc-ps"
    script.write_text(
        f"#!{python}\nimport sys\nfrom spalloc.cli.ps import main\n"
        "if __name__ == '__main__':\n    sys.exit(main())\n"
    )
    script.chmod(0o755)
    return where / "bin"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each command")
    args = parser.parse_args(argv)

    env = {key: value for key, value in os.environ.items() if not key.startswith("SPALLOC_")}
    env["NO_COLOR"] = "1"
    # Installed packages run from byte-compiled files; an environment that forbids writing
    # them (PYTHONDONTWRITEBYTECODE) would make us recompile on every start. Both tools get
    # their .pyc files in a private cache, written during the warm-up run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as cache, Emulator() as emulator:
        env["PYTHONPYCACHEPREFIX"] = cache
        with ProtocolClient(emulator.host, emulator.port, timeout=5.0) as client:
            client.call("create_job", 3, owner="bench@example.org", keepalive=None)
            client.call("create_job", owner="other@example.org", keepalive=None)
        server = ["-H", emulator.host, "-P", str(emulator.port)]
        clean = clean_venv(Path(cache) / "venv")
        commands = {
            "pass (shared venv)": [sys.executable, "-c", "pass"],
            "ours (shared venv)": [*ours_command(), *server],
            "pass (clean venv)": [str(clean / "python"), "-c", "pass"],
            "ours (clean venv)": [str(clean / "spalloc-ps"), *server],
            # What any tool pays before doing anything: the config (with its search path),
            # argparse, the socket core (_socket, as our connection uses) and json. Printed
            # to show where the time goes.
            "floor (clean venv)": [str(clean / "python"), "-c", _FLOOR],
        }
        if OFFICIAL.exists():
            commands["pass (official venv)"] = [str(OFFICIAL.parent / "python"), "-c", "pass"]
            commands["official 1!6.0.0"] = [str(OFFICIAL), *server]
        else:
            print(f"(official client not found at {OFFICIAL}: column skipped)")
        wall: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        outputs: dict[str, str] = {}
        for name, command in commands.items():  # warm-up: page cache, .pyc files
            outputs[name] = timed(command, env)[2]
        for _ in range(args.runs):
            for name, command in commands.items():
                elapsed, used, _ = timed(command, env)
                wall[name].append(elapsed)
                cpu[name].append(used)

    print(f"spalloc-ps as a whole process, {args.runs} interleaved runs each")
    print(
        f"{'command':<24}{'wall median':>12}{'wall min':>10}{'cpu median':>12}{'cpu min':>9}  (ms)"
    )
    for name in commands:
        print(
            f"{name:<24}{statistics.median(wall[name]) * 1000:>12.1f}"
            f"{min(wall[name]) * 1000:>10.1f}{statistics.median(cpu[name]) * 1000:>12.1f}"
            f"{min(cpu[name]) * 1000:>9.1f}"
        )
    if "official 1!6.0.0" in commands:
        official = "official 1!6.0.0"
        for ours in ("ours (clean venv)", "ours (shared venv)"):
            wall_ratio = statistics.median(wall[ours]) / statistics.median(wall[official])
            cpu_ratio = statistics.median(cpu[ours]) / statistics.median(cpu[official])
            print(
                f"ratio {ours} / official: wall median {wall_ratio:.2f}, "
                f"cpu median {cpu_ratio:.2f}  (target <= 0.60)"
            )
        same = outputs["ours (clean venv)"] == outputs[official]
        print(f"identical output: {'yes' if same else 'no'}")
        if not same:
            print(f"--- ours\n{outputs['ours (clean venv)']}--- official\n{outputs[official]}")
    print(f"ours: {shutil.which(ours_command()[0]) or ours_command()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
