"""The ES module text of each widget: its own file with the local modules it imports joined in.

anywidget loads a widget's ``_esm`` as one standalone module (no imports resolved), so a
front end may still be written as several small ES modules beside it (``shared.js``, the
helpers every front end needs; the board map's ``map*.js``): here each
``import { ... } from "./x.js";`` line of a local file is replaced by that file's text,
itself joined the same way. A module is put in once, before the first module that imports
it (dependency order); later imports of it are dropped, since its names are already in
the one module scope. Each widget is joined once, on first use.
"""

from __future__ import annotations

import collections
import functools
import re
from pathlib import Path

__all__ = ["SHARED", "join_modules", "widget_esm"]

_HERE = Path(__file__).resolve().parent
#: the file of helpers shared by the widget modules
SHARED = "shared.js"
# The whole import statement of a local module, however its names are wrapped over lines.
_IMPORT = re.compile(r'^import \{([^}]*)\} from "\./([\w.-]+\.js)";\n', re.MULTILINE)
# Any other import of a local file (a default or namespace import, a bare or parent path):
# the join cannot keep its names apart, so it is refused.
_OTHER_LOCAL_IMPORT = re.compile(r"""^import\b[^;]*?["']\.\.?/""", re.MULTILINE)
# A top-level declaration (at the start of a line), exported or not.
_DECLARATION = re.compile(
    r"^(?:export\s+)?(?:async\s+)?(?:function\*?|const|let|var|class)\s+([A-Za-z_$][\w$]*)",
    re.MULTILINE,
)
_EXPORT_DEFAULT = re.compile(r"^export default\b", re.MULTILINE)


def _read(directory: Path, name: str, importer: str | None) -> str:
    path = directory / name
    if not path.is_file():
        where = f"{importer} imports ./{name}" if importer else f"widget module {name}"
        raise ValueError(f"{where}, which does not exist in {directory}")
    return path.read_text(encoding="utf-8")


def _imported_names(clause: str, importer: str, name: str) -> list[str]:
    names = [part.strip() for part in clause.split(",") if part.strip()]
    for imported in names:
        if not re.fullmatch(r"[A-Za-z_$][\w$]*", imported):
            # "a as b" cannot be honoured: the joined text keeps each module's own names.
            raise ValueError(
                f"{importer}: cannot join `{imported}` from ./{name} (plain names only)"
            )
    return names


def _join(
    directory: Path, name: str, importer: str | None, done: set[str], stack: list[str]
) -> str:
    """``name``'s text with its local imports joined; empty if already in ``done``."""
    if name in stack:
        cycle = " -> ".join([*stack[stack.index(name) :], name])
        raise ValueError(f"local imports form a cycle: {cycle}")
    if name in done:
        return ""
    source = _read(directory, name, importer)
    if importer is not None and _EXPORT_DEFAULT.search(source):
        raise ValueError(f"{name} is imported by {importer} but has its own `export default`")
    stack.append(name)

    def joined(match: re.Match[str]) -> str:
        dep = match.group(2)
        wanted = _imported_names(match.group(1), name, dep)
        text = _join(directory, dep, name, done, stack)
        declared = set(_DECLARATION.findall(_read(directory, dep, name)))
        missing = [w for w in wanted if w not in declared]
        if missing:
            raise ValueError(
                f"{name} imports {', '.join(missing)} from ./{dep}, which does not define it"
            )
        return text

    body = _IMPORT.sub(joined, source)
    stack.pop()
    other = _OTHER_LOCAL_IMPORT.search(body)
    if other:
        line = body[other.start() :].split("\n", 1)[0]
        raise ValueError(
            f'{name}: unsupported local import `{line}` (use import {{ ... }} from "./x.js";)'
        )
    done.add(name)
    return body


def join_modules(directory: Path, name: str) -> str:
    """The text of module ``name`` in ``directory`` with every local module it imports joined in.

    Raises:
        ValueError: ``name`` has no ``export default`` (not a widget module), or does not
            import ``./shared.js``; a local import names a missing file or a name the file
            does not define, or is of a form the join cannot keep; imports form a cycle; or
            two joined modules declare the same top-level name.
    """
    if not _EXPORT_DEFAULT.search(_read(directory, name, None)):
        raise ValueError(f"{name} is not a widget module (no `export default`)")
    done: set[str] = set()
    joined = _join(directory, name, None, done, [])
    if SHARED not in done:
        raise ValueError(f"{name} must import ./{SHARED}")
    counts = collections.Counter(_DECLARATION.findall(joined))
    dupes = sorted(d for d, n in counts.items() if n > 1)
    if dupes:
        raise ValueError(f"{name}: joined modules declare {', '.join(dupes)} more than once")
    return joined


@functools.cache
def widget_esm(name: str) -> str:
    """The module text of widget file ``name``, joined (see `join_modules`); read once."""
    return join_modules(_HERE, name)
