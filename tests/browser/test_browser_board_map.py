"""The board-map notebook in JupyterLab: the machine map follows the server live.

As for the quick start, the notebook's kernel talks to the emulator this test owns (its
``%config SpallocMagics.hostname = "local"`` line is dropped so ``SPALLOC_HOSTNAME`` applies);
the test then creates and destroys a job of its own and watches the map in the browser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .labdriver import EXAMPLES, LabServer, Notebook, copy_notebook

# Lab start-up counts against the first test; keep room for a busy 2-core CI box.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

USE_LOCAL = '%config SpallocMagics.hostname = "local"'


def job_of(emulator: Any, owner: str) -> Any:
    [job] = [job for job in emulator.jobs() if job.owner == owner]
    return job


def test_machine_map_shows_jobs_come_and_go(
    lab: LabServer, lab_emulator: Any, page: Any, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    from spalloc import Job

    name = copy_notebook(
        EXAMPLES / "03-board-map.ipynb",
        lab.root_dir,
        {USE_LOCAL: "# the server comes from SPALLOC_HOSTNAME/SPALLOC_PORT"},
    )
    notebook = Notebook(page, lab, name).open()
    notebook.run_all(timeout=120)

    board_map = notebook.output(notebook.code_cell_index("%spalloc machine m4x2")).locator(
        ".spalloc-boardmap"
    )
    expect(board_map.locator("polygon[data-i]")).to_have_count(24, timeout=20_000)
    legend = board_map.locator(".sbm-legend-row")
    alice = job_of(lab_emulator, "alice@example.org")
    # Bob's job was on the map when it was drawn; the notebook destroyed it afterwards.
    expect(legend).to_have_count(1, timeout=15_000)
    expect(legend.first).to_contain_text(f"job {alice.job_id} · alice@example.org")

    # A job made outside the notebook appears on the map, then vanishes when destroyed.
    with Job(
        1,
        hostname=lab_emulator.host,
        port=lab_emulator.port,
        owner="carol@example.org",
        machine="m4x2",
        config_filenames=[],
    ) as carol:
        carol.wait_until_ready(timeout=30)
        row = board_map.locator(f'.sbm-legend-row[data-job="{carol.id}"]')
        expect(row).to_contain_text("carol@example.org", timeout=15_000)
        board_map.screenshot(path=str(artifacts_dir / "board-map-live.png"))
    expect(row).to_have_count(0, timeout=15_000)
    expect(legend).to_have_count(1)
