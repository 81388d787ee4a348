"""The ES module text of each widget: its own file with ``shared.js`` joined in.

anywidget loads a widget's ``_esm`` as one standalone module (no imports resolved), so the
helpers every front end needs (``shared.js``: noticing a lost kernel, static outputs on
save) are kept once, in their own file, and put in place of each widget module's
``import { ... } from "./shared.js";`` line here. Each module is read once, on first use.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

__all__ = ["SHARED", "widget_esm"]

_HERE = Path(__file__).resolve().parent
#: the file of helpers shared by the widget modules
SHARED = "shared.js"
# The whole import statement, however its names are wrapped over lines.
_IMPORT = re.compile(r'^import \{[^}]*\} from "\./shared\.js";\n', re.MULTILINE)


@functools.cache
def widget_esm(name: str) -> str:
    """The module text of widget file ``name`` with ``shared.js`` in place of its import.

    Raises:
        ValueError: the file does not import ``./shared.js`` exactly once.
    """
    source = (_HERE / name).read_text(encoding="utf-8")
    shared = (_HERE / SHARED).read_text(encoding="utf-8")
    joined, count = _IMPORT.subn(lambda _match: shared, source)
    if count != 1:
        raise ValueError(f"{name} must import ./{SHARED} once (found {count})")
    return joined
