"""Drive JupyterLab on 127.0.0.1 with Debian's Chromium through Playwright (sync API).

Everything runs in a temporary directory with its own Jupyter/IPython config, data and runtime
directories, so neither the developer's settings nor a previous run can leak in. Without Chromium,
JupyterLab or Playwright the tests skip, except under CI (``CI`` set), where they fail: the CI
script installs them (``.ci/browser-setup.sh``) and a silent skip there would hide a broken stage.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "ARTIFACTS",
    "CHROMIUM_ARGS",
    "EXAMPLES",
    "OWNER",
    "LabServer",
    "Notebook",
    "copy_notebook",
    "find_chromium",
    "new_lab",
    "our_jobs",
    "require",
    "wait_until",
]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# Flags that keep a headless Chromium quiet and working as root in a container with no network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
LAB_START_TIMEOUT = 90.0
#: Owner of the jobs the notebooks create in the browser tests (SPALLOC_OWNER for the kernels).
OWNER = "browser-test@example.org"
_URL_RE = re.compile(r"http://127\.0\.0\.1:(\d+)/lab")
_STDERR_ERROR = re.compile(r"Traceback|Exception|\w*Error\b")


def require(condition: bool, reason: str) -> None:
    """Skip when *condition* is false, but fail under CI where the stage must really run."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"browser stage cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def find_chromium() -> str | None:
    """The Chromium to drive: ``SPALLOC_TEST_CHROMIUM`` if set, else Debian's."""
    override = os.environ.get("SPALLOC_TEST_CHROMIUM")
    candidates = (override,) if override else CHROMIUM_CANDIDATES
    return next((p for p in candidates if os.access(p, os.X_OK)), None)


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


@dataclass
class LabServer:
    """A running ``jupyter lab`` process serving *root_dir*."""

    root_dir: Path
    home: Path
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def runtime_dir(self) -> Path:
        return self.home / "runtime"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            JUPYTER_CONFIG_DIR=str(self.home / "config"),
            JUPYTER_DATA_DIR=str(self.home / "data"),
            JUPYTER_RUNTIME_DIR=str(self.runtime_dir),
            IPYTHONDIR=str(self.home / "ipython"),
            # Isolates the user-level spalloc config file (platformdirs follows XDG on Linux).
            XDG_CONFIG_HOME=str(self.home / "xdg-config"),
            JUPYTER_PLATFORM_DIRS="1",
            PYTHONUNBUFFERED="1",
        )
        for key in [k for k in env if k.startswith("SPALLOC_")]:
            del env[key]
        env.update(self.extra_env)
        return env

    def _configure(self) -> None:
        settings = self.home / "settings"
        # Render every cell (no windowing) so the DOM holds all outputs; no news pop-ups.
        _write_json(
            settings / "@jupyterlab/notebook-extension/tracker.jupyterlab-settings",
            {"windowingMode": "none"},
        )
        _write_json(
            settings / "@jupyterlab/apputils-extension/notification.jupyterlab-settings",
            {"fetchNews": "false", "checkForUpdates": False},
        )
        # No build check either: it costs seconds of CPU on every page load.
        _write_json(
            self.home / "config/labconfig/page_config.json",
            {
                "disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True},
                "buildAvailable": False,
                "buildCheck": False,
            },
        )

    def start(self) -> None:
        self._configure()
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--allow-root",
            "--no-browser",
            "--ip=127.0.0.1",
            "--port=0",
            "--ServerApp.port_retries=0",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            "--LabApp.expose_app_in_browser=True",
            # Notebook 7 (same server) exposes its app as window.jupyterapp too.
            "--JupyterNotebookApp.expose_app_in_browser=True",
            f"--LabApp.user_settings_dir={self.home / 'settings'}",
            f"--LabApp.workspaces_dir={self.home / 'workspaces'}",
            f"--ServerApp.root_dir={self.root_dir}",
        ]
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.root_dir,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + LAB_START_TIMEOUT
        while time.monotonic() < deadline:
            match = _URL_RE.search(self.log_path.read_text(errors="replace"))
            if match:
                self.port = int(match.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("jupyter lab did not start:\n" + self.log_tail())

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def new_lab(tmp_path: Path, extra_env: Mapping[str, str] | None = None) -> LabServer:
    """Create (not start) a lab server rooted in a fresh directory under *tmp_path*."""
    root = tmp_path / "notebooks"
    root.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    return LabServer(root, home, tmp_path / "jupyter-lab.log", dict(extra_env or {}))


class Notebook:
    """Drives one notebook open in JupyterLab through the page and the app's command registry."""

    def __init__(self, page: Any, lab: LabServer, path: str) -> None:
        self.page = page
        self.lab = lab
        self.path = path

    def open(self) -> Notebook:
        workspace = uuid.uuid4().hex[:12]
        # A unique workspace with ?reset so no tab of an earlier run is restored.
        self.page.goto(f"{self.lab.url}/lab/workspaces/{workspace}/tree/{self.path}?reset")
        self.page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
        self.page.wait_for_function(
            "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            " return !!(w && w.sessionContext && w.sessionContext.session"
            " && w.sessionContext.session.kernel); }",
            timeout=60_000,
        )
        return self

    def command(self, name: str) -> None:
        # Not returned: page.evaluate would wait on the command's promise (which may open a dialog).
        self.page.evaluate(f"() => {{ window.jupyterapp.commands.execute({json.dumps(name)}); }}")

    def run_all(self, timeout: float = 90.0) -> None:
        """Clear outputs, run every cell, and wait until each code cell has an execution count."""
        self.command("notebook:clear-all-cell-outputs")
        self.page.wait_for_function(
            "() => window.jupyterapp.shell.currentWidget.content.widgets"
            ".every(c => c.model.type !== 'code' || c.model.executionCount === null)"
        )
        self.command("notebook:run-all-cells")
        self.wait_executed(timeout=timeout)

    def cell_states(self) -> list[dict[str, Any]]:
        """Per cell: type, execution count, error outputs and stderr texts."""
        return list(
            self.page.evaluate(
                """() => window.jupyterapp.shell.currentWidget.content.widgets.map(c => {
                    const texts = sel => Array.from(c.node.querySelectorAll(sel))
                        .map(e => e.innerText);
                    const code = c.model.type === 'code';
                    return {
                        type: c.model.type,
                        count: code ? c.model.executionCount : null,
                        errors: code ? texts('[data-mime-type="application/vnd.jupyter.error"]')
                                     : [],
                        stderr: code ? texts('[data-mime-type="application/vnd.jupyter.stderr"]')
                                     : [],
                    };
                })"""
            )
        )

    def wait_executed(self, timeout: float = 90.0) -> None:
        """Wait until every code cell ran; fail at once on an error (warnings are fine)."""
        deadline = time.monotonic() + timeout
        states: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            states = self.cell_states()
            # A magic's UsageError arrives as stderr text only, so stderr is screened too.
            errors = [e for s in states for e in s["errors"]]
            errors += [e for s in states for e in s["stderr"] if _STDERR_ERROR.search(e)]
            if errors:
                raise AssertionError("a cell failed:\n" + "\n---\n".join(errors))
            if all(s["type"] != "code" or s["count"] is not None for s in states):
                return
            self.page.wait_for_timeout(250)
        raise AssertionError(f"cells did not finish within {timeout}s: {states}")

    def output(self, index: int) -> Any:
        """Locator for the output area of cell *index* (0-based, markdown included)."""
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea")

    def code_cell_index(self, needle: str) -> int:
        """Index of the first cell whose source contains *needle*."""
        sources: list[str] = self.page.evaluate(
            "() => window.jupyterapp.shell.currentWidget.content.widgets"
            ".map(c => c.model.sharedModel.getSource())"
        )
        for i, src in enumerate(sources):
            if needle in src:
                return i
        raise AssertionError(f"no cell contains {needle!r}")

    def restart_kernel(self, timeout: float = 60.0) -> None:
        """Restart through the Kernel menu, accept the dialog, wait until the kernel is idle."""
        # Record status changes from now on: "idle" alone could be the old kernel's.
        self.page.evaluate(
            """() => { const ctx = window.jupyterapp.shell.currentWidget.sessionContext;
                window.__labStatuses = [];
                ctx.statusChanged.connect((_, s) => window.__labStatuses.push(s)); }"""
        )
        self.command("kernelmenu:restart")
        self.page.locator(".jp-Dialog .jp-mod-accept").click()
        self.page.wait_for_selector(".jp-Dialog", state="detached")
        self.page.wait_for_function(
            """() => { const s = window.__labStatuses;
                return s.includes('restarting') && s[s.length - 1] === 'idle'; }""",
            timeout=timeout * 1000,
        )


def copy_notebook(src: Path, dest_dir: Path, edit: Mapping[str, str] | None = None) -> str:
    """Copy a notebook into the lab root, replacing text in its cells' sources."""
    import nbformat

    book = nbformat.read(src, as_version=4)
    for old, new in (edit or {}).items():
        hits = [cell for cell in book.cells if old in cell.source]
        assert hits, f"{src.name} no longer contains {old!r}"
        for cell in hits:
            cell.source = cell.source.replace(old, new)
    nbformat.write(book, dest_dir / src.name)
    return src.name


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> float:
    """Poll *predicate* (bounded); return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def our_jobs(emulator: Any) -> list[Any]:
    """The jobs the notebooks under test created (owner ``OWNER``) on *emulator*."""
    return [job for job in emulator.jobs() if job.owner == OWNER]
