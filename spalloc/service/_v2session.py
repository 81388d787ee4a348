"""One logged-in session with a spalloc v2 server, over one :class:`httpx.Client`.

Logging in is SpiNNMan's (V2_PROTOCOL.md §3.3): a password goes through the login form (its
CSRF token from ``login.html``, a new ``JSESSIONID`` from ``perform_login``); a bearer token
goes on every request. Either way the service root then gives the session's CSRF token, sent
on every request that changes something. A 401 on an ordinary request (or a 403 from the CSRF
check, which a forgotten session's token fails first) means the session has expired: the
session logs in again, once, and repeats the request (SpiNNMan means to, but its renewal never
runs).

Every httpx exception becomes one of :mod:`spalloc.exceptions` in :meth:`Session.request`,
the one place requests are made. Secrets are kept out of reprs, logs and messages. The
credentials and the TLS context come from :mod:`spalloc.service._v2credentials`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from spalloc._deadline import remaining
from spalloc.exceptions import (
    IncompatibleServerError,
    ProtocolError,
    ProtocolTimeoutError,
    ServerConnectionError,
    SpallocServerException,
)
from spalloc.service._v2credentials import Credentials, ssl_context
from spalloc.service._v2transport import Transport

__all__ = ["Session"]

log = logging.getLogger(__name__)

_CSRF_INPUT = re.compile(r'<input[^>]*name="_csrf"[^>]*value="([^"]*)"')
# How long a long-poll may take beyond the server's own limit (30 s) before it counts as lost.
_POLL_SLACK = 30.0


class Session:
    """A logged-in session; safe to share between threads.

    Args:
        base: the service's URL, ending in ``/`` (``https://host/spalloc/``), no user info.
        credentials: how to log in.
        on_lost: called (outside any lock) when a request meets a transport error.
        check_version: refuse a service root without a readable version.
    """

    def __init__(
        self,
        base: str,
        credentials: Credentials,
        on_lost: Callable[[ServerConnectionError], None],
        *,
        check_version: bool = True,
    ) -> None:
        self.base = base
        self._check_version = check_version
        self._credentials = credentials
        self._on_lost = on_lost
        parts = urlsplit(base)
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._http: httpx.Client | None = None
        self._transport: Transport | None = None
        self._lock = threading.Lock()  # guards _http, _csrf and _logins
        self._login_lock = threading.Lock()  # one renewal at a time
        self._csrf: tuple[str, str] | None = None
        self._logins = 0
        self.version: tuple[int, int, int] | None = None

    def __repr__(self) -> str:
        who = self._credentials.user or ("bearer token" if self._credentials.bearer else "?")
        return f"<v2 Session {self.base} as {who}>"

    # --- logging in -----------------------------------------------------------------------

    def login(self, deadline: float | None) -> None:
        """Start a fresh client and log in (dropping any earlier session).

        Raises:
            ServerConnectionError, ProtocolTimeoutError: the server cannot be reached in time.
            SpallocServerException: the server refused the credentials.
            IncompatibleServerError: the service root is not a spalloc v2 one.
        """
        transport = Transport(ssl_context())
        headers = {"User-Agent": "spalloc-nb"}
        if self._credentials.token is not None:
            headers["Authorization"] = f"Bearer {self._credentials.token}"
        # trust_env=False: proxies and CAs are read by us (ssl_context), not guessed by httpx.
        client = httpx.Client(
            base_url=self.base,
            transport=transport,
            headers=headers,
            follow_redirects=False,
            trust_env=False,
        )
        with self._lock:
            old, self._http, self._csrf = self._http, client, None
            old_transport, self._transport = self._transport, transport
        _close(old, old_transport)
        self._login(client, deadline)

    def _login(self, client: httpx.Client, deadline: float | None) -> None:
        creds = self._credentials
        with self._lock:
            # Spring reads a CSRF header before the login form's field: a stale token of the
            # expired session must not go with the new login.
            self._csrf = None
        if creds.hub is not None:
            client.headers["Authorization"] = f"Bearer {self._hub_token(client, deadline)}"
        elif not creds.bearer:
            self._form_login(client, deadline)
        root = self._send(client, "GET", "srv/spalloc/", deadline, "GET service root")
        if root.status_code == 401:
            who = (
                "the bearer token"
                if creds.token is not None
                else "the token from JupyterHub"
                if creds.hub is not None
                else f"user {creds.user!r}"
            )
            raise SpallocServerException(
                f"the spalloc v2 server {self.base} refused {who}: {_text(root)}", command="login"
            )
        self._check(root, "GET service root")
        doc = _json(root, "service root")
        if not isinstance(doc, Mapping):
            raise ProtocolError(f"the root document of {self.base} is not a JSON object")
        self.version = _version(doc.get("version"))
        if self.version is None and self._check_version:
            raise IncompatibleServerError(
                repr(doc.get("version")),
                f"{self.base} is not a "
                "spalloc v2 service (no readable version in its "
                "root document)",
            )
        header, token = doc.get("csrf-header"), doc.get("csrf-token")
        with self._lock:
            self._csrf = (
                (header, token) if isinstance(header, str) and isinstance(token, str) else None
            )
            self._logins += 1

    def _hub_token(self, client: httpx.Client, deadline: float | None) -> str:
        """A bearer token from the JupyterHub's ``access-token-service`` (as SpiNNMan gets)."""
        creds = self._credentials
        assert creds.hub is not None
        what = "get a token from JupyterHub's access-token-service"
        reply = self._send(
            client,
            "GET",
            creds.hub,
            deadline,
            what,
            headers={"Authorization": f"Token {creds.hub_token}"},
        )
        if reply.status_code >= 400:
            raise SpallocServerException(f"{what} ({creds.hub}): {_text(reply)}", command="login")
        token = _json(reply, "access-token-service answer")
        token = token.get("access_token") if isinstance(token, Mapping) else None
        if not isinstance(token, str) or not token:
            raise ProtocolError(f"{what}: no access_token in its answer")
        return token

    def _form_login(self, client: httpx.Client, deadline: float | None) -> None:
        creds = self._credentials
        page = self._send(client, "GET", "system/login.html", deadline, "GET login page")
        if page.status_code == 404:
            raise SpallocServerException(
                f"{self.base} has no spalloc login page: is it the service's URL? (it usually "
                "ends in /spalloc/, as https://spinnaker.cs.man.ac.uk/spalloc/)",
                command="login",
            )
        self._check(page, "GET login page")
        match = _CSRF_INPUT.search(page.text)
        if match is None:
            raise ProtocolError(f"the login page of {self.base} has no CSRF token")
        form = {
            "_csrf": match.group(1),
            "username": creds.user or "",
            "password": creds.password or "",
            "submit": "submit",
        }
        reply = self._send(client, "POST", "system/perform_login", deadline, "log in", data=form)
        if reply.status_code in (301, 302, 303) and "error" not in reply.headers.get(
            "Location", ""
        ):
            return
        message = _text(reply)
        with contextlib.suppress(ValueError, AttributeError):
            message = str(reply.json()["message"])
        raise SpallocServerException(
            f"login to the spalloc v2 server {self.base} as {creds.user!r} failed: {message} "
            "(check the user name and password)",
            command="login",
        )

    # --- requests -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        deadline: float | None,
        what: str,
        *,
        poll: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request; after a 401 log in again once and repeat it.

        Args:
            method, path: the request; *path* is relative to the base URL.
            deadline: ``time.monotonic()`` deadline for every step (``None``: none).
            what: the operation, for messages.
            poll: a long-poll: the read may take the server's whole wait (plus slack).

        Returns:
            The response, with a status below 400 (204 included).

        Raises:
            ProtocolError: not logged in; ServerConnectionError / ProtocolTimeoutError for
                transport failures and timeouts.
            SpallocServerException: a 4xx or 5xx answer (the server's text).
        """
        client = self._http
        if client is None:
            raise ProtocolError(f"{what}: not connected to {self.base}")
        logins = self._logins
        reply = self._send(client, method, path, deadline, what, poll=poll, **kwargs)
        if _expired(reply):
            with self._login_lock:
                if self._logins == logins and self._http is client:
                    log.info("spalloc v2 session with %s expired; logging in again", self.base)
                    self._login(client, deadline)
            reply = self._send(client, method, path, deadline, what, poll=poll, **kwargs)
        self._check(reply, what)
        return reply

    def _send(
        self,
        client: httpx.Client,
        method: str,
        path: str,
        deadline: float | None,
        what: str,
        *,
        poll: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        left = remaining(deadline)
        if left is not None and left <= 0:
            raise ProtocolTimeoutError(
                f"{what}: no time left to ask {self.base}", command=what, timeout=left
            )
        # A long-poll without a deadline still gives up on a server silent past its wait.
        timeout = (
            httpx.Timeout(_POLL_SLACK, read=2 * _POLL_SLACK)
            if poll and left is None
            else httpx.Timeout(left)
        )
        headers = dict(kwargs.pop("headers", None) or {})
        csrf = self._csrf
        if method != "GET" and csrf is not None:
            headers[csrf[0]] = csrf[1]
        log.debug("%s %s", method, path)  # never the headers: they may carry a token
        with self._mapped(what, left, client):
            return client.request(method, path, headers=headers, timeout=timeout, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover (for type checkers)

    @contextlib.contextmanager
    def _mapped(self, what: str, timeout: float | None, client: httpx.Client) -> Iterator[None]:
        """The one place httpx's exceptions become ours."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise ProtocolTimeoutError(
                f"{what}: no answer from {self.base} within {timeout} s",
                command=what,
                timeout=timeout,
            ) from exc
        except httpx.TransportError as exc:
            error = ServerConnectionError(
                f"{what}: cannot talk to the spalloc v2 server {self.base}: {exc or type(exc)}",
                host=self._host,
                port=self._port,
            )
            error.__cause__ = exc
            if client is self._http:  # not a request of a client closed already
                self._on_lost(error)
            raise error from exc
        except httpx.HTTPError as exc:
            raise ProtocolError(f"{what}: {exc}") from exc
        except RuntimeError as exc:  # a client closed under us (disconnect() from a thread)
            raise ProtocolError(f"{what}: the connection to {self.base} was closed") from exc

    @staticmethod
    def _check(reply: httpx.Response, what: str) -> None:
        if reply.status_code >= 400:
            raise SpallocServerException(f"{what}: {_text(reply)}", command=what)

    def websocket_headers(self) -> dict[str, str]:
        """The login's headers for a websocket upgrade (the proxy): the bearer token, or the
        session cookie and the CSRF header, as SpiNNMan sends them (never logged).

        Raises:
            ProtocolError: not logged in.
        """
        client = self._http
        if client is None:
            raise ProtocolError(f"not connected to {self.base}")
        headers = {"User-Agent": "spalloc-nb"}
        authorization = client.headers.get("Authorization")
        if authorization is not None:
            headers["Authorization"] = authorization
        cookies = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
        if cookies:
            headers["Cookie"] = cookies
        csrf = self._csrf
        if csrf is not None:
            headers[csrf[0]] = csrf[1]
        return headers

    def close(self) -> None:
        """Drop the client (idempotent); requests in flight, long-polls too, fail at once."""
        with self._lock:
            client, self._http, self._csrf = self._http, None, None
            transport, self._transport = self._transport, None
        _close(client, transport)


def _close(client: httpx.Client | None, transport: Transport | None) -> None:
    if transport is not None:
        transport.abort()
    if client is not None:
        client.close()


def _version(value: Any) -> tuple[int, int, int] | None:
    """The ``{"major-version": 7, ...}`` of a service root, or ``None`` if unreadable."""
    if not isinstance(value, Mapping):
        return None
    try:
        return (
            int(value["major-version"]),
            int(value.get("minor-version", 0)),
            int(value.get("revision", 0)),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _expired(reply: httpx.Response) -> bool:
    """Does *reply* say the session has expired? A GET then gets 401; a POST, PUT or DELETE
    meets Spring's CSRF check first, which refuses a token of a forgotten session with 403."""
    if reply.status_code == 401:
        return True
    return reply.status_code == 403 and "csrf" in reply.text.lower()


def _text(reply: httpx.Response) -> str:
    text = reply.text.strip()
    return text[:500] if text else f"HTTP {reply.status_code} {reply.reason_phrase}"


def _json(reply: httpx.Response, what: str) -> Any:
    try:
        return reply.json()
    except ValueError as exc:
        raise ProtocolError(f"malformed {what} from the v2 server: {exc}") from exc
