"""The curated public surface of ``spalloc`` stays honest and light."""

import subprocess
import sys

import spalloc


def test_all_names_resolve():
    for name in spalloc.__all__:
        assert getattr(spalloc, name) is not None, name


def test_import_is_light():
    code = (
        "import sys, spalloc\n"
        "heavy = {'IPython', 'ipywidgets', 'rich', 'anywidget', 'traitlets'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_timeouts_are_timeout_errors():
    assert issubclass(spalloc.ProtocolTimeoutError, TimeoutError)
    assert issubclass(spalloc.StateChangeTimeoutError, TimeoutError)
    assert issubclass(spalloc.ProtocolTimeoutError, spalloc.ProtocolError)
    for name in (
        "ProtocolError",
        "SpallocServerException",
        "JobDestroyedError",
        "StateChangeTimeoutError",
        "ConfigError",
    ):
        assert issubclass(getattr(spalloc, name), spalloc.SpallocError)
