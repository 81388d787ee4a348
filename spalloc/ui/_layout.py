"""The document model of the renderers, and the generic layouts built on it.

A rendered document is a list of lines; a line is a tuple of ``(text, style)`` spans, where
``style`` is a rich style string (``""`` = plain). Here are those types, the shared styles,
:func:`plain`, and the three layouts every tool's output is made of: tables, definition lists
and flowed cells. Everything is re-exported by :mod:`spalloc.ui.render`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

__all__ = [
    "BRIGHT",
    "DIM",
    "HEADER",
    "Cell",
    "Line",
    "Lines",
    "Span",
    "Value",
    "plain",
    "render_cells",
    "render_definitions",
    "render_table",
    "render_timestamp",
    "rstrip",
    "text_line",
]

Span = tuple[str, str]
Line = tuple[Span, ...]
Lines = list[Line]
#: A table cell: text (left-aligned), an int (right-aligned) or either with a style.
Cell = str | int | tuple[str | int, str]

HEADER = "bold underline"
DIM = "dim"
BRIGHT = "bold"


def plain(lines: Iterable[Line]) -> str:
    """The text of a document without styles, lines joined by newlines."""
    return "\n".join("".join(text for text, _ in line) for line in lines)


def text_line(text: str, style: str = "") -> Line:
    """A line of one span (no span for empty text)."""
    return ((text, style),) if text else ()


def rstrip(spans: list[Span]) -> Line:
    """Drop trailing whitespace from a line, however it is split into spans."""
    while spans:
        text, style = spans[-1]
        stripped = text.rstrip()
        if stripped:
            spans[-1] = (stripped, style)
            break
        spans.pop()
    return tuple(spans)


def render_timestamp(timestamp: float | None) -> str:
    """Local time as ``dd/mm/YYYY HH:MM:SS`` (empty when unknown)."""
    if timestamp is None:
        return ""
    return time.strftime("%d/%m/%Y %H:%M:%S", time.localtime(timestamp))


def render_table(rows: Sequence[Sequence[Cell]], separator: str = "  ") -> Lines:
    """Align cells in columns: strings to the left, ints to the right; trailing space stripped."""
    parsed: list[list[tuple[str, str, bool]]] = []
    for row in rows:
        out = []
        for cell in row:
            value, style = cell if isinstance(cell, tuple) else (cell, "")
            right = isinstance(value, int) and not isinstance(value, bool)
            out.append((str(value), style, right))
        parsed.append(out)
    widths: dict[int, int] = {}
    for row_cells in parsed:
        for i, (text, _, _) in enumerate(row_cells):
            widths[i] = max(widths.get(i, 0), len(text))
    lines: Lines = []
    for row_cells in parsed:
        spans: list[Span] = []
        for i, (text, style, right) in enumerate(row_cells):
            if i:
                spans.append((separator, ""))
            pad = " " * (widths[i] - len(text))
            if right:
                spans += [(pad, ""), (text, style)]
            else:
                spans += [(text, style), (pad, "")]
        lines.append(rstrip([s for s in spans if s[0]]))
    return lines


#: A definition value: anything printable with ``str`` or an already-styled document.
Value = str | int | float | None | tuple[int, ...] | Lines


def render_definitions(items: Sequence[tuple[str, Value]], separator: str = ": ") -> Lines:
    """Right-align the keys; continuation lines of a value line up under its first line."""
    if not items:
        return []
    width = max(len(key) for key, _ in items)
    indent = " " * (width + len(separator))
    lines: Lines = []
    for key, value in items:
        if isinstance(value, list):
            body = value or [()]
        else:
            body = [text_line(text) for text in str(value).split("\n")]
        first = ((key.rjust(width) + separator, ""),)
        lines.append(rstrip(list(first + body[0])))
        lines.extend(rstrip([(indent, ""), *rest]) for rest in body[1:])
    return lines


def render_cells(cells: Sequence[Line], width: int = 80, spacing: int = 2) -> Lines:
    """Flow short styled cells into columns of equal width, wrapping at *width*."""
    if not cells:
        return []
    lengths = [sum(len(text) for text, _ in cell) for cell in cells]
    column = max(lengths) + spacing
    lines: list[list[Span]] = [[]]
    used = 0
    for cell, length in zip(cells, lengths, strict=True):
        if used + length > width:
            lines.append([])
            used = 0
        lines[-1] += [*cell, (" " * (column - length), "")]
        used += column
    return [rstrip(line) for line in lines]
