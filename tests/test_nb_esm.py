"""Each widget's ``_esm`` is its own module with ``shared.js`` joined in (read once)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from spalloc_nb.widgets._esm import SHARED, widget_esm
from spalloc_nb.widgets.boardmap import BoardMap
from spalloc_nb.widgets.job import JobStatus

WIDGETS = Path(__file__).resolve().parent.parent / "spalloc_nb" / "widgets"


@pytest.mark.parametrize(("cls", "name"), [(JobStatus, "jobstatus.js"), (BoardMap, "boardmap.js")])
def test_widget_module_is_standalone_with_the_shared_helpers(cls: type, name: str) -> None:
    esm = cls._esm  # type: ignore[attr-defined]
    assert isinstance(esm, str) and esm is widget_esm(name)  # read once, at import
    shared = (WIDGETS / SHARED).read_text(encoding="utf-8")
    assert esm.count(shared) == 1
    assert not re.search(r"^import ", esm, re.MULTILINE)  # standalone: nothing to resolve
    own = (WIDGETS / name).read_text(encoding="utf-8")
    assert 'from "./shared.js";' in own
    assert "export default { render };" in esm and esm.endswith(own.rsplit("\n\n", 1)[-1])


def test_a_module_without_the_shared_import_is_refused() -> None:
    with pytest.raises(ValueError, match=r"must import \./shared\.js once"):
        widget_esm(SHARED)
