"""Layering of settings: spalloc's config file < ``%config SpallocMagics`` < magic options.

The spalloc config file (and ``SPALLOC_*`` variables) is read by the library itself; this
module only decides which values the notebook passes explicitly, and resolves a server
address for the commands that talk to the server without a ``Job``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "JOB_SETTINGS",
    "ServerAddress",
    "explicit_settings",
    "nearest_name",
    "resolve_server",
]

#: The spalloc config keys a notebook may set (same names as the config file and ``Job``).
JOB_SETTINGS = (
    "hostname",
    "port",
    "owner",
    "keepalive",
    "reconnect_delay",
    "timeout",
    "machine",
    "tags",
    "min_ratio",
    "max_dead_boards",
    "max_dead_links",
    "require_torus",
)


@dataclass(frozen=True)
class ServerAddress:
    """Where the server commands (ps, machines, ...) connect to."""

    hostname: str
    port: int
    timeout: float | None
    emulated: bool = False


def nearest_name(name: str, names: Iterable[str]) -> str | None:
    """The closest known name to a misspelt one, or ``None`` if nothing is close."""
    matches = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return matches[0] if matches else None


def explicit_settings(traits: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Settings to pass explicitly: magic options over traits; unset (``None``) ones are left out.

    Whatever is left out the library reads from its config file, so the file stays the base layer.
    """
    merged: dict[str, Any] = {}
    for key in JOB_SETTINGS:
        value = options.get(key)
        if value is None:
            value = traits.get(key)
        if value is not None:
            merged[key] = value
    return merged


def resolve_server(traits: Mapping[str, Any], options: Mapping[str, Any]) -> ServerAddress:
    """Resolve hostname, port and timeout for a bare connection; ``local`` is the emulator.

    Raises:
        ValueError: no hostname is configured anywhere.
    """
    from spalloc._local import is_local
    from spalloc.config import load_config

    explicit = explicit_settings(traits, options)
    if {"hostname", "port", "timeout"} <= explicit.keys():
        hostname, port, timeout = explicit["hostname"], int(explicit["port"]), explicit["timeout"]
    else:  # the config file and SPALLOC_* variables fill the gaps, as the library reads them
        base = load_config()
        hostname = explicit.get("hostname", base.hostname)
        port = int(explicit.get("port", base.port))
        timeout = explicit.get("timeout", base.timeout)
    if timeout is not None and timeout < 0:
        timeout = None
    if not hostname:
        raise ValueError(
            "no spalloc server configured: use --hostname/-H, "
            "%config SpallocMagics.hostname = '...', SPALLOC_HOSTNAME, the spalloc config file, "
            "or --local for the embedded emulator"
        )
    if is_local(hostname):
        from spalloc._local import local_emulator

        emulator = local_emulator()
        return ServerAddress(emulator.host, int(emulator.port), timeout, emulated=True)
    return ServerAddress(str(hostname), port, timeout)
