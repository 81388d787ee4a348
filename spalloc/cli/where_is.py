"""``spalloc-where-is``: find the physical and logical location of a board or chip.

Exactly one query is given::

    spalloc-where-is --board MACHINE X Y Z
    spalloc-where-is --physical MACHINE CABINET FRAME BOARD
    spalloc-where-is --chip MACHINE X Y
    spalloc-where-is --job-chip JOB_ID X Y

and the answer looks like::

                     Machine: my-machine
           Physical location: Cabinet 2, Frame 4, Board 7
            Board coordinate: (3, 4, 0)
    Machine chip coordinates: (38, 51)
    Coordinates within board: (2, 3)
             Job using board: 24
      Coordinates within job: (14, 3)
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
)
from spalloc.ui.options import add_server_options

TYPE_CHECKING = False  # not typing's: that import costs start-up time (mypy sees True)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["EXIT_NOT_FOUND", "EXIT_UNKNOWN_JOB", "build_parser", "main", "query_arguments"]

PROG = "spalloc-where-is"
#: The server knows no live board at that location.
EXIT_NOT_FOUND = 4
#: ``--job-chip`` names a job the server does not know (as ``spalloc-job``'s code 5).
EXIT_UNKNOWN_JOB = 5

EXIT_CODES = COMMON_EXIT_CODES.replace(
    "  130",
    """\
  4    no boards at the specified location (with --job-chip: the chip is not
       in the job's boards, or the job is queued or destroyed)
  5    --job-chip: the server does not know the job (never created, or
       destroyed and forgotten)
  130""",
)


def build_parser(config: object = None) -> argparse.ArgumentParser:
    """The argument parser of ``spalloc-where-is``."""
    parser = make_parser(
        PROG, "Find out the location (physical or logical) of a chip or board.", EXIT_CODES
    )
    query = parser.add_mutually_exclusive_group(required=True)
    query.add_argument(
        "--board",
        "-b",
        "--logical",
        "-l",
        nargs=4,
        metavar=("MACHINE", "X", "Y", "Z"),
        help="specify the logical board coordinate",
    )
    query.add_argument(
        "--physical",
        "-p",
        nargs=4,
        metavar=("MACHINE", "CABINET", "FRAME", "BOARD"),
        help="specify a board's physical location",
    )
    query.add_argument(
        "--chip",
        "-c",
        nargs=3,
        metavar=("MACHINE", "X", "Y"),
        help="specify a board by chip coordinates (as if the whole machine is being used)",
    )
    query.add_argument(
        "--job-chip",
        "-j",
        nargs=3,
        metavar=("JOB_ID", "X", "Y"),
        help="specify the chip coordinates of a chip within a job's boards",
    )
    add_server_options(parser, config)
    return parser


def query_arguments(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """The ``where_is`` keyword arguments and whether to show the chip within its board.

    Raises:
        ValueError: a coordinate is not an integer.
    """
    if args.board:
        machine, x, y, z = args.board
        return {"machine": machine, "x": int(x), "y": int(y), "z": int(z)}, False
    if args.physical:
        machine, c, f, b = args.physical
        return {"machine": machine, "cabinet": int(c), "frame": int(f), "board": int(b)}, False
    if args.chip:
        machine, x, y = args.chip
        return {"machine": machine, "chip_x": int(x), "chip_y": int(y)}, True
    job_id, x, y = args.job_chip
    return {"job_id": int(job_id), "chip_x": int(x), "chip_y": int(y)}, True


def _why_no_job_boards(service: Any, settings: Any, job_id: int) -> tuple[int, str]:
    """The exit code, and why a job has no such chip: ``": job 7 is queued"`` or ``""``."""
    from spalloc.states import JobState

    # The list first: asking a live job's state would move its "owner host" here.
    jobs = service.list_jobs(deadline(settings))
    job = next((j for j in jobs if j.job_id == job_id), None)
    if job is not None:
        state = job.state
        reason = None
    else:
        info = service.job_state(job_id, deadline(settings))
        state, reason = info.state, info.reason
    if state == JobState.unknown:
        return EXIT_UNKNOWN_JOB, f": job {job_id} is unknown to the server"
    if state == JobState.destroyed:
        return EXIT_NOT_FOUND, f": job {job_id} was destroyed" + (f" ({reason})" if reason else "")
    if state == JobState.queued:
        return EXIT_NOT_FOUND, f": job {job_id} is queued and has no boards yet"
    return EXIT_NOT_FOUND, ""


def _main(argv: Sequence[str] | None) -> int:
    from spalloc.cli._output import Output
    from spalloc.ui.render import where_is_info

    config = load_cli_config()
    parser = build_parser(config)
    args = parser.parse_args(argv)
    try:
        query, show_board_chip = query_arguments(args)
    except ValueError as exc:
        parser.error(f"Error: {exc}")
    settings = settings_or_exit(parser, args)
    service = open_client(settings, config)
    try:
        # Every form is sent by keyword (the official 7.4 client could only send the job
        # form: B11).
        location = service.where_is(deadline(settings), **query)
        if location is None:
            code, why = EXIT_NOT_FOUND, ""
            if "job_id" in query:
                code, why = _why_no_job_boards(service, settings, query["job_id"])
            raise CliError(code, f"No boards at the specified location{why}")
    finally:
        service.close()
    Output().lines(where_is_info(location, show_board_chip=show_board_chip))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``spalloc-where-is``; returns the exit code."""
    return run(PROG, lambda: _main(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
