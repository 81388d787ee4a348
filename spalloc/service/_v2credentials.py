"""What a spalloc v2 session starts from, read from its arguments and the environment: the
credentials it logs in with (:func:`resolve_credentials`, in SpiNNMan's order of sources) and
the TLS context that says which servers it trusts (:func:`ssl_context`). Nothing here talks to
the network or needs httpx.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from spalloc.exceptions import ConfigError

__all__ = ["Credentials", "resolve_credentials", "ssl_context"]

_HUB_VARIABLES = ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_SERVICE_HOST", "JUPYTERHUB_SERVICE_PORT")


@dataclass(frozen=True)
class Credentials:
    """How to log in: a user and password, a bearer token, or a JupyterHub service that hands
    out bearer tokens (``hub``: its access-token URL); secrets are never shown in a repr."""

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    hub: str | None = None
    hub_token: str | None = field(default=None, repr=False)

    @property
    def bearer(self) -> bool:
        """True for a bearer token (given, or from JupyterHub)."""
        return self.token is not None or self.hub is not None


def resolve_credentials(
    url: str,
    *,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
    configured: Credentials | None = None,
) -> tuple[str, Credentials]:
    """The URL without user info, and the credentials to use, in this order: the keywords,
    user info in the URL, ``SPALLOC_USER``/``SPALLOC_PASSWORD``, inside a JupyterHub its
    ``access-token-service`` (``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_SERVICE_HOST`` and
    ``JUPYTERHUB_SERVICE_PORT``; a fresh token at every login), then ``OIDC_BEARER_TOKEN``
    (SpiNNMan's order).

    Raises:
        ValueError: not an http(s) URL.
        ConfigError: no credentials anywhere (also a ValueError).
    """
    env = os.environ if environ is None else environ
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not a spalloc v2 URL (https://host/spalloc/): {parts.hostname!r}")
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    clean = urlunsplit((parts.scheme.lower(), netloc, path, "", ""))
    if token is not None or (user is not None and password is not None):
        found = Credentials(user, password, token)
    elif parts.username is not None and parts.password is not None:
        found = Credentials(unquote(parts.username), unquote(parts.password))
    elif env.get("SPALLOC_USER") and env.get("SPALLOC_PASSWORD") is not None:
        found = Credentials(env["SPALLOC_USER"], env["SPALLOC_PASSWORD"])
    elif all(env.get(name) for name in _HUB_VARIABLES):
        host, port = env["JUPYTERHUB_SERVICE_HOST"], env["JUPYTERHUB_SERVICE_PORT"]
        host = f"[{host}]" if ":" in host else host
        found = Credentials(
            hub=f"http://{host}:{port}/services/access-token-service/access-token",
            hub_token=env["JUPYTERHUB_API_TOKEN"],
        )
    elif env.get("OIDC_BEARER_TOKEN"):
        found = Credentials(token=env["OIDC_BEARER_TOKEN"])
    elif configured is not None:  # the config file's keys come last
        found = configured
    # A ConfigError (also a ValueError): the tools report it in one line, exit code 2.
    elif user is not None:
        raise ConfigError(
            f"no password for user {user!r} on {clean}: pass password=... or set SPALLOC_PASSWORD",
            key="password",
        )
    else:
        raise ConfigError(
            f"no credentials for the spalloc v2 server {clean}: pass user= and password= (or "
            "token=), put them in the URL (https://user:password@host/spalloc/), or set "
            "SPALLOC_USER and SPALLOC_PASSWORD, or OIDC_BEARER_TOKEN",
            key="user",
        )
    return clean, found


def ssl_context(environ: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """The system's trusted CAs plus those in ``SSL_CERT_FILE``, ``SSL_CERT_DIR`` and
    ``REQUESTS_CA_BUNDLE`` (for a private CA); verification is always on.

    Loading the system's CAs takes some 20 ms, so a context is shared by every session with
    the same variables, until one of the files they name changes.

    Raises:
        ValueError: one of those names a file or directory that cannot be read as CAs.
    """
    env = os.environ if environ is None else environ
    sources = tuple((name, env.get(name) or None) for name in _CA_VARIABLES)
    key = tuple((name, where, _mtime(where)) for name, where in sources)
    with _contexts_lock:
        context = _contexts.get(key)
        if context is None:
            context = _contexts[key] = _new_context(sources)
            while len(_contexts) > 8:
                del _contexts[next(iter(_contexts))]
    return context


_CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "SSL_CERT_DIR")
_contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def _mtime(where: str | None) -> int | None:
    try:
        return None if where is None else os.stat(where).st_mtime_ns
    except OSError:
        return None


def _new_context(sources: tuple[tuple[str, str | None], ...]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    for name, where in sources:
        if not where:
            continue
        try:
            if name == "SSL_CERT_DIR":
                context.load_verify_locations(capath=where)
            else:
                context.load_verify_locations(cafile=where)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"{name}={where!r} cannot be read as trusted CAs: {exc}") from exc
    return context
