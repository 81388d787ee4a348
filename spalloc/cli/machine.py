"""``spalloc-machine``: list the machines, or show one with a map of its boards and jobs.

With no argument, a table of every machine and its load. With a machine name, a summary, a
hexagonal map of its boards (each job's boards marked with a key letter; dead boards are
left blank) and the key to the jobs; ``--detailed`` turns the key into a table with owners.
``--watch`` redraws on every allocation, release and power change.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from spalloc.cli._common import (
    COMMON_EXIT_CODES,
    CliError,
    deadline,
    load_cli_config,
    make_parser,
    open_client,
    run,
    settings_or_exit,
    terminal_width,
)
from spalloc.cli._watch import show
from spalloc.ui.options import add_server_options

TYPE_CHECKING = False  # not typing's: that import costs start-up time (mypy sees True)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["EXIT_NO_MACHINE", "build_parser", "main"]

PROG = "spalloc-machine"
#: The named machine does not exist.
EXIT_NO_MACHINE = 6

EXIT_CODES = COMMON_EXIT_CODES.replace("  130", "  6    no machine of that name\n  130")


def build_parser(config: object = None) -> argparse.ArgumentParser:
    """The argument parser of ``spalloc-machine``."""
    parser = make_parser(PROG, "Get the state of individual machines.", EXIT_CODES)
    parser.add_argument("machine", nargs="?", help="if given, specifies the machine to inspect")
    parser.add_argument(
        "--watch",
        "-w",
        action="store_true",
        help="update the output when things change (Ctrl-C to stop)",
    )
    parser.add_argument(
        "--detailed", "-d", action="store_true", help="list detailed job information"
    )
    add_server_options(parser, config)
    return parser


def _main(argv: Sequence[str] | None) -> int:
    from spalloc.cli._output import Output
    from spalloc.ui.render import machine_by_name, machine_detail, machine_list

    config = load_cli_config()
    parser = build_parser(config)
    args = parser.parse_args(argv)
    if args.detailed and args.machine is None:
        parser.error("--detailed only works when a specific machine is specified")
    settings = settings_or_exit(parser, args)
    out = Output()
    width = terminal_width() if out.tty else 80
    service = open_client(settings, config)
    try:

        def frame() -> tuple[list[Any], bool]:
            machines = service.list_machines(deadline(settings))
            jobs = service.list_jobs(deadline(settings))
            if args.machine is None:
                return machine_list(machines, jobs), False
            machine = machine_by_name(machines, args.machine)
            if machine is None:
                raise CliError(EXIT_NO_MACHINE, f"No machine '{args.machine}' was found")
            return machine_detail(machine, jobs, detailed=args.detailed, width=width), False

        def follow() -> None:
            service.follow_machines(deadline(settings), args.machine)
            # Jobs too, so that power changes redraw the map (the official tool missed them).
            service.follow_jobs(deadline(settings))

        return show(
            out,
            frame,
            service,
            watch=args.watch,
            follow=follow,
            timeout=settings.timeout,
            reconnect_delay=config.reconnect_delay,
        )
    finally:
        service.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``spalloc-machine``; returns the exit code."""
    return run(PROG, lambda: _main(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
