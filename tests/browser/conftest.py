"""Fixtures for the real-browser stage (see ``labdriver`` for the driver itself)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .labdriver import (
    ARTIFACTS,
    CHROMIUM_ARGS,
    OWNER,
    LabServer,
    find_chromium,
    new_lab,
    require,
)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path to the system Chromium (Playwright cannot download browsers here)."""
    path = find_chromium()
    require(path is not None, "Chromium is not installed (run .ci/browser-setup.sh)")
    for module in ("playwright", "jupyterlab"):
        try:
            __import__(module)
        except ImportError:
            require(False, f"{module} is not installed (pip install -e '.[browser]')")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Screenshots and logs worth keeping after a run (gitignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    """One headless Debian Chromium for the session, launched through Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, artifacts_dir: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser page; on failure its screenshot and console log are kept."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    pg = context.new_page()
    console: list[str] = []
    pg.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    try:
        yield pg
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            name = re.sub(r"\W+", "_", request.node.name)
            pg.screenshot(path=str(artifacts_dir / f"FAILED-{name}.png"))
            (artifacts_dir / f"FAILED-{name}-console.log").write_text("\n".join(console))
        context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Lets the page fixture see whether the test body failed.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def lab_emulator(chromium_path: str) -> Iterator[Any]:
    """The spalloc server the notebooks' kernels use, owned by the test so it can be asked.

    A short power delay lets the widget show the job coming up rather than only its end state.
    """
    from spalloc.emulator import Emulator

    with Emulator(power_delay=0.5, free_delay=0.1) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def lab(lab_emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """One JupyterLab server for the session; its kernels talk to ``lab_emulator``."""
    env = {
        "SPALLOC_HOSTNAME": lab_emulator.host,
        "SPALLOC_PORT": str(lab_emulator.port),
        "SPALLOC_OWNER": OWNER,
    }
    server = new_lab(tmp_path_factory.mktemp("lab"), env)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "jupyter-lab.log").write_text(server.log_tail(200_000))
