"""Sphinx configuration of the spalloc + spalloc_nb documentation.

Build: ``pip install -e '.[docs]' && sphinx-build -W --keep-going -b html docs docs/_build/html``
(CI builds it the same way in tests/test_docs_build.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

from spalloc import __version__  # noqa: E402 - the path above comes first


def _copy_examples() -> None:
    """Copy ``examples/*.ipynb`` beside the pages (``docs/examples/``, gitignored).

    Sphinx reads sources only under ``docs/``; symlinks would do, but MyST resolves a
    notebook's links (``02-cell-magic.ipynb``) from the link's real path, outside ``docs/``.
    Unchanged copies are left alone so that incremental builds stay incremental.
    """
    target = HERE / "examples"
    target.mkdir(exist_ok=True)
    wanted = {path.name: path for path in (HERE.parent / "examples").glob("*.ipynb")}
    for stale in target.glob("*.ipynb"):
        if stale.name not in wanted:
            stale.unlink()
    for name, source in wanted.items():
        copy = target / name
        data = source.read_bytes()
        if not copy.exists() or copy.read_bytes() != data:
            copy.write_bytes(data)


_copy_examples()

project = "spalloc + spalloc_nb"
author = "the spalloc-nb developers"
copyright = "the spalloc-nb developers; GPL-2.0-or-later"
release = version = __version__

extensions = [
    "myst_nb",  # Markdown pages (MyST) and the example notebooks, executed at build time
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # the docstrings' "Args:" / "Returns:" / "Raises:" sections
    "sphinx.ext.viewcode",
    "spalloc_cli",  # docs/_ext: a page per command-line tool from its real parser
    "spalloc_data",  # docs/_ext: an entry for every public constant in an __all__
]

# screenshots/: the before-and-after pictures of the notebook work, for reviewers, not a page.
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "screenshots/README.md"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb", ".rst": "restructuredtext"}
root_doc = "index"

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# -- API reference ---------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# -- The example notebooks: run against the embedded emulator at every build --------------------
nb_execution_mode = "force"
nb_execution_timeout = 120
nb_execution_raise_on_error = True  # only cells tagged "raises-exception" may fail
nb_execution_show_tb = True
# A widget's live view needs a running kernel; the static page shows the HTML summary that
# every spalloc widget carries beside it.
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
nb_merge_streams = True

# -- HTML ----------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"spalloc {version}"
html_static_path: list[str] = []


# -- Each object documented once ----------------------------------------------------------------
#: Modules with a page of their own; ``spalloc`` re-exports some of their names.
OWN_PAGES = {
    "spalloc.exceptions": "api/exceptions",
    "spalloc.config": "api/config",
    "spalloc.emulator": "api/emulator",
    "spalloc_nb": "api/notebook",
}


def _skip_reexports(app, what, name, obj, skip, options):
    """On the ``spalloc`` page, skip names documented on their own module's page."""
    if what == "module" and app.env.docname == "api/spalloc":
        module = getattr(obj, "__module__", None)
        if module in OWN_PAGES:
            return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_reexports)
