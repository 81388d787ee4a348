"""Each widget's ``_esm`` is its own module with its local modules joined in (read once)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from spalloc_nb.widgets._esm import SHARED, join_modules, widget_esm
from spalloc_nb.widgets.boardmap import BoardMap
from spalloc_nb.widgets.job import JobStatus

WIDGETS = Path(__file__).resolve().parent.parent / "spalloc_nb" / "widgets"
# The board map's own modules, each joined into boardmap.js once.
MAP_MODULES = ["maphex.js", "mapdom.js", "mapboards.js", "mapside.js", "mapzoom.js", "mapinput.js"]


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


def _own_parts(text: str) -> list[str]:
    """A module's text between its local imports (each import is replaced by a module)."""
    parts = re.split(r'^import \{[^}]*\} from "\./[\w.-]+\.js";\n', text, flags=re.MULTILINE)
    return [part for part in parts if part.strip()]


def test_the_board_map_is_joined_from_its_modules_once_each_in_dependency_order() -> None:
    esm = widget_esm("boardmap.js")
    at = {}
    for name in [SHARED, *MAP_MODULES]:
        parts = _own_parts((WIDGETS / name).read_text(encoding="utf-8"))
        assert all(esm.count(part) == 1 for part in parts), name
        at[name] = esm.index(parts[-1])  # where its code is (after its imports)
    # Each module comes before the modules that use it.
    assert at["maphex.js"] < at["mapboards.js"] < at["mapinput.js"]
    assert at["mapdom.js"] < at["mapboards.js"] and at["mapdom.js"] < at["mapside.js"]
    for name in MAP_MODULES:
        assert len((WIDGETS / name).read_text(encoding="utf-8").splitlines()) <= 350, name
    top = re.findall(r"^(?:export )?(?:function|const|let|class) (\w+)", esm, re.MULTILINE)
    assert len(top) == len(set(top))  # no name defined twice


def _modules(directory: Path, **files: str) -> Path:
    for stem, text in files.items():
        (directory / f"{stem}.js").write_text(text, encoding="utf-8")
    return directory


SHARED_TEXT = "export const helper = 1;\n"
USES = 'import { helper } from "./shared.js";\n'
END = "export default {};\n"


def test_local_modules_are_joined_once_before_their_first_user(tmp_path: Path) -> None:
    _modules(
        tmp_path,
        shared=SHARED_TEXT,
        geometry="export const R = 10;\nexport function size() {\n  return R;\n}\n",
        drawing='import { R, size } from "./geometry.js";\nimport { helper } from "./shared.js";\n'
        "export const drawn = R + size() + helper;\n",
        widget='import { helper } from "./shared.js";\nimport { size } from "./geometry.js";\n'
        'import {\n  drawn,\n} from "./drawing.js";\n\nexport default { drawn, size, helper };\n',
    )
    joined = join_modules(tmp_path, "widget.js")
    assert not re.search(r"^import ", joined, re.MULTILINE)
    assert joined.count(SHARED_TEXT) == 1 and joined.count("export const R = 10;") == 1
    assert joined.index(SHARED_TEXT) < joined.index("export const R") < joined.index("drawn = R")
    assert joined.index("drawn = R") < joined.index("export default")


@pytest.mark.parametrize(
    ("files", "error"),
    [
        (
            {"widget": USES + 'import { x } from "./gone.js";\n' + END},
            r"widget\.js imports \./gone\.js, which does not exist",
        ),
        (
            {"widget": 'import { nothing } from "./shared.js";\nexport default {};\n'},
            r"widget\.js imports nothing from \./shared\.js, which does not define it",
        ),
        (
            {
                "widget": 'import { helper } from "./shared.js";\nimport { a } from "./a.js";\n'
                "const helper2 = 1;\nexport default {};\n",
                "a": "export const a = 1;\nconst helper = 2;\n",
            },
            r"joined modules declare helper more than once",
        ),
        (
            {
                "widget": USES + 'import { a } from "./a.js";\n' + END,
                "a": 'import { b } from "./b.js";\nexport const a = 1;\n',
                "b": 'import { a } from "./a.js";\nexport const b = 1;\n',
            },
            r"cycle: a\.js -> b\.js -> a\.js",
        ),
        (
            {"widget": USES + 'import a from "./a.js";\n' + END},
            r"unsupported local import `import a from \"\./a\.js\";`",
        ),
        (
            {"widget": 'import { helper as h } from "./shared.js";\nexport default {};\n'},
            r"cannot join `helper as h`",
        ),
        ({"widget": "export default {};\n"}, r"widget\.js must import \./shared\.js"),
        ({"widget": 'import { helper } from "./shared.js";\n'}, r"not a widget module"),
    ],
    ids=[
        "missing-file",
        "missing-name",
        "duplicate",
        "cycle",
        "default-import",
        "alias",
        "no-shared",
        "no-default",
    ],
)
def test_a_join_that_cannot_work_is_refused_clearly(
    tmp_path: Path, files: dict[str, str], error: str
) -> None:
    _modules(tmp_path, shared=SHARED_TEXT, **files)
    with pytest.raises(ValueError, match=error):
        join_modules(tmp_path, "widget.js")


def test_a_file_that_is_no_widget_module_is_refused() -> None:
    with pytest.raises(ValueError, match=r"shared\.js is not a widget module"):
        widget_esm(SHARED)
