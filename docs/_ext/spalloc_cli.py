"""``.. spalloc-cli:: MODULE``: a command-line tool's reference page, from its real parser.

The page is built from what the tool itself runs: the module docstring (what the tool does),
``build_parser()`` (usage, every option with its help and built-in default, grouped as
``--help`` groups them) and the epilog's exit codes. So the documentation cannot drift from
the options. Options become ``.. option::`` entries (indexed, linkable with ``:option:``).

The directive produces reStructuredText, so it belongs in a ``.rst`` page (in a MyST page the
nested text would be read as Markdown).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

__all__ = ["CliDirective", "parser_of", "setup"]

#: Width of the usage and exit-code blocks (a terminal's, not the reader's window).
WIDTH = 76
_RST_SPECIAL = re.compile(r"([\\*`|_<>\[\]])")


def parser_of(module: Any) -> argparse.ArgumentParser:
    """The tool's parser with the documented (built-in) defaults, not this machine's config."""
    build = getattr(module, "build_parser", None) or module._parser
    if "config" in inspect.signature(build).parameters:
        return build(None)
    return build()


def _escape(text: str) -> str:
    return _RST_SPECIAL.sub(r"\\\1", text)


def _with_width(function: Any) -> str:
    # argparse (and our formatter) size their output from $COLUMNS.
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH + 2)
    try:
        return str(function())
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def _literal(text: str) -> list[str]:
    return ["::", "", *("    " + line for line in text.rstrip().splitlines()), ""]


def _option_signature(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    if not action.option_strings:
        return formatter._metavar_formatter(action, action.dest)(1)[0]
    if action.nargs == 0:
        return ", ".join(action.option_strings)
    args = formatter._format_args(action, action.dest.upper())
    return ", ".join(f"{option} {args}" for option in action.option_strings)


def _help(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    if not action.help:
        return ""
    return formatter._expand_help(action)


def cli_rst(module_name: str) -> list[str]:
    """The reST of one tool's page."""
    module = importlib.import_module(module_name)
    parser = parser_of(module)
    formatter = parser._get_formatter()
    prog = parser.prog
    lines: list[str] = [".. highlight:: text", ""]
    doc = inspect.cleandoc(module.__doc__ or "").splitlines()
    if doc:
        # "``spalloc``: allocate SpiNNaker boards, ..." -> "Allocate SpiNNaker boards, ..."
        summary = re.sub(r"^``[^`]+``(\s*/\s*``[^`]+``)*:\s*", "", doc[0])
        lines += [summary[:1].upper() + summary[1:], *doc[1:], ""]
    elif parser.description:
        lines += [_escape(parser.description), ""]
    lines += [".. rubric:: Usage", "", *_literal(_with_width(parser.format_usage)[7:])]
    lines += [f".. program:: {prog}", ""]
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.help is not argparse.SUPPRESS]
        if not actions:
            continue
        title = {"positional arguments": "Arguments", "options": "Options"}.get(
            group.title or "", (group.title or "").capitalize()
        )
        lines += [f".. rubric:: {title}", ""]
        if group.description:
            lines += [_escape(group.description), ""]
        for action in actions:
            help_text = _escape(_help(action, formatter)) or "\\ "
            if action.option_strings:
                lines += [
                    f".. option:: {_option_signature(action, formatter)}",
                    "",
                    f"   {help_text}",
                    "",
                ]
            else:  # a positional argument: a term, not an option to index
                lines += [f"``{_option_signature(action, formatter)}``", f"   {help_text}", ""]
    epilog = parser.epilog or ""
    if epilog.startswith("exit codes:"):
        lines += [".. rubric:: Exit codes", "", *_literal(epilog.split("\n", 1)[1])]
    return lines


class CliDirective(SphinxDirective):
    """``.. spalloc-cli:: spalloc.cli.ps`` inserts that tool's reference."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        module_name = self.arguments[0]
        self.env.note_dependency(importlib.import_module(module_name).__file__ or "")
        self.env.note_dependency(__file__)
        container = nodes.container()
        self.state.nested_parse(
            StringList(cli_rst(module_name), source=module_name), self.content_offset, container
        )
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("spalloc-cli", CliDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
