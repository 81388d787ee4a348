"""Option definitions shared by the command-line tools (and the notebook magics).

The functions here only add arguments to a parser and turn parsed arguments into settings;
they never print or exit, so they work on a plain ``argparse.ArgumentParser`` and on
IPython's ``MagicArgumentParser`` alike. Defaults come from a loaded
:class:`spalloc.config.SpallocConfig` (config files and ``SPALLOC_*`` variables), so
``--help`` shows the values that will really be used.

Numeric options that the official tools accept as "negative means none" (``--timeout``,
``--keepalive``, ``--reconnect-delay``, ``--max-dead-boards``, ``--max-dead-links``) keep
that meaning; ``--keepalive`` takes fractional seconds (B13).
"""

from __future__ import annotations

import argparse

from spalloc._namedtuple import NamedTuple
from spalloc.service import is_v2_url

TYPE_CHECKING = False  # not typing's: that import costs start-up time (mypy sees True)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "ServerSettings",
    "add_job_options",
    "add_server_options",
    "boolean",
    "job_arguments",
    "non_negative_float",
    "optional_int",
    "optional_seconds",
    "server_settings",
]

#: Hostname that selects the embedded emulator (``--local``).
LOCAL = "local"

_WHAT_ERROR = (
    "{count} WHAT values given ({values}); expected either no arguments (one "
    "board), NUM (at least NUM boards), WIDTH HEIGHT (a WIDTH x HEIGHT triad "
    "machine) or X Y Z (the board at logical position X, Y, Z)"
)


def optional_seconds(text: str) -> float | None:
    """Seconds as a float; a negative value means "none" (wait forever / no keepalive)."""
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"not a finite number: {text!r}")
    return None if value < 0 else value


def optional_int(text: str) -> int | None:
    """An integer; a negative value means "no limit"."""
    value = int(text)
    return None if value < 0 else value


def non_negative_float(text: str) -> float:
    """A finite float that is not negative."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise ValueError(f"must be a non-negative number: {text!r}")
    return value


def boolean(text: str) -> bool:
    """As the config file reads booleans (unlike ``type=bool``, "False" is false: B2)."""
    from spalloc.config import parse_boolean

    return parse_boolean(text)


def _port_number(text: str) -> int:
    """An int, as the original tools' ``--port`` (same message for a word), 1-65535."""
    from spalloc._protocol import checked_port

    value = int(text)
    try:
        return checked_port(value)
    except ValueError as exc:  # argparse shows this one's message as it is
        raise argparse.ArgumentTypeError(str(exc)) from None


def _proxy_mode(text: str) -> str:
    from spalloc.config import proxy_mode

    return proxy_mode(text)


# argparse names the type in its "invalid ... value" message.
optional_seconds.__name__ = "seconds"
optional_int.__name__ = "int"
non_negative_float.__name__ = "ratio"
boolean.__name__ = "boolean"
_proxy_mode.__name__ = "proxy mode"
_port_number.__name__ = "int"


def _defaults(config: Any) -> Any:
    """The config supplying option defaults; ``None`` means the documented defaults."""
    if config is None:
        from spalloc.config import SpallocConfig

        return SpallocConfig()
    return config


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value) if value else "(none)"
    return str(value)


def add_server_options(
    parser: Any,
    config: Any = None,
    *,
    owner: bool = False,
    keepalive: bool = False,
    local: bool = True,
) -> Any:
    """Add ``--hostname/-H``, ``--port/-P``, ``--timeout``, ``--local``, ``--ignore-version``.

    Args:
        parser: an argparse-compatible parser.
        config: the loaded config supplying the defaults (``None`` = built-in defaults).
        owner: also add ``--owner`` (the owner of created jobs).
        keepalive: also add ``--keepalive`` and ``--reconnect-delay`` (for creating jobs).
        local: also add ``--local`` (use the embedded emulator).

    Returns:
        The argument group holding the options.
    """
    config = _defaults(config)
    group = parser.add_argument_group("spalloc server arguments")
    if owner:
        group.add_argument(
            "--owner",
            default=config.owner,
            help="by convention, the email address of the owner of the job (default: %(default)s)",
        )
    group.add_argument(
        "--hostname",
        "-H",
        default=config.hostname,
        help="hostname or IP of the spalloc server, or 'local' for the embedded emulator "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--port",
        "-P",
        type=_port_number,
        default=config.port,
        help="port number of the spalloc server (default: %(default)s)",
    )
    if keepalive:
        group.add_argument(
            "--keepalive",
            type=optional_seconds,
            metavar="SECONDS",
            default=config.keepalive,
            help="the interval at which to require keepalive messages to be sent to prevent "
            "the server cancelling the job, or -1 to not require keepalive messages; "
            "fractions allowed (default: %(default)s)",
        )
        group.add_argument(
            "--reconnect-delay",
            type=optional_seconds,
            metavar="SECONDS",
            default=config.reconnect_delay,
            help="seconds to wait before reconnecting to the server if the connection is "
            "lost (default: %(default)s)",
        )
    group.add_argument(
        "--timeout",
        type=optional_seconds,
        metavar="SECONDS",
        default=config.timeout,
        help="seconds to wait for a response from the server, or -1 to wait forever; "
        "applies to every call, the connection included (default: %(default)s)",
    )
    if local:
        group.add_argument(
            "--local",
            action="store_const",
            const=LOCAL,
            dest="hostname",
            help="use an emulated spalloc server inside this process (no real boards)",
        )
    group.add_argument(
        "--ignore-version",
        action="store_true",
        default=config.ignore_version,
        help="talk to the server whatever version it reports",
    )
    # The official tools spell it --ignore_version and take a value; keep that working, but
    # parse the value as a real boolean.
    group.add_argument(
        "--ignore_version",
        type=boolean,
        dest="ignore_version",
        metavar="BOOL",
        help=argparse.SUPPRESS,
    )
    return group


def add_job_options(parser: Any, config: Any = None) -> Any:
    """Add the allocation arguments of ``spalloc``: ``WHAT``, ``--resume``, ``--machine``, …

    Returns:
        The argument group holding the options.
    """
    config = _defaults(config)
    group = parser.add_argument_group(
        "allocation arguments",
        "WHAT is nothing or 1 (one board), NUM (at least NUM boards), WIDTH HEIGHT "
        "(a WIDTH x HEIGHT triad machine) or X Y Z (the board at logical position X, Y, Z)",
    )
    group.add_argument(
        "what", nargs="*", default=[], type=int, metavar="WHAT", help="what to allocate (see above)"
    )
    group.add_argument(
        "--resume",
        "-r",
        type=int,
        metavar="JOB_ID",
        help="resume keeping the specified job alive rather than creating a new job "
        "(all allocation requirements are then ignored)",
    )
    # As the official tool does, a config without tags means the "default" tag.
    tags = config.tags or ("default",)
    group.add_argument(
        "--machine",
        "-m",
        nargs="?",
        default=config.machine,
        help="only allocate boards of a specific machine, or any machine if given without "
        "a name (default: %(default)s)",
    )
    group.add_argument(
        "--tags",
        "-t",
        nargs="*",
        metavar="TAG",
        default=list(tags),
        help="only allocate boards of machines with (at least) these tags; -t with no TAG "
        f"means any machine (default: {_show(tags)})",
    )
    group.add_argument(
        "--min-ratio",
        type=non_negative_float,
        metavar="RATIO",
        default=config.min_ratio,
        help="when asking for a number of boards, require the allocation to be at least as "
        "square as this ratio (default: %(default)s)",
    )
    group.add_argument(
        "--max-dead-boards",
        type=optional_int,
        metavar="NUM",
        default=config.max_dead_boards,
        help="boards allowed to be dead in the allocation, or -1 to allow any number "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--max-dead-links",
        type=optional_int,
        metavar="NUM",
        default=config.max_dead_links,
        help="inter-board links allowed to be dead in the allocation, or -1 to allow any "
        "number (default: %(default)s)",
    )
    group.add_argument(
        "--proxy",
        type=_proxy_mode,
        metavar="auto|always|never",
        default=getattr(config, "proxy", "auto"),
        help="spalloc v2: reach the boards through the job's websocket proxy, on loopback "
        "addresses of this machine that any tool can use: when they cannot be reached "
        "directly (auto), always or never (default: %(default)s)",
    )
    torus = config.require_torus
    group.add_argument(
        "--require-torus",
        "-w",
        action="store_true",
        default=torus,
        help="require that the allocation have wrap-around links" + (" (default)" if torus else ""),
    )
    group.add_argument(
        "--no-require-torus",
        "-W",
        action="store_false",
        dest="require_torus",
        help="do not require wrap-around links" + ("" if torus else " (default)"),
    )
    return group


class ServerSettings(NamedTuple):
    """Where and how to reach the server, from the parsed options."""

    hostname: str | None
    port: int
    timeout: float | None
    ignore_version: bool = False

    @property
    def is_local(self) -> bool:
        """True when the embedded emulator is asked for."""
        return self.hostname == LOCAL


def server_settings(args: argparse.Namespace) -> ServerSettings:
    """The server settings from parsed options.

    Raises:
        ValueError: no hostname was given anywhere (the message says how to give one).
    """
    hostname = getattr(args, "hostname", None)
    if not hostname:
        raise ValueError(
            "--hostname of spalloc server must be specified (or set hostname in a spalloc "
            "config file or SPALLOC_HOSTNAME, or use --local for the embedded emulator)"
        )
    return ServerSettings(
        hostname=hostname,
        port=args.port,
        timeout=args.timeout,
        ignore_version=bool(getattr(args, "ignore_version", False)),
    )


def job_arguments(args: argparse.Namespace) -> tuple[tuple[int, ...], dict[str, Any]]:
    """Positional and keyword arguments for :class:`spalloc.Job` from parsed options.

    Every setting is passed explicitly (the defaults already came from the config), and
    ``config_filenames=[]`` stops the Job reading the config files a second time, except for
    a v2 URL: then the Job reads them for the login and accounting keys (which are no
    options: a password does not belong on a command line).

    Raises:
        ValueError: too many WHAT values, or no owner for a new job.
    """
    server = server_settings(args)
    kwargs: dict[str, Any] = {
        "hostname": server.hostname,
        "port": server.port,
        "timeout": server.timeout,
        "reconnect_delay": getattr(args, "reconnect_delay", 5.0),
    }
    if not is_v2_url(server.hostname):
        kwargs["config_filenames"] = []
    proxy = getattr(args, "proxy", None)
    if proxy is not None:
        kwargs["proxy"] = proxy
    if getattr(args, "resume", None) is not None:
        kwargs["resume_job_id"] = args.resume
        return (), kwargs
    what = tuple(getattr(args, "what", ()) or ())
    if len(what) > 3:
        raise ValueError(_WHAT_ERROR.format(count=len(what), values=" ".join(map(str, what))))
    owner = getattr(args, "owner", None)
    if not owner and not is_v2_url(server.hostname):  # a v2 server: the login owns the job
        raise ValueError("--owner must be specified (typically your email address)")
    machine = getattr(args, "machine", None)
    tags = getattr(args, "tags", None)
    kwargs.update(
        owner=owner,
        keepalive=getattr(args, "keepalive", 60.0),
        machine=machine,
        # A named machine is chosen regardless of tags, and the server refuses both.
        tags=None if machine is not None else tags,
        min_ratio=args.min_ratio,
        max_dead_boards=args.max_dead_boards,
        max_dead_links=args.max_dead_links,
        require_torus=args.require_torus,
    )
    return what, kwargs
