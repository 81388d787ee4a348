"""``spalloc-emulator`` / ``python -m spalloc.emulator``: run the emulator in the foreground.

Exit codes: 0 after Ctrl-C, 1 if the address cannot be bound, 2 for bad arguments or a bad
machines file.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence

__all__ = ["main"]

DEFAULT_PORT = 22244


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0: {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def _port(text: str) -> int:
    value = _count(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spalloc-emulator",
        description="Run an emulated spalloc server (v1 protocol) with simulated boards.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT,
                        help="TCP port; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--machines", metavar="FILE",
                        help="TOML file describing the machines (default: built-in m4x2 "
                             "and board1)")
    parser.add_argument("--power-delay", type=_non_negative, default=0.0, metavar="S",
                        help="seconds a board power on/off takes (default: %(default)s)")
    parser.add_argument("--free-delay", type=_non_negative, default=0.1, metavar="S",
                        help="seconds boards stay in quarantine after a job ends "
                             "(default: %(default)s)")
    parser.add_argument("--max-retired-jobs", type=_count, default=1200, metavar="N",
                        help="how many destroyed jobs are remembered (default: %(default)s)")
    return parser


def _describe(machine: object) -> str:
    name = getattr(machine, "name", "?")
    tags = ",".join(sorted(getattr(machine, "tags", ()))) or "-"
    if getattr(machine, "is_single_board", False):
        shape = "single board"
    else:
        shape = f"{getattr(machine, 'width', '?')}x{getattr(machine, 'height', '?')} triads"
    return f"{name} ({shape}, tags {tags})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until interrupted; returns the exit code."""
    args = _parser().parse_args(argv)
    from spalloc.emulator import Emulator
    from spalloc.emulator.machines import MachineConfigError

    try:
        emulator = Emulator(args.machines, host=args.host, port=args.port,
                            power_delay=args.power_delay, free_delay=args.free_delay,
                            max_retired_jobs=args.max_retired_jobs)
    except MachineConfigError as exc:
        print(f"spalloc-emulator: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:   # e.g. the machines file cannot be read
        print(f"spalloc-emulator: error: {args.machines}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    # Ctrl-C at any moment from here on (even before the wait starts) is a clean exit.
    try:
        try:
            emulator.start()
        except OSError as exc:
            print(f"spalloc-emulator: error: cannot listen on {args.host}:{args.port}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return 1
        host, port = emulator.address
        machines = "; ".join(_describe(m) for m in emulator.machines)
        print(f"spalloc-emulator listening on {host}:{port} serving {machines}", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
