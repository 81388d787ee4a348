"""``.. spalloc-data:: MODULE``: an entry for each plain value in ``MODULE.__all__``.

``automodule`` documents a module's classes and functions from ``__all__``, but a constant
(``SECTION``, ``EMULATOR_VERSION``, ``__version__``) only when a ``#:`` comment beside its
definition in *that* module documents it; re-exported constants never. This directive adds an
``autodata`` entry for every other public constant, so each name in ``__all__`` is documented
as soon as it is added.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer, PycodeError
from sphinx.util.docutils import SphinxDirective

__all__ = ["DataDirective", "public_constants", "setup"]


def public_constants(module_name: str) -> list[str]:
    """Names in ``__all__`` that are values (not classes, functions or modules) and have no
    ``#:`` documentation of their own in the module (``automodule`` shows those)."""
    module = importlib.import_module(module_name)
    try:
        documented = {
            name
            for (scope, name) in ModuleAnalyzer.for_module(module_name).find_attr_docs()
            if not scope
        }
    except PycodeError:
        documented = set()
    names = []
    for name in getattr(module, "__all__", ()):
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isroutine(value) or inspect.ismodule(value):
            continue
        if name not in documented:
            names.append(name)
    return names


class DataDirective(SphinxDirective):
    """``.. spalloc-data:: spalloc.config`` documents the module's public constants."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        module_name = self.arguments[0]
        lines: list[str] = []
        for name in public_constants(module_name):
            lines += [f".. autodata:: {module_name}.{name}", ""]
        container = nodes.container()
        self.state.nested_parse(
            StringList(lines, source=module_name), self.content_offset, container
        )
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("spalloc-data", DataDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
