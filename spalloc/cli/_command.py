"""Building and running the command that ``spalloc -c`` wraps.

Tokens (as the seed documents): ``{}`` / ``{hostname}`` chip (0, 0)'s hostname, ``{w}`` /
``{width}`` and ``{h}`` / ``{height}`` the size in chips, ``{ethernet_ips}`` the CSV file of
Ethernet IPs, ``{id}`` the job ID. ``{{`` and ``}}`` are literal braces; any other
``{word}`` is left alone, so ``awk '{print}'`` needs no escaping (the official tool crashed
with a KeyError: B10).

Two forms, both run through ``/bin/sh``:

* one argument, ``-c "rig-boot {} {w} {h} && python my_app.py {}"``: the argument is a
  shell command line (so ``&&``, ``;`` and pipes work as documented: B9). Each substituted
  value is shell-quoted, and values that come from the server must look like a hostname
  (letters, digits, ``.``, ``-``, ``:``, ``_``), so a hostile server cannot inject commands
  even where the user wrote a token inside quotes;
* several arguments, ``-c echo {} {w}``: each argument is one word, exactly as given after
  substitution (quoted as a whole), as the official tool did.
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

from spalloc.exceptions import SpallocError

__all__ = [
    "UnsafeValueError",
    "command_values",
    "exit_status",
    "run_command",
    "shell_command",
    "substitute",
]

_FIELD = re.compile(r"\{\{|\}\}|\{([A-Za-z_]*)\}")
_SAFE_HOST = re.compile(r"[A-Za-z0-9._:-]+")
_ALIASES = {"": "hostname", "w": "width", "h": "height"}


class UnsafeValueError(SpallocError, ValueError):
    """A server-supplied value that cannot be put into a shell command safely."""


def command_values(
    job_id: int, hostname: str | None, width: int | None, height: int | None, ethernet_ips: str
) -> dict[str, str]:
    """The substitution values (unquoted) for a ready job."""
    return {
        "hostname": "" if hostname is None else str(hostname),
        "width": "" if width is None else str(int(width)),
        "height": "" if height is None else str(int(height)),
        "ethernet_ips": ethernet_ips,
        "id": str(int(job_id)),
    }


def substitute(template: str, values: Mapping[str, str], *, quote: bool) -> str:
    """Replace the tokens in *template*; with ``quote``, each value is shell-quoted."""

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "{{":
            return "{"
        if text == "}}":
            return "}"
        name = _ALIASES.get(match.group(1), match.group(1))
        if name not in values:
            return text
        return shlex.quote(values[name]) if quote else values[name]

    return _FIELD.sub(replace, template)


def shell_command(words: Sequence[str], values: Mapping[str, str]) -> str:
    """The ``/bin/sh`` command line for ``-c WORDS``.

    Raises:
        UnsafeValueError: one argument (a shell command line) and the server's hostname
            holds characters no hostname has.
        ValueError: no command was given.
    """
    if not words:
        raise ValueError("-c needs a command")
    if len(words) == 1:
        host = values.get("hostname", "")
        if host and not _SAFE_HOST.fullmatch(host):
            raise UnsafeValueError(
                f"the server gave the hostname {host!r}, which is not safe to put in a shell "
                "command"
            )
        return substitute(words[0], values, quote=True)
    return " ".join(shlex.quote(substitute(word, values, quote=False)) for word in words)


def exit_status(returncode: int) -> int:
    """A child's exit status as a shell reports it: killed by signal N gives 128 + N (B15)."""
    return 128 - returncode if returncode < 0 else returncode


def run_command(command: str, *, grace: float = 5.0) -> tuple[int, bool]:
    """Run *command* with ``/bin/sh`` and wait for it to end.

    While it runs, Ctrl-C does not interrupt us: it is recorded, and the command is given
    time to stop. A terminal sends Ctrl-C to the command as well; if the command is still
    running half a second later (Ctrl-C was sent to spalloc alone, or the command ignored
    it), it gets SIGINT from us, then SIGTERM after *grace* seconds, then SIGKILL.

    Returns:
        The command's exit status (:func:`exit_status`) and whether Ctrl-C was pressed.
    """
    interrupted_at: list[float] = []

    def on_interrupt(signum: int, frame: object) -> None:
        if not interrupted_at:
            interrupted_at.append(time.monotonic())

    try:
        previous = signal.signal(signal.SIGINT, on_interrupt)
    except ValueError:  # not the main thread: Ctrl-C cannot reach us here anyway
        previous = None
    try:
        proc = subprocess.Popen(command, shell=True)
        steps = [
            (0.5, signal.SIGINT),
            (0.5 + grace, signal.SIGTERM),
            (0.5 + 2 * grace, signal.SIGKILL),
        ]
        while True:
            try:
                return exit_status(proc.wait(timeout=_POLL)), bool(interrupted_at)
            except subprocess.TimeoutExpired:
                pass
            if interrupted_at and steps:
                after, sig = steps[0]
                if time.monotonic() - interrupted_at[0] >= after:
                    steps.pop(0)
                    _signal(proc, sig)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


# How often the wait for the command looks at Ctrl-C (Popen.wait polls with a timeout).
_POLL = 0.1


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
