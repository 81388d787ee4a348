"""Smoke test of the browser harness itself on a plain ipywidgets notebook.

If this fails, the problem is the stage (Chromium, JupyterLab, Playwright), not spalloc_nb.
"""

from __future__ import annotations

from typing import Any

import nbformat
import pytest

from .labdriver import LabServer, Notebook

# Lab start-up counts against the first test; keep room for a busy 2-core CI box.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

CELLS = [
    "import ipywidgets as w\n"
    "clicks = w.IntText(value=0, description='clicks')\n"
    "button = w.Button(description='Press me')\n"
    "button.on_click(lambda _b: setattr(clicks, 'value', clicks.value + 1))\n"
    "w.HBox([button, clicks])",
    "print('cells', 1 + 1)",
]


def test_run_all_and_click_a_widget(lab: LabServer, page: Any) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, lab.root_dir / "harness.ipynb")

    notebook = Notebook(page, lab, "harness.ipynb").open()
    notebook.run_all(timeout=60)
    assert "cells 2" in notebook.output(1).inner_text()

    widget = notebook.output(0)
    widget.get_by_role("button", name="Press me").click()
    clicks = widget.locator("input")
    page.wait_for_function("el => el.value === '1'", arg=clicks.element_handle(), timeout=15_000)
