"""``spalloc-emulator`` / ``python -m spalloc.emulator``: run the emulator in the foreground.

Exit codes: 0 after Ctrl-C, 1 if an address cannot be bound, 2 for bad arguments or a bad
machines, users or TLS file. ``--http-port`` adds the v2 service (needs the ``server`` extra).
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
        description="Run an emulated spalloc server (v1 protocol, and v2 with --http-port) "
        "with simulated boards.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help="TCP port; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--http-port",
        type=_port,
        default=None,
        metavar="Q",
        help="also serve spalloc v2 (REST and websocket proxy) on this port; "
        "0 picks a free one (default: v1 only)",
    )
    parser.add_argument(
        "--tls-cert",
        metavar="CERT",
        help="PEM certificate: serve v2 over HTTPS and WSS (with --tls-key)",
    )
    parser.add_argument("--tls-key", metavar="KEY", help="PEM private key for --tls-cert")
    parser.add_argument(
        "--users",
        metavar="FILE",
        help="TOML file of v2 users (default: one user 'spalloc' with "
        "password 'spalloc', loopback addresses only)",
    )
    parser.add_argument(
        "--machines",
        metavar="FILE",
        help="TOML file describing the machines (default: built-in m4x2 and board1)",
    )
    parser.add_argument(
        "--power-delay",
        type=_non_negative,
        default=0.0,
        metavar="S",
        help="seconds a board power on/off takes (default: %(default)s)",
    )
    parser.add_argument(
        "--free-delay",
        type=_non_negative,
        default=0.1,
        metavar="S",
        help="seconds boards stay in quarantine after a job ends (default: %(default)s)",
    )
    parser.add_argument(
        "--max-retired-jobs",
        type=_count,
        default=1200,
        metavar="N",
        help="how many destroyed jobs are remembered (default: %(default)s)",
    )
    return parser


def _describe(machine: object) -> str:
    name = getattr(machine, "name", "?")
    tags = ",".join(sorted(getattr(machine, "tags", ()))) or "-"
    if getattr(machine, "is_single_board", False):
        shape = "single board"
    else:
        shape = f"{getattr(machine, 'width', '?')}x{getattr(machine, 'height', '?')} triads"
    ips = sorted(getattr(machine, "board_ips", {}).values(), key=_ip_key)
    where = f", boards from {ips[0]}" if ips else ""
    return f"{name} ({shape}, tags {tags}{where})"


def _ip_key(ip: str) -> tuple[int, ...]:
    return tuple(int(part) for part in ip.split(".") if part.isdigit())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until interrupted; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.http_port is None and (args.tls_cert or args.users):
        parser.error("--tls-cert, --tls-key and --users need --http-port")
    if args.http_port is not None:
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            print(
                "spalloc-emulator: error: --http-port needs aiohttp: "
                "pip install 'spalloc-nb[server]'",
                file=sys.stderr,
            )
            return 2
    from spalloc.emulator import Emulator
    from spalloc.emulator.machines import MachineConfigError
    from spalloc.emulator.users import UserConfigError

    try:
        emulator = Emulator(
            args.machines,
            host=args.host,
            port=args.port,
            power_delay=args.power_delay,
            free_delay=args.free_delay,
            max_retired_jobs=args.max_retired_jobs,
            http_port=args.http_port,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            users=args.users,
        )
    except (MachineConfigError, UserConfigError, ValueError) as exc:
        print(f"spalloc-emulator: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a machines, users or TLS file cannot be read or used
        if exc.filename is None and type(exc).__name__.startswith("SSL"):
            print(f"spalloc-emulator: error: bad TLS certificate or key: {exc}", file=sys.stderr)
            return 2
        name = exc.filename or args.machines
        print(f"spalloc-emulator: error: {name}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    # Ctrl-C at any moment from here on (even before the wait starts) is a clean exit.
    try:
        try:
            emulator.start()
        except OSError as exc:
            print(
                f"spalloc-emulator: error: cannot listen on {args.host}:{args.port}: "
                f"{exc.strerror or exc}",
                file=sys.stderr,
            )
            return 1
        host, port = emulator.address
        machines = "; ".join(_describe(m) for m in emulator.machines)
        v2 = f" and {emulator.base_url}" if emulator.base_url else ""
        print(f"spalloc-emulator listening on {host}:{port}{v2} serving {machines}", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
