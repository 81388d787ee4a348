"""Re-run the example notebooks and store their outputs, as committed to the repository.

    python examples/refresh_outputs.py [NOTEBOOK ...]

Each notebook runs top to bottom in a fresh kernel against the embedded emulator. The stored
outputs are what GitHub and nbviewer show, so no widget state is saved (it would render blank
offline): widget views are dropped and the ``text/html`` summary next to them is kept. ``04-admin.ipynb`` is
also compared strictly by ``tests/test_notebooks.py``, so refresh it after changing a renderer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def refresh(path: Path) -> None:
    """Execute *path* in place; cells tagged ``raises-exception`` may fail, no other may."""
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(book, timeout=120, kernel_name="python3", allow_errors=False,
                            store_widget_state=False, record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    book.metadata.pop("widgets", None)
    # Without saved widget state a widget view can never be drawn again: keep only the
    # static renderings next to it, so no front end tries (and says "model not found").
    for cell in book.cells:
        for output in cell.get("outputs", ()):
            output.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)
            output.get("metadata", {}).pop("application/vnd.jupyter.widget-view+json", None)
    nbformat.write(book, path)


def main(argv: list[str] | None = None) -> int:
    names = sys.argv[1:] if argv is None else argv
    paths = [Path(n) for n in names] or sorted(HERE.glob("*.ipynb"))
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        refresh(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
