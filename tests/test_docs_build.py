"""The documentation site builds cleanly and keeps up with the code.

One Sphinx build (``sphinx-build -W --keep-going -b html docs OUT``, as README.md says; the
example notebooks are executed against the embedded emulator during it) serves every check:

* no warning at all;
* every name in the ``__all__`` of ``spalloc``, ``spalloc.exceptions``, ``spalloc.config``,
  ``spalloc.emulator`` and ``spalloc_nb`` has an entry in the API reference (read from the
  build's ``objects.inv``, so a name added to an ``__all__`` later is checked too);
* every command-line tool has a page listing every one of its options;
* every example notebook is a page with outputs produced by this build;
* the configuration page documents exactly the keys that exist.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PUBLIC_MODULES = [
    "spalloc",
    "spalloc.exceptions",
    "spalloc.config",
    "spalloc.emulator",
    "spalloc_nb",
]
TOOLS = {
    "spalloc": "spalloc.cli.alloc",
    "spalloc-job": "spalloc.cli.job",
    "spalloc-ps": "spalloc.cli.ps",
    "spalloc-machine": "spalloc.cli.machine",
    "spalloc-where-is": "spalloc.cli.where_is",
    "spalloc-emulator": "spalloc.emulator.__main__",
}
BUILD_TIMEOUT = 600

pytestmark = pytest.mark.slow


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True)
class Build:
    """One finished build: where it is and what Sphinx said."""

    out: Path
    returncode: int
    log: str

    def page(self, name: str) -> str:
        return (self.out / f"{name}.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    try:
        import myst_nb  # noqa: F401
        import sphinx  # noqa: F401
    except ImportError as exc:  # the docs extra is part of the test extra: CI has it
        if _in_ci():
            pytest.fail(f"the docs extra is not installed: {exc}", pytrace=False)
        pytest.skip(f"the docs extra is not installed (pip install -e '.[docs]'): {exc}")
    base = tmp_path_factory.mktemp("docs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPALLOC_")}
    # The machine's own spalloc, IPython and Jupyter settings must not leak into the kernels
    # that run the notebooks.
    env.update(
        IPYTHONDIR=str(base / "ipython"),
        JUPYTER_CONFIG_DIR=str(base / "jupyter"),
        XDG_CONFIG_HOME=str(base / "xdg"),
        PYTHONWARNINGS="ignore",
    )
    out = base / "html"
    with contextlib.ExitStack() as held:
        for port in sorted(_stored_ports()):
            held.enter_context(_hold_port(port))
        proc = _sphinx(base, out, env)
    return Build(out, proc.returncode, proc.stdout + proc.stderr)


def _stored_ports() -> set[str]:
    ports: set[str] = set()
    for notebook in (ROOT / "examples").glob("*.ipynb"):
        ports |= _emulator_ports(notebook.read_text(encoding="utf-8"))
    return ports


@contextlib.contextmanager
def _hold_port(port: str) -> Iterator[None]:
    """Listen on 127.0.0.1:*port* (a port the stored notebooks show) while the docs build, so
    that no emulator of the build can be given it: a port the built pages show then proves
    their outputs fresh. A port in use already cannot be given out either."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", int(port)))
            sock.listen()
        except OSError:
            pass
        yield


def _sphinx(base: Path, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(base / "doctrees"),
            str(DOCS),
            str(out),
        ],
        cwd=base,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )


def _warnings(log: str) -> list[str]:
    return [
        line
        for line in log.splitlines()
        if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line)
        and "Kernel is running over TCP" not in line
    ]  # jupyter_client, not Sphinx


def test_the_docs_build_without_warnings(build: Build) -> None:
    assert build.returncode == 0 and not _warnings(build.log), build.log[-5000:]


def _inventory(build: Build) -> dict[str, str]:
    """Every documented Python object: full name -> role (``py:class``, ``py:function``…)."""
    from sphinx.util.inventory import InventoryFile

    with open(build.out / "objects.inv", "rb") as stream:
        inventory = InventoryFile.load(stream, "", os.path.join)
    names: dict[str, str] = {}
    for role, entries in inventory.items():
        if role.startswith("py:") and role != "py:module":
            for name in entries:
                names[name] = role
    return names


def _resolve(name: str) -> Any:
    """The object a documented name stands for (``spalloc.job.Job.destroy`` …), or None."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                value = getattr(value, attr)
        except AttributeError:
            return None
        return value
    return None


def _public_names() -> list[tuple[str, str, Any]]:
    names = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            names.append((module_name, name, getattr(module, name)))
    return names


def test_every_public_name_has_a_documented_entry(build: Build) -> None:
    if build.returncode != 0:
        pytest.fail("the docs did not build", pytrace=False)
    inventory = _inventory(build)
    # A re-exported object may be documented under one name only (spalloc.ProtocolError is
    # documented as spalloc.exceptions.ProtocolError): match objects by identity too.
    documented = {
        id(obj)
        for obj in map(_resolve, inventory)
        if obj is not None and (inspect.isclass(obj) or callable(obj))
    }
    missing = [
        f"{module}.{name}"
        for module, name, obj in _public_names()
        if f"{module}.{name}" not in inventory and id(obj) not in documented
    ]
    assert not missing, f"public names without an entry in the API reference: {missing}"


def test_public_classes_and_functions_have_docstrings() -> None:
    bare = [
        f"{module}.{name}"
        for module, name, obj in _public_names()
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and not inspect.getdoc(obj)
    ]
    assert not bare, f"public names without a docstring: {bare}"


def _cli_extension() -> Any:
    """docs/_ext/spalloc_cli.py, the extension that writes the tools' pages."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("spalloc_cli", DOCS / "_ext" / "spalloc_cli.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_has_a_page_with_every_option(build: Build, tool: str) -> None:
    import argparse

    if build.returncode != 0:
        pytest.fail("the docs did not build", pytrace=False)
    parser = _cli_extension().parser_of(importlib.import_module(TOOLS[tool]))
    assert parser.prog == tool
    html = build.page(f"cli/{tool}")
    assert re.search(rf"<title>{re.escape(tool)} - ", html)
    options = [
        option
        for action in parser._actions
        if action.help != argparse.SUPPRESS
        for option in action.option_strings
    ]
    assert "--hostname" in options or tool == "spalloc-emulator"
    for option in options:
        assert f'id="cmdoption-{tool}-{option.lstrip("-")}"' in html, (tool, option)
    if parser.epilog:
        assert "Exit codes" in html and parser.epilog.split("\n")[1].split()[1] in html


def _emulator_ports(text: str) -> set[str]:
    return set(re.findall(r"built-in emulator at 127\.0\.0\.1:(\d+)", text))


def test_every_example_notebook_is_rendered_with_fresh_outputs(build: Build) -> None:
    if build.returncode != 0:
        pytest.fail("the docs did not build", pytrace=False)
    notebooks = sorted((ROOT / "examples").glob("*.ipynb"))
    assert notebooks
    index = build.page("index")
    fresh = 0
    for notebook in notebooks:
        html = build.page(f"examples/{notebook.stem}")
        assert 'class="cell_output' in html, notebook.name
        assert f'href="examples/{notebook.stem}.html"' in index, notebook.name
        # Outputs come from this build's run against the emulator, not from the stored file:
        # the outputs say which port the emulator listened on, and the build held the stored
        # files' ports so that its emulators could not be given them.
        built, stored = _emulator_ports(html), _emulator_ports(notebook.read_text())
        if built:
            assert built != stored, notebook.name
            fresh += 1
    assert fresh, "no notebook shows an output of the build's own run"


def test_the_configuration_page_documents_exactly_the_keys_that_exist() -> None:
    from spalloc.config import SpallocConfig

    keys = set(SpallocConfig._fields) - {"sources", "explicit"}
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    table = re.search(r"^## Keys$(.*?)^## ", page, re.S | re.M)
    assert table is not None
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table.group(1), re.M))
    assert documented == keys, (
        f"undocumented keys: {sorted(keys - documented)}; "
        f"documented but gone: {sorted(documented - keys)}"
    )


def test_readme_links_to_the_docs_and_says_how_to_build_them() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/index.md" in readme or "](docs/" in readme
    assert "sphinx-build -W --keep-going -b html docs" in readme


@pytest.mark.parametrize(
    "page",
    ["index", "quickstart", "configuration", "differences", "cli/index", "cli/spalloc-emulator"],
)
def test_cross_references_in_the_pages_resolve(build: Build, page: str) -> None:
    """A ``{class}`` reference to a name that is not documented renders as plain code.

    (Only the pages written here: the API pages also link to the standard library, which
    this offline build cannot resolve.)
    """
    if build.returncode != 0:
        pytest.fail("the docs did not build", pytrace=False)
    html = build.page(page)
    # The article only: the navigation and the autodoc signatures are Sphinx's business.
    article = html[html.index("<article") : html.index("</article>")]
    dangling = []
    for match in re.finditer(r'<code class="xref (py|std)[^"]*"[^>]*>(.*?)</code>', article):
        before = article[: match.start()]
        if before.rfind("<a ") <= before.rfind("</a>"):
            dangling.append(re.sub(r"<[^>]+>", "", match.group(2)))
    assert not dangling, f"{page}: references to nothing: {dangling}"
