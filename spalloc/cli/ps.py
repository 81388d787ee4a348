"""``spalloc-ps``: list all running and queued jobs.

By default the command lists every live job; ``--owner`` and ``--machine`` filter the list,
and ``--watch`` keeps it up to date as the server reports changes::

    ID  State  Power  Boards  Machine  Created at           Keepalive  Owner (Host)
     1  ready  on          3  m        23/02/2016 11:04:33  None       me@example.org (10.0.0.2)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from spalloc.cli._common import (
    COMMON_EXIT_CODES,
    deadline,
    load_cli_config,
    make_parser,
    open_client,
    run,
    settings_or_exit,
)
from spalloc.cli._watch import show
from spalloc.ui.options import add_server_options

TYPE_CHECKING = False  # not typing's: that import costs start-up time (mypy sees True)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["build_parser", "main"]

PROG = "spalloc-ps"


def build_parser(config: object = None) -> argparse.ArgumentParser:
    """The argument parser of ``spalloc-ps``."""
    parser = make_parser(PROG, "List all active jobs.", COMMON_EXIT_CODES)
    parser.add_argument(
        "--watch",
        "-w",
        action="store_true",
        help="keep the list up to date as jobs change (Ctrl-C to stop)",
    )
    filters = parser.add_argument_group("filtering arguments")
    filters.add_argument("--machine", "-m", help="list only jobs on the specified machine")
    filters.add_argument("--owner", "-o", help="list only jobs belonging to a particular owner")
    add_server_options(parser, config)
    return parser


def _main(argv: Sequence[str] | None) -> int:
    from spalloc.cli._output import Output
    from spalloc.ui.render import ps_table

    config = load_cli_config()
    parser = build_parser(config)
    args = parser.parse_args(argv)
    settings = settings_or_exit(parser, args)
    out = Output()
    service = open_client(settings, config)
    try:

        def frame() -> tuple[list[Any], bool]:
            jobs = service.list_jobs(deadline(settings))
            return ps_table(jobs, machine=args.machine, owner=args.owner), False

        return show(
            out,
            frame,
            service,
            watch=args.watch,
            follow=lambda: service.follow_jobs(deadline(settings)),
            timeout=settings.timeout,
            reconnect_delay=config.reconnect_delay,
        )
    finally:
        service.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``spalloc-ps``; returns the exit code."""
    return run(PROG, lambda: _main(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
