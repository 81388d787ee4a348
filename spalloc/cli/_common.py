"""What every tool shares: loading the config, connecting, and turning errors into exit codes.

Each tool's ``main(argv=None) -> int`` calls :func:`run`, the one place where library errors
become a one-line message on stderr and a documented exit code (no tracebacks for user or
network errors: B25).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from spalloc._version import __version__
from spalloc.exceptions import (
    ConfigError,
    IncompatibleServerError,
    JobDestroyedError,
    ProtocolError,
    SpallocServerException,
)

TYPE_CHECKING = False  # not typing's: that import costs start-up time (mypy sees True)
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from spalloc.config import SpallocConfig
    from spalloc.service.base import Service
    from spalloc.ui.options import ServerSettings

__all__ = [
    "COMMON_EXIT_CODES",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "deadline",
    "load_cli_config",
    "make_parser",
    "open_client",
    "run",
    "server_address",
    "settings_or_exit",
    "terminal_width",
]

EXIT_OK = 0
#: The server could not be reached, dropped the connection, timed out or answered an error.
EXIT_ERROR = 1
#: Bad arguments, missing hostname/owner, a bad config file, or an incompatible server.
EXIT_USAGE = 2
#: Interrupted with Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130

COMMON_EXIT_CODES = """\
  0    success
  1    error talking to the server (unreachable, connection lost, timed out, or
       the server reported an error)
  2    bad arguments, missing hostname or owner, bad config file, or an
       incompatible server version
  130  interrupted by Ctrl-C"""


class CliError(Exception):
    """Stop a tool with a message for the user and an exit code."""

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(message or "")
        self.code = code
        self.message = message


def _say(prog: str, message: str) -> None:
    try:
        sys.stderr.write(f"{message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def run(prog: str, body: Callable[[], int]) -> int:
    """Run a tool's body, mapping every expected failure to a message and an exit code.

    Warnings (e.g. that ``--local`` boards are emulated) become one ``prog: warning:`` line.
    """
    import warnings  # already loaded by the interpreter: free

    def show(message: Warning | str, *_: Any, **__: Any) -> None:
        _say(prog, f"{prog}: warning: {message}")

    shown = warnings.showwarning
    warnings.showwarning = show
    try:
        return body()
    except SystemExit as exc:  # argparse: --help, --version and usage errors
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)
    except CliError as exc:
        if exc.message:
            _say(prog, exc.message)
        return exc.code
    except IncompatibleServerError as exc:
        _say(
            prog, f"Incompatible server version ({exc.version}); use --ignore-version to try anyway"
        )
        return EXIT_USAGE
    except ConfigError as exc:
        _say(prog, f"{prog}: config error: {exc}")
        return EXIT_USAGE
    except SpallocServerException as exc:
        _say(prog, f"Error from server: {exc}")
        return EXIT_ERROR
    except JobDestroyedError as exc:
        _say(prog, f"Error: {exc}")
        return EXIT_ERROR
    except (ProtocolError, OSError) as exc:
        if isinstance(exc, BrokenPipeError):
            return EXIT_ERROR  # our reader went away (e.g. "| head"): nothing to report
        _say(prog, f"Error communicating with server: {_describe(exc)}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        warnings.showwarning = shown


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, TimeoutError) and not text:
        return "timed out"
    return text or type(exc).__name__


def load_cli_config() -> SpallocConfig:
    """The config (files and ``SPALLOC_*``) that supplies option defaults."""
    from spalloc.config import load_config

    return load_config()


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose ``error`` exits with our usage code and one line.

    argparse prints the whole usage block first; for a tool with twenty options that hides
    the one line that matters, so the usage stays in ``--help`` only.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's layout; finds the width without importing shutil.

    argparse builds a formatter for every ``add_argument``, and its default one imports
    shutil (and so bz2, lzma, …) just to ask the terminal's width: a visible share of the
    start-up time of a one-shot tool.
    """

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = terminal_width() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


def terminal_width() -> int:
    # The rule of shutil.get_terminal_size: $COLUMNS, then the terminal, then 80.
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    stream = sys.__stdout__
    try:
        return (os.get_terminal_size(stream.fileno()).columns if stream else 0) or 80
    except (AttributeError, ValueError, OSError):
        return 80


def make_parser(prog: str, description: str, exit_codes: str) -> argparse.ArgumentParser:
    """A parser with ``--version`` and the exit codes in its epilog."""
    parser = _Parser(
        prog=prog,
        description=description,
        epilog=f"exit codes:\n{exit_codes}",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", "-V", action="version", version=__version__)
    return parser


def settings_or_exit(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ServerSettings:
    """Server settings, or a usage error naming what is missing."""
    from spalloc.ui.options import server_settings

    try:
        return server_settings(args)
    except ValueError as exc:
        parser.error(str(exc))


def _resolve(settings: ServerSettings) -> tuple[str, int]:
    if settings.is_local:
        from spalloc._local import local_emulator

        emulator: Any = local_emulator()
        return emulator.host, emulator.port
    assert settings.hostname is not None
    return settings.hostname, settings.port


def server_address(host: str, port: int) -> str:
    """``host:port`` as users type it (``[::1]:22244`` for an IPv6 address)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def open_client(settings: ServerSettings, config: SpallocConfig) -> Service:
    """The server, connected (within the timeout) and its version checked: a
    :class:`~spalloc.service.base.Service` on the caller's thread. *config* (the one the
    tool's options came from) gives a v2 server's login and accounting keys, which have no
    options.

    Raises:
        ServerConnectionError: the server could not be reached (refused, timed out, …).
        IncompatibleServerError: the server's version is not one we know, unless ignored.
    """
    from spalloc._deadline import deadline_of
    from spalloc.service import is_v2_url, open_service

    host, port = _resolve(settings)
    service = open_service(
        host,
        port,
        timeout=settings.timeout,
        check_version=not settings.ignore_version,
        light=True,
        config=config if is_v2_url(host) else None,
    )
    service.connect(deadline_of(settings.timeout))
    return service


def deadline(settings: ServerSettings) -> float | None:
    """The deadline of one request made now, from the tool's ``--timeout``."""
    from spalloc._deadline import deadline_of

    return deadline_of(settings.timeout)
