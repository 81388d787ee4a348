"""``spalloc``: allocate SpiNNaker boards, then wait for Enter or run a command.

Invocation styles::

    spalloc              a single board
    spalloc 5            a machine of at least 5 boards
    spalloc 4 2          a 4x2-triad machine
    spalloc 3 4 0        the board at logical position (3, 4, 0)

Once the boards are powered, either the job's details are printed and spalloc waits for
Enter (or Ctrl-D / Ctrl-C), or, with ``-c``, the command is run and its exit status becomes
spalloc's::

    spalloc 24 -c "rig-boot {} {w} {h} && python my_app.py {}"

Then the job is destroyed (``--no-destroy`` leaves it allocated; ``--resume JOB_ID`` takes it
up again). While the job waits in the queue its state and the time waited are shown.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

from spalloc._local import default_owner
from spalloc.cli._common import (
    EXIT_USAGE,
    CliError,
    load_cli_config,
    make_parser,
    run,
    server_address,
)
from spalloc.cli._output import is_terminal
from spalloc.exceptions import (
    JobDestroyedError,
    ProtocolError,
    ServerConnectionError,
    SpallocServerException,
)
from spalloc.service import is_v2_url
from spalloc.states import JobState
from spalloc.ui.options import add_job_options, add_server_options, job_arguments

__all__ = ["EXIT_CONNECT", "EXIT_DESTROYED", "EXIT_INTERRUPTED_WAITING", "build_parser", "main"]

PROG = "spalloc"
#: The job was destroyed before it was ready (or the resumed job does not exist).
EXIT_DESTROYED = 1
#: Ctrl-C while the job was queued or powering on (the job is destroyed).
EXIT_INTERRUPTED_WAITING = 4
#: Could not connect to the server, or it refused to create the job.
EXIT_CONNECT = 6

EXIT_CODES = """\
  0    the job was ready and Enter (Ctrl-D, Ctrl-C) was pressed, or the command
       succeeded
  N    with -c: the command's exit status (128 + N when it was killed by signal N)
  1    the job was destroyed before it was ready, or it cannot be resumed, or
       the connection to the server was lost
  2    bad arguments, missing hostname or owner, bad config file, --boot, an
       incompatible server, or an unsafe hostname for a -c command line
  4    Ctrl-C while the job was queued or powering on
  6    could not connect to the server, or it refused to create the job
  130  Ctrl-C before the job was created or after the command ended"""

_BOOT_MESSAGE = (
    "--boot needs Rig, which no longer works on Python 3.11 or later; boot the boards "
    'with your own tools instead, e.g. spalloc -c "your-boot-tool {} {w} {h}"'
)

_WAITING = {
    JobState.queued: "Waiting in queue...",
    JobState.power: "Waiting for power on...",
}


def build_parser(config: Any = None) -> argparse.ArgumentParser:
    """The argument parser of ``spalloc``."""
    parser = make_parser(PROG, "Request (and allocate) a SpiNNaker machine.", EXIT_CODES)
    parser.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="suppress progress messages (errors are still shown)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="log diagnostic information from the library to stderr"
    )
    parser.add_argument(
        "--no-destroy", "-D", action="store_true", help="do not destroy the job on exit"
    )
    parser.add_argument(
        "--boot",
        "-B",
        action="store_true",
        help="not supported: booting needed Rig, which does not work on "
        "Python 3.11 or later; boot with your own tool instead, e.g. "
        '-c "your-boot-tool {} {w} {h}"',
    )
    add_job_options(parser, config)
    commands = parser.add_argument_group("command wrapping arguments")
    commands.add_argument(
        "--command",
        "-c",
        nargs=argparse.REMAINDER,
        help="execute the specified command once boards have been allocated and deallocate "
        "them when it exits; one argument is a shell command line, several are the "
        "words of one command. Tokens: {} or {hostname}, {w} or {width}, {h} or "
        "{height}, {ethernet_ips}, {id}; {{ and }} are literal braces",
    )
    add_server_options(parser, config, owner=True, keepalive=True)
    return parser


class _Status:
    """Progress lines on stderr: one per state, or a live line with the time waited."""

    def __init__(self, quiet: bool) -> None:
        from spalloc.cli._output import Output

        self.out = Output(sys.stderr)
        self.quiet = quiet
        self._lock = threading.Lock()
        self._live: Any = None
        self._message: str | None = None
        self._since = time.monotonic()
        self._last_state: JobState | None = None
        # Set by done(): a state report arriving late from the listener thread is dropped.
        self._closed = False

    def state(self, job_id: int | None, state: JobState) -> None:
        """Report the job's state (called from the Job's listener thread)."""
        message = _WAITING.get(state)
        with self._lock:
            if self._closed or self.quiet or message is None or state == self._last_state:
                return
            self._last_state = state
            self._message = f"Job {job_id}: {message}"
            if self.out.tty:
                self._start_live()
            else:
                self.out.text(self._message)

    def _start_live(self) -> None:
        if self._live is not None:
            return
        from rich.text import Text

        def render() -> Text:
            waited = int(time.monotonic() - self._since)
            return Text.assemble((self._message or "", "yellow"), f" ({waited} s)")

        self._live = self.out.live(
            get_renderable=render, transient=True, auto_refresh=True, refresh_per_second=2
        )
        self._live.start()

    def done(self, text: str, style: str) -> None:
        """Stop the live line and print a final one (errors are shown even when quiet)."""
        with self._lock:
            if self._live is not None:
                self._live.stop()
                self._live = None
            self._closed = True
            if not self.quiet or style == "red":
                self.out.text(text, style)


def _write_csv(path: str, connections: Any) -> None:
    from spalloc.ui.render import ethernet_csv

    with open(path, "w", encoding="ascii", newline="\n") as handle:
        handle.write(ethernet_csv(connections.items()))


def _create_job(what: tuple[int, ...], kwargs: dict[str, Any], status: _Status) -> Any:
    from spalloc.job import Job

    try:
        return Job(*what, **kwargs)  # warnings (emulated boards) are shown by run()
    except JobDestroyedError as exc:
        raise CliError(
            EXIT_DESTROYED,
            f"Job {kwargs.get('resume_job_id')}: cannot be resumed: {exc.reason or exc}",
        ) from None
    except SpallocServerException as exc:
        raise CliError(EXIT_CONNECT, f"Error from server: {exc}") from None
    except (ProtocolError, OSError) as exc:
        raise CliError(EXIT_CONNECT, _connect_failed(kwargs, exc)) from None
    except ValueError as exc:  # e.g. a keepalive or missing credentials for a v2 server
        raise CliError(EXIT_USAGE, f"{PROG}: {exc}") from None


def _connect_failed(kwargs: dict[str, Any], exc: BaseException) -> str:
    """``Could not connect to server HOST:PORT: reason`` (the original named no address)."""
    host = str(kwargs.get("hostname"))
    if host == "local":
        where = "(the embedded emulator)"
    elif is_v2_url(host):
        from urllib.parse import urlsplit

        parts = urlsplit(host)  # a v2 URL, shown without any user info in it
        where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
    else:
        where = server_address(host, int(kwargs.get("port", 22244)))
    cause = exc.__cause__
    if (
        isinstance(exc, ServerConnectionError)
        and isinstance(cause, OSError)
        and str(exc).startswith("cannot connect to ")
    ):
        exc = cause  # the library's "cannot connect to HOST:PORT: " is said below already
    reason = str(exc) or ("timed out" if isinstance(exc, TimeoutError) else type(exc).__name__)
    if where in reason:  # the library already named it: say it once
        return f"Could not connect to server: {reason}"
    return f"Could not connect to server {where}: {reason}"


def _wait_ready(job: Any, status: _Status) -> tuple[int, str | None]:
    """Wait until the job is ready; the exit code (0 = ready) and a reason for destroying."""
    remove = job.add_state_listener(lambda j: status.state(j.id, j.snapshot.state))
    try:
        status.state(job.id, job.snapshot.state)
        job.wait_until_ready()
    except JobDestroyedError as exc:
        reason = exc.reason
        status.done(f"Job {job.id}: Destroyed" + (f": {reason}" if reason else "."), "red")
        return EXIT_DESTROYED, None
    except KeyboardInterrupt:
        status.done(f"Job {job.id}: Keyboard interrupt.", "red")
        return EXIT_INTERRUPTED_WAITING, "Keyboard interrupt."
    finally:
        remove()
    status.done(f"Job {job.id}: Ready!", "green")
    return 0, None


def _watch_destroyed(job: Any, status: _Status, event: threading.Event) -> Any:
    """Tell the user at once if the server destroys the job while it is in use."""

    def check(j: Any) -> None:
        snap = j.snapshot
        if snap.state == JobState.destroyed and not event.is_set():
            event.set()
            reason = f": {snap.reason}" if snap.reason else "."
            status.done(f"Job {j.id}: Destroyed{reason}", "red")

    return job.add_state_listener(check)


def _press_enter(job: Any, csv_path: str, status: _Status) -> int:
    from spalloc.cli._output import Output
    from spalloc.models import JobMachineInfo
    from spalloc.ui.render import alloc_info

    snap = job.snapshot
    info = JobMachineInfo(snap.width, snap.height, snap.connections, snap.machine_name, snap.boards)
    out = Output()
    out.lines(alloc_info(info, csv_path))
    if snap.bridged:
        out.text(_bridge_note(snap))
    if out.colour:
        out.console.print("<Press enter when done>", style="dim", end="")
    else:
        out.stream.write("<Press enter when done>")
    out.flush()

    finished = threading.Event()
    destroyed = threading.Event()

    eof = threading.Event()

    def read() -> None:
        try:
            if not sys.stdin.readline():
                eof.set()
        except (OSError, ValueError):
            eof.set()
        finished.set()

    threading.Thread(target=read, name="spalloc-press-enter", daemon=True).start()
    remove = _watch_destroyed(job, status, destroyed)
    try:
        while not finished.wait(0.25):
            if destroyed.is_set():
                out.stream.write("\n")
                return EXIT_DESTROYED
        if eof.is_set() or not is_terminal(sys.stdin):
            # Ctrl-D leaves the cursor after the prompt, and input from a pipe or file is
            # not echoed: either way the prompt's line is still open.
            out.stream.write("\n")
    except KeyboardInterrupt:
        out.stream.write("\n")
    finally:
        remove()
        out.flush()
    return 0


def _bridge_note(snap: Any) -> str:
    """One line saying the boards are bridged, and where to."""
    boards = ", ".join(sorted(set((snap.board_connections or {}).values())))
    return f"Bridged: through the job's websocket proxy to {boards}"


def _traffic_note(job_id: int | None, traffic: Any) -> str:
    """What the bridge carried, one line."""
    t = traffic
    return (
        f"Job {job_id}: bridge carried {t.packets_out} packets ({t.bytes_out} bytes) to the "
        f"boards, {t.packets_in} packets ({t.bytes_in} bytes) back; errors "
        f"{t.errors_out} out, {t.errors_in} in; {t.reconnects} reconnections"
    )


def _run(job: Any, args: argparse.Namespace, csv_path: str, status: _Status) -> int:
    from spalloc.cli._command import UnsafeValueError, command_values, run_command, shell_command

    snap = job.snapshot
    values = command_values(job.id, snap.hostname, snap.width, snap.height, csv_path)
    try:
        command = shell_command(args.command, values)
    except UnsafeValueError as exc:
        status.done(f"Job {job.id}: not running the command: {exc}", "red")
        return EXIT_USAGE
    destroyed = threading.Event()
    remove = _watch_destroyed(job, status, destroyed)
    try:
        code, _ = run_command(command)
    finally:
        remove()
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser(load_cli_config())
    args = parser.parse_args(argv)
    if args.boot:
        raise CliError(EXIT_USAGE, f"{PROG}: {_BOOT_MESSAGE}")
    if args.command is not None and not args.command:
        parser.error("argument --command/-c: expected a command")
    args.owner = default_owner(args.hostname, args.owner)  # the library's one owner rule
    try:
        what, kwargs = job_arguments(args)
    except ValueError as exc:
        parser.error(str(exc))
    kwargs["ignore_version"] = args.ignore_version
    if args.debug:
        import logging

        logging.basicConfig(level=logging.DEBUG)
    status = _Status(args.quiet)
    fd, csv_path = tempfile.mkstemp(".csv", "spinnaker_ips_")
    os.close(fd)
    try:
        job = _create_job(what, kwargs, status)
        reason: str | None = None
        try:
            code, reason = _wait_ready(job, status)
            if code:
                return code
            _write_csv(csv_path, job.snapshot.connections or {})
            if args.command:
                if job.snapshot.bridged and not args.quiet:
                    print(f"Job {job.id}: {_bridge_note(job.snapshot)}", file=sys.stderr)
                return _run(job, args, csv_path, status)
            return _press_enter(job, csv_path, status)
        finally:
            bridge = job.bridge
            if args.no_destroy:
                job.close()
            else:
                job.destroy(reason)
            if bridge is not None and not args.quiet:
                print(_traffic_note(job.id, bridge.stats()), file=sys.stderr)
    finally:
        try:
            os.remove(csv_path)
        except OSError:
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``spalloc``; returns the exit code."""
    return run(PROG, lambda: _main(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
