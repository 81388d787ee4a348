"""The quick-start notebook in a real JupyterLab, clicked through in Debian's Chromium.

The notebook runs unchanged except that ``%spalloc --local 3`` becomes ``%spalloc 3``: its kernel
then reaches the emulator this test owns (``SPALLOC_HOSTNAME``/``SPALLOC_PORT``), so the test can
ask the server itself whether the boards are off and whether the job died with the kernel. An
emulator inside the kernel would die with it and prove nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .labdriver import EXAMPLES, LabServer, Notebook, copy_notebook, our_jobs, wait_until

# Lab start-up counts against the first test; keep room for a busy 2-core CI box.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

ALLOCATE = "%spalloc --local 3 --name job"


def test_quick_start_widget_power_map_and_restart(
    lab: LabServer, lab_emulator: Any, page: Any, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    name = copy_notebook(
        EXAMPLES / "01-quick-start.ipynb", lab.root_dir, {ALLOCATE: "%spalloc 3 --name job"}
    )
    notebook = Notebook(page, lab, name).open()
    notebook.run_all(timeout=120)

    # The live widget (not the stored HTML fallback) reaches "ready".
    out = notebook.output(notebook.code_cell_index("%spalloc 3 --name job"))
    widget = out.locator(".widget-vbox").first
    expect(widget.locator(".spalloc-job")).to_contain_text("ready", timeout=30_000)
    [job] = our_jobs(lab_emulator)
    assert job.boards and all(lab_emulator.board_power(job.machine, b) for b in job.boards)
    expect(widget).to_contain_text(f"Job {job.job_id}")
    widget.screenshot(path=str(artifacts_dir / "quick-start-widget.png"))

    # Power off from the browser: the server's boards go off, and the widget says so.
    widget.get_by_role("button", name="Power off").click()
    wait_until(
        lambda: not any(lab_emulator.board_power(job.machine, b) for b in job.boards),
        "the job's boards to be powered off",
    )
    expect(widget.locator(".spalloc-job")).to_contain_text("off", timeout=15_000)

    # The map of the job: click one of its boards and read the server's where-is answer.
    widget.get_by_role("button", name="Map").click()
    board_map = widget.locator(".spalloc-boardmap")
    hexes = board_map.locator("polygon[data-i]")
    expect(hexes.first).to_be_visible(timeout=20_000)
    x, y, z = job.boards[-1]
    target = hexes.filter(has=page.locator("title", has_text=f"Board ({x}, {y}, {z})"))
    expect(target).to_have_count(1, timeout=10_000)
    target.click()
    answer = board_map.locator(".sbm-answer")
    expect(answer).to_contain_text("Physical location", timeout=15_000)
    expect(answer).to_contain_text(f"({x}, {y}, {z})")
    expect(answer).to_contain_text(str(job.job_id))
    board_map.screenshot(path=str(artifacts_dir / "quick-start-map.png"))
    page.screenshot(path=str(artifacts_dir / "quick-start-page.png"), full_page=True)

    # Restarting the kernel destroys the job the extension created.
    notebook.restart_kernel()
    wait_until(lambda: not our_jobs(lab_emulator), "the job to be destroyed", timeout=30.0)
    assert job.job_id in lab_emulator.retired_jobs()
