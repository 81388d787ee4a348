"""Widgets of the notebook extension (ipywidgets; loaded on first use)."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["JobWidget"]

_LAZY = {"JobWidget": "spalloc_nb.widgets.job"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spalloc_nb.widgets' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
