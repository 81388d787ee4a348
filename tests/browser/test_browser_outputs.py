"""Job outputs in JupyterLab while a cell runs, after a restart, and saved then reopened.

The notebook's kernel talks to the emulator this test owns (``SPALLOC_HOSTNAME``/``PORT``),
so the test asks the server itself when a click took effect.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .labdriver import LabServer, Notebook, our_jobs, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

# Screenshots land in test-artifacts/ (gitignored), so a test run leaves the tree clean; set
# SPALLOC_UPDATE_SCREENSHOTS=1 to refresh the committed ones in docs/screenshots/.
_REPO = Path(__file__).resolve().parents[2]
SHOTS = (
    _REPO / "docs" / "screenshots"
    if os.environ.get("SPALLOC_UPDATE_SCREENSHOTS") == "1"
    else _REPO / "test-artifacts" / "screenshots"
)


def write_notebook(lab: LabServer, name: str, sources: list[str]) -> str:
    import nbformat

    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    book.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(book, lab.root_dir / name)
    return name


def run_first_cells(notebook: Notebook) -> None:
    notebook.command("notebook:run-all-cells")


def shot(locator: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    locator.screenshot(path=str(SHOTS / name))


# A job widget in the second cell's output while the third cell keeps the kernel busy.
BUSY_CELLS = [
    "%load_ext spalloc_nb",
    "job = %spalloc 1 --wait --name job\njob",
    "import time\ntime.sleep(30)",
]


def ready_while_busy(page: Any, widget: Any, emulator: Any) -> Any:
    """Wait until *widget* shows its job ready and the third cell runs; return the job."""
    from playwright.sync_api import expect

    expect(widget.locator(".spalloc-job")).to_contain_text("ready", timeout=60_000)
    [job] = our_jobs(emulator)
    # The third cell is running (its prompt shows "*").
    expect(page.locator(".jp-Cell").nth(2).locator(".jp-InputPrompt")).to_contain_text(
        "*", timeout=10_000
    )
    page.wait_for_timeout(500)
    return job


def click_power_off(widget: Any, emulator: Any, job: Any, timeout: float) -> float:
    """Click Power off; return the seconds until the server has every board of *job* off."""
    widget.get_by_role("button", name="Power off").click()
    return wait_until(
        lambda: not any(emulator.board_power(job.machine, b) for b in job.boards),
        "the boards to go off",
        timeout,
    )


def click_destroy(widget: Any, emulator: Any, timeout: float) -> float:
    """Click Destroy and confirm; return the seconds until the server has no job of ours."""
    widget.get_by_role("button", name="Destroy").click()
    widget.get_by_role("button", name="Yes, destroy").click()
    return wait_until(lambda: not our_jobs(emulator), "the job to be destroyed", timeout)


def test_buttons_act_while_a_cell_runs(lab: LabServer, lab_emulator: Any, page: Any) -> None:
    from playwright.sync_api import expect

    name = write_notebook(lab, "busy.ipynb", BUSY_CELLS)
    notebook = Notebook(page, lab, name).open()
    run_first_cells(notebook)
    widget = notebook.output(1).locator(".spalloc-job-widget")
    job = ready_while_busy(page, widget, lab_emulator)

    took = click_power_off(widget, lab_emulator, job, 20)
    print(f"Power off reached the server {took:.2f} s after the click, cell still running")
    assert took < 2.0
    expect(widget.locator(".spalloc-job")).to_contain_text("off", timeout=5_000)
    shot(widget, "after-busy-cell-power-off.png")

    took = click_destroy(widget, lab_emulator, 20)
    print(f"Destroy reached the server {took:.2f} s after the click, cell still running")
    assert took < 2.0
    # The output becomes the job's final static view (no widget left to go stale).
    out = notebook.output(1)
    expect(out).to_contain_text(f"Job {job.job_id} \u2014 destroyed", timeout=10_000)
    expect(out.locator(".spalloc-job-widget")).to_have_count(0)
    shot(out, "after-destroyed-final-view.png")
    assert "*" in page.locator(".jp-Cell").nth(2).locator(".jp-InputPrompt").inner_text()
    notebook.command("kernelmenu:interrupt")


def test_restart_then_shutdown_save_and_reopen(
    lab: LabServer, lab_emulator: Any, page: Any
) -> None:
    from playwright.sync_api import expect

    name = write_notebook(
        lab,
        "lifetime.ipynb",
        [
            "%load_ext spalloc_nb",
            "job = %spalloc 1 --wait --name job\njob",
            "%spalloc machine m4x2",
        ],
    )
    notebook = Notebook(page, lab, name).open()
    notebook.run_all(timeout=120)
    widget = notebook.output(1).locator(".spalloc-job-widget")
    expect(widget.locator(".spalloc-job")).to_contain_text("ready", timeout=30_000)
    [job] = our_jobs(lab_emulator)
    shot(widget, "after-widget-live.png")

    # Restart: the old output must stop saying "ready" at once.
    notebook.restart_kernel()
    wait_until(lambda: not our_jobs(lab_emulator), "the job to be destroyed", 30)
    status = widget.locator(".spalloc-job-status")
    expect(status).to_have_class(lambda_class("spalloc-gone"), timeout=15_000)
    expect(status.locator(".spalloc-job-disconnected")).to_be_visible()
    expect(status.locator(".spalloc-live-row").first).to_be_hidden()
    board_map = notebook.output(2).locator(".spalloc-boardmap")
    expect(board_map.locator(".sbm-status")).to_contain_text("not live", timeout=15_000)
    shot(notebook.output(1), "after-restart-disconnected.png")

    # Saved after the restart and reopened: static outputs that claim nothing live.
    notebook.command("docmanager:save")
    page.wait_for_timeout(1500)
    saved = (lab.root_dir / name).read_text()
    assert "application/vnd.jupyter.widget-view+json" not in saved
    notebook = Notebook(page, lab, name).open()
    expect(notebook.output(1)).to_contain_text(
        "state unknown: this output lost its kernel", timeout=30_000
    )
    expect(notebook.output(2)).to_contain_text("the picture is its last update, not live")
    expect(notebook.output(2).locator("svg polygon")).to_have_count(24)
    text = page.locator(".jp-Notebook").inner_text()
    assert "model not found" not in text and "ready" not in text
    shot(page.locator(".jp-Notebook"), "after-restart-saved-reopened.png")
    widget = notebook.output(1).locator(".spalloc-job-widget")

    # Run again, shut the kernel down, save, reopen: the final static views are shown.
    notebook.run_all(timeout=120)
    expect(widget.locator(".spalloc-job")).to_contain_text("ready", timeout=30_000)
    [job] = our_jobs(lab_emulator)
    notebook.command("kernelmenu:shutdown")
    accept = page.locator(".jp-Dialog .jp-mod-accept")
    page.wait_for_timeout(1000)
    if accept.count():  # JupyterLab asks for confirmation in some versions
        accept.click()
    wait_until(lambda: not our_jobs(lab_emulator), "the job to be destroyed", 30)
    out = notebook.output(1)
    expect(out).to_contain_text(
        f"Job {job.job_id} \u2014 destroyed: Kernel shut down", timeout=15_000
    )
    expect(notebook.output(2)).to_contain_text("no longer live: Kernel shut down", timeout=15_000)
    notebook.command("docmanager:save")
    page.wait_for_timeout(1500)
    reopened = Notebook(page, lab, name).open()
    expect(reopened.output(1)).to_contain_text("destroyed", timeout=30_000)
    text = page.locator(".jp-Notebook").inner_text()
    assert "model not found" not in text
    assert f"Job {job.job_id} \u2014 destroyed: Kernel shut down" in text
    expect(reopened.output(2).locator("svg polygon")).to_have_count(24)
    shot(page.locator(".jp-Notebook"), "after-reopened-final-view.png")


def open_notebook7(page: Any, lab: LabServer, name: str) -> None:
    """Open *name* in Notebook 7 (same server) and start running all its cells."""
    page.goto(f"{lab.url}/notebooks/{name}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function(
        "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " return !!(w && w.sessionContext && w.sessionContext.session"
        " && w.sessionContext.session.kernel); }",
        timeout=60_000,
    )
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def lambda_class(name: str) -> Any:
    import re

    return re.compile(rf"(^|\s){re.escape(name)}(\s|$)")


def test_notebook7_buttons_while_a_cell_runs(lab: LabServer, lab_emulator: Any, page: Any) -> None:
    """Notebook 7 shares JupyterLab's kernel services: clicks reach a subshell there too."""
    pytest.importorskip("notebook")
    name = write_notebook(lab, "busy7.ipynb", BUSY_CELLS)
    open_notebook7(page, lab, name)
    widget = page.locator(".jp-Cell").nth(1).locator(".spalloc-job-widget")
    job = ready_while_busy(page, widget, lab_emulator)
    took = click_power_off(widget, lab_emulator, job, 40)
    print(f"Notebook 7: Power off reached the server {took:.2f} s after the click")
    assert took < 2.0
    took = click_destroy(widget, lab_emulator, 40)
    print(f"Notebook 7: Destroy reached the server {took:.2f} s after the click")
    assert took < 2.0
    shot(page.locator(".jp-Notebook"), "after-notebook7-busy-cell.png")
    page.evaluate("() => { window.jupyterapp.commands.execute('kernelmenu:interrupt'); }")


Box = dict[str, float]


def inside(inner: Box, outer: Box, slack: float = 1.0) -> bool:
    """Whether box *inner* lies within box *outer* (bounding boxes, CSS pixels)."""
    return (
        inner["x"] >= outer["x"] - slack
        and inner["y"] >= outer["y"] - slack
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + slack
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + slack
    )


def assert_legend_in_view(board_map: Any) -> None:
    """At fit, the legend is fully inside the widget and the widget inside the notebook view.

    The widget's top is scrolled to the top of the notebook's view first, as a reader does.
    """
    board_map.evaluate("e => e.scrollIntoView({block: 'start'})")
    board_map.page.wait_for_timeout(300)
    boxes = board_map.evaluate(
        """e => {
            const box = (n) => { const r = n.getBoundingClientRect();
                return {x: r.x, y: r.y, width: r.width, height: r.height}; };
            const legend = e.querySelector('.sbm-legend');
            return {
                widget: box(e),
                legend: box(legend),
                rows: [...legend.querySelectorAll('.sbm-legend-row')].map(box),
                view: box(e.closest('.jp-WindowedPanel-outer')),
                hiddenInLegend: legend.scrollHeight - legend.clientHeight,
            };
        }"""
    )
    widget, legend, view = boxes["widget"], boxes["legend"], boxes["view"]
    assert inside(legend, widget), ("legend outside the widget", legend, widget)
    assert all(inside(row, legend) for row in boxes["rows"]), "a legend row sticks out"
    assert boxes["hiddenInLegend"] <= 1, "legend rows hidden behind its scroll bar"
    assert inside(widget, view), ("at fit the widget (legend included) is cut off", widget, view)


@pytest.mark.parametrize("ui", ["lab", "notebook7"])
def test_big_machine_map_at_fit_zoom(lab: LabServer, page: Any, ui: str) -> None:
    """A 1200-board machine with 30 jobs: readable, filling the frame, compact legend in view."""
    from playwright.sync_api import expect

    from spalloc.client import ProtocolClient
    from spalloc.emulator import Emulator
    from tests.conftest import standard_machine

    if ui == "notebook7":
        pytest.importorskip("notebook")
    big = standard_machine("big", {"default"}, 20, 20, "127.70.0.0")
    with (
        Emulator([big], free_delay=0.01) as emulator,
        ProtocolClient(*emulator.address, timeout=10) as client,
    ):
        for i in range(30):
            client.create_job(
                1 + i % 12, owner=f"user{i}@example.org", keepalive=None, machine="big"
            )
        name = write_notebook(
            lab,
            f"big-{ui}.ipynb",
            [
                "from spalloc_nb.widgets.boardmap import BoardMap\n"
                f"BoardMap.for_machine(({emulator.host!r}, {emulator.port}), 'big',"
                " owner='user3@example.org')",
            ],
        )
        if ui == "lab":
            notebook = Notebook(page, lab, name).open()
            notebook.run_all(timeout=120)
            out = notebook.output(0)
        else:
            open_notebook7(page, lab, name)
            out = page.locator(".jp-Notebook .jp-Cell").nth(0).locator(".jp-OutputArea")
        board_map = out.locator(".spalloc-boardmap")
        expect(board_map.locator("polygon[data-i]")).to_have_count(1200, timeout=30_000)
        expect(board_map.locator(".sbm-legend-row")).to_have_count(30, timeout=30_000)
        page.wait_for_timeout(500)
        svg = board_map.locator("svg.sbm-svg").bounding_box()
        frame = board_map.bounding_box()
        hexagon = board_map.locator("polygon[data-i]").first.bounding_box()
        legend = board_map.locator(".sbm-legend").bounding_box()
        assert svg is not None and frame is not None and hexagon is not None and legend
        print(
            f"{ui}: 1200-board map at fit: map {svg['width']:.0f}x{svg['height']:.0f} px in a "
            f"{frame['width']:.0f}x{frame['height']:.0f} px widget; hexagon "
            f"{hexagon['width']:.1f}x{hexagon['height']:.1f} px; legend "
            f"{legend['height']:.0f} px high"
        )
        # The whole machine is visible at fit, within the viewport height.
        assert svg["height"] <= 0.75 * 900 + 2
        # The legend stays compact however many jobs there are.
        assert legend["height"] <= 0.25 * 900
        assert_legend_in_view(board_map)
        # Letters are either readable or hidden (hover and zoom show them).
        small = "sbm-small" in (board_map.get_attribute("class") or "")
        label_px = (
            6
            * svg["width"]
            / float(board_map.locator("svg.sbm-svg").get_attribute("viewBox").split()[2])
        )
        assert small == (label_px < 7), (small, label_px)
        suffix = "" if ui == "lab" else "-notebook7"
        shot(board_map, f"after-big-map-fit{suffix}.png")
        board_map.locator(".sbm-zoom-in").click()
        board_map.locator(".sbm-zoom-in").click()
        page.wait_for_timeout(300)
        assert "sbm-small" not in (board_map.get_attribute("class") or "")
        shot(board_map, f"after-big-map-zoomed{suffix}.png")
        # Back to fit: the legend is in view again.
        board_map.locator(".sbm-zoom-fit").click()
        page.wait_for_timeout(300)
        assert_legend_in_view(board_map)


def test_saved_widget_state_reopened_without_its_kernel_is_not_live(
    lab: LabServer, lab_emulator: Any, browser: Any
) -> None:
    """With "save widget state" on, a reopened widget is drawn from saved state: not live."""
    import json

    from playwright.sync_api import expect

    settings = lab.home / "settings/@jupyter-widgets/jupyterlab-manager/plugin.jupyterlab-settings"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"saveState": True}))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    try:
        page = context.new_page()
        name = write_notebook(
            lab,
            "state.ipynb",
            [
                "%load_ext spalloc_nb",
                "job = %spalloc 1 --wait --name job\njob",
                "%spalloc machine m4x2",
            ],
        )
        notebook = Notebook(page, lab, name).open()
        notebook.run_all(timeout=120)
        expect(notebook.output(1).locator(".spalloc-job")).to_contain_text("ready")
        expect(notebook.output(2).locator(".sbm-status")).to_contain_text("live")
        notebook.command("docmanager:save")
        page.wait_for_timeout(1500)
        saved = json.loads((lab.root_dir / name).read_text())
        assert saved["metadata"].get("widgets"), "the widget state was saved"
        # Shut the kernel down and leave without saving again: the file keeps the state
        # saved while the job was live.
        page.evaluate("() => window.jupyterapp.serviceManager.kernels.shutdownAll()")
        page.close()
        wait_until(lambda: not our_jobs(lab_emulator), "the job to be destroyed", 30)

        page = context.new_page()
        reopened = Notebook(page, lab, name).open()
        status = reopened.output(1).locator(".spalloc-job-status")
        expect(status.locator(".spalloc-job-disconnected")).to_be_visible(timeout=30_000)
        expect(status.locator(".spalloc-live-row").first).to_be_hidden()
        expect(reopened.output(2).locator(".sbm-status")).to_contain_text("not live")
        assert "model not found" not in page.locator(".jp-Notebook").inner_text()
        shot(page.locator(".jp-Notebook"), "after-reopened-saved-widget-state.png")
    finally:
        settings.unlink()
        context.close()
