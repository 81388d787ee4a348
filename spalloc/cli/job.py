"""``spalloc-job``: show, watch, power, list the IPs of, or destroy an existing job.

Called with a job ID, or with none to pick the only live job of ``--owner`` (by default
the owner from the config). The actions are mutually exclusive:

* ``--info`` (default): everything known about the job; ``--watch`` keeps it up to date
  and ends when the job is destroyed;
* ``--power-on`` / ``--reset`` / ``--power-off``: switch the boards, and wait until done;
* ``--ethernet-ips``: the Ethernet-attached chips as CSV (``x,y,hostname``);
* ``--destroy [REASON]``: destroy the job (anybody may, at any time).
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
from spalloc.cli._watch import show
from spalloc.states import JobState
from spalloc.ui.options import add_server_options

TYPE_CHECKING = False  # not typing's: that import costs start-up time (mypy sees True)
if TYPE_CHECKING:
    from typing import Any

    from spalloc.service.base import Service
    from spalloc.ui.options import ServerSettings

__all__ = [
    "EXIT_BAD_STATE",
    "EXIT_NOT_ALLOCATED",
    "EXIT_NO_JOB",
    "EXIT_POWER_INTERRUPTED",
    "EXIT_UNKNOWN_JOB",
    "build_parser",
    "main",
]

PROG = "spalloc-job"
#: No job ID given and the owner has no live job, or several.
EXIT_NO_JOB = 3
#: ``--info`` / ``--watch`` of a job the server does not know (the information, "State:
#: unknown", is still printed, as the official tool did; it exited 0).
EXIT_UNKNOWN_JOB = 5
#: Ctrl-C while waiting for a power command to finish.
EXIT_POWER_INTERRUPTED = 7
#: The job cannot be powered in its current state (queued, destroyed, unknown).
EXIT_BAD_STATE = 8
#: ``--ethernet-ips`` for a job without boards.
EXIT_NOT_ALLOCATED = 9

EXIT_CODES = COMMON_EXIT_CODES.replace(
    "  130",
    """\
  3    no job ID given and the owner has no live job, or more than one
  5    the server does not know the job (never created, or destroyed and
       forgotten); "State: unknown" is still printed
  7    interrupted while waiting for a power command to finish
  8    the job cannot be powered in its state (or was destroyed meanwhile)
  9    --ethernet-ips: the job is queued or does not exist
  130""",
)


def build_parser(config: Any = None) -> argparse.ArgumentParser:
    """The argument parser of ``spalloc-job``."""
    parser = make_parser(PROG, "Manage running jobs.", EXIT_CODES)
    parser.add_argument(
        "job_id",
        type=int,
        nargs="?",
        metavar="JOB_ID",
        help="the job ID of interest; optional if the owner has exactly one live job",
    )
    parser.add_argument(
        "--owner",
        "-o",
        default=getattr(config, "owner", None),
        help="if no job ID is given and this owner has exactly one live job, use it "
        "(default: %(default)s)",
    )
    actions = parser.add_mutually_exclusive_group()
    actions.add_argument(
        "--info", "-i", action="store_true", help="show information about the job (the default)"
    )
    actions.add_argument(
        "--watch",
        "-w",
        action="store_true",
        help="watch the job's state; ends when the job is destroyed",
    )
    actions.add_argument(
        "--power-on",
        "--reset",
        "-p",
        "-r",
        action="store_true",
        help="power-on or reset the job's boards and wait until done",
    )
    actions.add_argument(
        "--power-off", action="store_true", help="power-off the job's boards and wait until done"
    )
    actions.add_argument(
        "--ethernet-ips",
        "-e",
        action="store_true",
        help="list the IPs of the job's Ethernet-attached chips as CSV",
    )
    actions.add_argument(
        "--destroy",
        "-D",
        nargs="?",
        metavar="REASON",
        const="",
        help="destroy a queued or running job, with an optional reason",
    )
    add_server_options(parser, config)
    return parser


def _choose_job(service: Service, settings: ServerSettings, args: argparse.Namespace) -> int:
    # _main has already refused "neither a job ID nor --owner".
    if args.job_id is not None:
        return int(args.job_id)
    mine = [job.job_id for job in service.list_jobs(deadline(settings)) if job.owner == args.owner]
    if not mine:
        raise CliError(EXIT_NO_JOB, f"Owner {args.owner} has no live jobs")
    if len(mine) > 1:
        ids = ", ".join(map(str, mine))
        raise CliError(EXIT_NO_JOB, f"Ambiguous: {args.owner} has {len(mine)} live jobs: {ids}")
    return mine[0]


UNKNOWN_JOB = (
    "Job {} is unknown to the server: it never existed, or it was destroyed and has been forgotten"
)


def _info_frame(
    service: Service, settings: ServerSettings, job_id: int, seen: list[JobState]
) -> tuple[list[Any], bool]:
    from spalloc.models import JobMachineInfo, JobStateInfo
    from spalloc.ui.render import job_info

    # Like the official tool, ask for the job's state only when it is no longer live: for a
    # live job that would move the job's "Owner host" to this machine.
    jobs = service.list_jobs(deadline(settings))
    job = next((j for j in jobs if j.job_id == job_id), None)
    if job is not None:
        state = JobStateInfo(
            job.state, job.power, job.keepalive, None, job.start_time, job.keepalivehost
        )
        info: JobMachineInfo | None = service.job_machine_info(job_id, deadline(settings))
    else:
        state = service.job_state(job_id, deadline(settings))
        info = None
    finished = state.state in (JobState.destroyed, JobState.unknown)
    seen.append(state.state)
    return job_info(job_id, job, state, info), finished


def _power(service: Service, settings: ServerSettings, job_id: int, on: bool) -> int:
    from spalloc.cli._watch import wait_for_change
    from spalloc.models import JobStateInfo

    def state() -> JobStateInfo:
        return service.job_state(job_id, deadline(settings))

    current = state()
    if current.state not in (JobState.ready, JobState.power):
        name = current.state.name
        raise CliError(
            EXIT_BAD_STATE,
            f"Error: Cannot power {'on' if on else 'off'} job {job_id} in state {name}",
        )
    try:
        service.follow_jobs(deadline(settings), job_id)
        service.set_power(job_id, on, deadline(settings))
        while True:
            current = state()
            if current.state == JobState.ready:
                return 0
            if current.state != JobState.power:
                name = current.state.name
                reason = f": {current.reason}" if current.reason else ""
                raise CliError(EXIT_BAD_STATE, f"Error: job {job_id} is {name}{reason}")
            wait_for_change(service)
    except KeyboardInterrupt:
        return EXIT_POWER_INTERRUPTED


def _main(argv: Sequence[str] | None) -> int:
    from spalloc.cli._output import Output

    config = load_cli_config()
    parser = build_parser(config)
    args = parser.parse_args(argv)
    settings = settings_or_exit(parser, args)
    if args.job_id is None and not args.owner:
        parser.error("job ID (or --owner) not specified")
    out = Output()
    service = open_client(settings, config)
    try:
        job_id = _choose_job(service, settings, args)
        seen: list[JobState] = []

        def frame() -> tuple[Any, bool]:
            return _info_frame(service, settings, job_id, seen)

        def shown(code: int) -> int:
            # A job ID that names nothing is most likely a typo: keep the output (scripts
            # read it), but say so and fail (B25: the official tool exited 0).
            if code == 0 and seen and seen[-1] == JobState.unknown:
                raise CliError(EXIT_UNKNOWN_JOB, UNKNOWN_JOB.format(job_id))
            return code

        if args.watch:
            return shown(
                show(
                    out,
                    frame,
                    service,
                    watch=True,
                    follow=lambda: service.follow_jobs(deadline(settings), job_id),
                    timeout=settings.timeout,
                    reconnect_delay=config.reconnect_delay,
                )
            )
        if args.power_on or args.power_off:
            return _power(service, settings, job_id, bool(args.power_on))
        if args.ethernet_ips:
            from spalloc.ui.render import ethernet_csv

            info = service.job_machine_info(job_id, deadline(settings))
            if info is None or info.connections is None:
                raise CliError(EXIT_NOT_ALLOCATED, f"Job {job_id} is queued or does not exist")
            out.stream.write(ethernet_csv(info.connections.items()))
            out.flush()
            return 0
        if args.destroy is not None:
            # Never send an empty reason (B21): say who destroyed it.
            reason = args.destroy or (
                f"Destroyed by {args.owner}" if args.owner else "Destroyed with spalloc-job"
            )
            service.send_destroy(job_id, reason, deadline(settings)).wait()
            return 0
        return shown(show(out, frame, service, watch=False))
    finally:
        service.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``spalloc-job``; returns the exit code."""
    return run(PROG, lambda: _main(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
