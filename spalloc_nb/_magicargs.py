"""The arguments of ``%spalloc`` and ``%%spalloc``: parsers built from the same option
definitions as the ``spalloc`` command-line tool (:mod:`spalloc.ui.options`), and the small
rewrites and checks a notebook line needs (a subcommand after options, where-is forms as
keywords, a chip inside the job it names).

User mistakes become IPython's one-line :class:`~IPython.core.error.UsageError`.
"""

from __future__ import annotations

import shlex
from types import SimpleNamespace
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from spalloc_nb._registry import registry

__all__ = [
    "SERVER_OPTIONS",
    "SUBCOMMANDS",
    "HelpRequested",
    "Parser",
    "alloc_parser",
    "check_job_chip",
    "split_line",
    "subcommand_first",
    "subcommand_parser",
    "where_kwargs",
]

SUBCOMMANDS = ("ps", "machines", "machine", "job", "destroy", "where-is", "jobs")

_SUBCOMMAND_HELP = {
    "ps": "List the live jobs.",
    "machines": "List the machines and their load.",
    "machine": "Show one machine: its load, jobs and board map.",
    "job": "Show (and keep alive) an existing job as a live widget.",
    "destroy": "Destroy a job by id.",
    "where-is": "Find a board or chip by logical, physical, chip or job-chip coordinates.",
}

# Options of %spalloc that take a value (the others are flags), so that options written
# before a subcommand can be stepped over: ``%spalloc -H host -P 1234 machine m``.
_VALUED = {
    "--hostname",
    "-H",
    "--port",
    "-P",
    "--timeout",
    "--owner",
    "--keepalive",
    "--reconnect-delay",
    "--ignore_version",
    "--name",
    "--machine",
    "-m",
    "--tags",
    "-t",
    "--min-ratio",
    "--max-dead-boards",
    "--max-dead-links",
    "--resume",
    "-r",
}

#: The options that name a server (a command naming one makes the kernel remember it).
SERVER_OPTIONS = frozenset({"--hostname", "-H", "--port", "-P", "--local"})


class HelpRequested(Exception):
    """``-h`` was given: the help has been printed, nothing else to do."""


class Parser(MagicArgumentParser):
    """A ``MagicArgumentParser`` whose ``-h`` prints help instead of exiting the kernel."""

    def __init__(self, prog: str, description: str | None = None) -> None:
        super().__init__(prog=prog, description=description, add_help=True)

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        raise HelpRequested()


def split_line(line: str) -> list[str]:
    """The words of a magic's line, as a shell would split them."""
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%spalloc: {exc}") from None


def alloc_parser(cell: bool, defaults: SimpleNamespace, default_name: str) -> Parser:
    """The parser of an allocation: ``%spalloc [WHAT] ...`` or ``%%spalloc [WHAT] ...``."""
    from spalloc.ui.options import add_job_options, add_server_options

    prog = "%%spalloc" if cell else "%spalloc"
    parser = Parser(
        prog,
        "Allocate SpiNNaker boards."
        if not cell
        else "Allocate boards, run the cell with the job bound to a name, then destroy the job.",
    )
    add_job_options(parser, defaults)
    add_server_options(parser, defaults, owner=True, keepalive=True)
    group = parser.add_argument_group("notebook arguments")
    group.add_argument(
        "--name",
        metavar="VAR",
        help="bind the job to this variable" + (f" (default: {default_name})" if cell else ""),
    )
    if cell:
        group.add_argument(
            "--keep",
            "--no-destroy",
            "-D",
            action="store_true",
            help="do not destroy the job when the cell ends",
        )
    else:
        group.add_argument(
            "--wait", action="store_true", help="block until the job is ready, showing progress"
        )
    return parser


def subcommand_parser(name: str, defaults: SimpleNamespace) -> Parser:
    """The parser of ``%spalloc <name> ...``, one of :data:`SUBCOMMANDS` but ``jobs``."""
    from spalloc.ui.options import add_server_options

    parser = Parser(f"%spalloc {name}", _SUBCOMMAND_HELP[name])
    add_server_options(parser, defaults)
    if name == "ps":
        parser.add_argument("--owner", "-o", help="only jobs of this owner")
        parser.add_argument("--machine", "-m", help="only jobs on this machine")
    elif name == "machine":
        parser.add_argument("machine_name", metavar="NAME", help="the machine")
    elif name == "job":
        parser.add_argument("job_id", type=int, metavar="ID", help="the job's id")
    elif name == "destroy":
        parser.add_argument("job_id", type=int, metavar="ID", help="the job's id")
        parser.add_argument("reason", nargs="*", metavar="REASON", help="why")
    elif name == "where-is":
        forms = parser.add_mutually_exclusive_group(required=True)
        forms.add_argument(
            "--board", "--logical", "-b", "-l", nargs=4, metavar=("MACHINE", "X", "Y", "Z")
        )
        forms.add_argument(
            "--physical", "-p", nargs=4, metavar=("MACHINE", "CABINET", "FRAME", "BOARD")
        )
        forms.add_argument("--chip", "-c", nargs=3, metavar=("MACHINE", "X", "Y"))
        forms.add_argument("--job-chip", "-j", nargs=3, metavar=("JOB_ID", "X", "Y"), type=int)
    return parser


def subcommand_first(tokens: list[str]) -> list[str]:
    """Move a subcommand written after options to the front; anything else is unchanged."""
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in SUBCOMMANDS:
            return [token, *tokens[:i], *tokens[i + 1 :]] if i else tokens
        if not token.startswith("-") or token == "-":
            return tokens  # a positional (e.g. WHAT): an allocation
        if token in _VALUED:
            i += 1  # its value, which may look like a subcommand ("--machine machine")
        i += 1
    return tokens


def where_kwargs(args: Any) -> dict[str, Any]:
    """The ``where_is`` keywords of a parsed ``%spalloc where-is`` line."""

    def ints(values: list[str]) -> list[int]:
        try:
            return [int(v) for v in values]
        except ValueError as exc:
            raise UsageError(f"%spalloc where-is: {exc}") from None

    if args.board:
        x, y, z = ints(args.board[1:])
        return {"machine": args.board[0], "x": x, "y": y, "z": z}
    if args.physical:
        cabinet, frame, board = ints(args.physical[1:])
        return {"machine": args.physical[0], "cabinet": cabinet, "frame": frame, "board": board}
    if args.chip:
        chip_x, chip_y = ints(args.chip[1:])
        return {"machine": args.chip[0], "chip_x": chip_x, "chip_y": chip_y}
    job_id, chip_x, chip_y = args.job_chip
    return {"job_id": job_id, "chip_x": chip_x, "chip_y": chip_y}


def check_job_chip(kwargs: dict[str, Any]) -> None:
    """A chip outside one of our jobs is an error (the server would wrap it around)."""
    if "job_id" not in kwargs:
        return
    for job in registry.jobs():
        if job.id != kwargs["job_id"]:
            continue
        width, height = job.snapshot.width, job.snapshot.height
        x, y = kwargs["chip_x"], kwargs["chip_y"]
        if width and height and not (0 <= x < width and 0 <= y < height):
            raise UsageError(
                f"%spalloc where-is: chip ({x}, {y}) is outside job {job.id}, "
                f"which is {width}\u00d7{height} chips"
            )
