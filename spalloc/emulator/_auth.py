"""Logins of the emulator's v2 service: sessions, the login form, HTTP Basic, bearer tokens
and CSRF, as Spring Security does them for the Java server (V2_PROTOCOL.md §1.8).

A session is a ``JSESSIONID`` cookie (32 upper-case hex digits) holding the user (None before
the form login) and a CSRF token (a lower-case UUID). Secrets are compared in constant time and
never written anywhere.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import html
import json
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import LooseHeaders

from spalloc.emulator._v2json import iso_time
from spalloc.emulator.users import User, Users

__all__ = [
    "CSRF_HEADER",
    "LOCK_TIME",
    "MAX_LOGIN_FAILURES",
    "SESSION_COOKIE",
    "Caller",
    "HttpError",
    "Logins",
    "Passwords",
    "json_reply",
    "text_reply",
]

SESSION_COOKIE = "JSESSIONID"
CSRF_HEADER = "X-CSRF-TOKEN"
_SESSION_TIMEOUT = 30 * 60.0
_MAX_SESSIONS = 10_000
#: The failure that locks an account (``spalloc.auth.max-login-failures``).
MAX_LOGIN_FAILURES = 3
#: Seconds a lock lasts after the last failure (``spalloc.auth.account-lock-duration``).
LOCK_TIME = 24 * 3600.0
#: All a refused form login is told (the Java server's ``MyAuthenticationFailureHandler``; its
#: debug option, off by default, would add why).
_REFUSED = "computer says no"
_UNAUTHORISED = (
    "log in required, either with BASIC auth or HBP/EBRAINS bearer token (if they are enabled)"
)

_LOGIN_PAGE = """<!DOCTYPE html>
<html><head><title>Spalloc login</title></head>
<body><h1>Log in to spalloc (emulator)</h1>
<form action="{action}" method="post">
<input type="hidden" name="_csrf" value="{csrf}" />
<p><label>User name <input type="text" name="username" /></label></p>
<p><label>Password <input type="password" name="password" /></label></p>
<p><input type="submit" name="submit" value="submit" /></p>
</form></body></html>
"""


class HttpError(Exception):
    """A refusal: *status* with a ``text/plain`` body (204: no body)."""

    def __init__(self, status: int, text: str = "", headers: LooseHeaders | None = None):
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers: LooseHeaders = headers or {}


@dataclass(eq=False)
class WebSession:
    """A login session: who (None before login) and its CSRF token."""

    user: User | None
    csrf: str = field(default_factory=lambda: str(uuid.uuid4()), repr=False)
    expires: float = 0.0


@dataclass
class Caller:
    """Who made a request, and the session it came with (if any)."""

    user: User
    session_id: str | None
    session: WebSession | None
    bearer: bool


def text_reply(status: int, text: str, headers: LooseHeaders | None = None) -> web.Response:
    """A ``text/plain`` response, as the Java server's errors are."""
    return web.Response(status=status, text=text, content_type="text/plain", headers=headers)


def json_reply(doc: Any, status: int = 200, headers: LooseHeaders | None = None) -> web.Response:
    """An ``application/json`` response."""
    return web.Response(
        status=status, text=json.dumps(doc), content_type="application/json", headers=headers
    )


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    locked: bool = False


class Passwords:
    """Password checks with the Java server's lock-out, for the form login and HTTP Basic alike.

    As ``LocalAuthProviderImpl`` and its SQL (``MARK_LOGIN_FAILURE``, ``MARK_LOGIN_SUCCESS``,
    ``UNLOCK_LOCKED_USERS``): the user name is stripped; each failure adds one to the
    account's count and restarts its timer, and the failure that reaches
    :data:`MAX_LOGIN_FAILURES` locks it; an attempt on a locked account, even with the right
    password, is refused and counts as a failure (so it extends the lock); a success sets the
    count back to 0; a lock ends, and its count with it, :data:`LOCK_TIME` after the last
    failure (the Java server's unlock task runs every minute; here it is exact). Unknown names
    and accounts without a password are refused without counting anything.

    Args:
        users: who may log in.
        clock: monotonic seconds.
    """

    def __init__(self, users: Users, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._users = users
        self._clock = clock
        self._failures: dict[str, _Failures] = {}

    def check(self, name: str, password: str) -> User | None:
        """The user if *password* is theirs and the account is not locked, else None."""
        name = name.strip()
        user = self._users.named(name) if name else None
        if user is None:
            return None
        now = self._clock()
        failures = self._failures.get(name)
        if failures is not None and failures.locked:
            if now - failures.last <= LOCK_TIME:
                self._failed(name, now)  # as the Java server: this extends the lock
                return None
            del self._failures[name]  # the unlock task's work, done when next needed
        if user.password is None:
            return None  # an account for another kind of login: nothing to count
        if user.password_matches(password):
            self._failures.pop(name, None)
            return user
        self._failed(name, now)
        return None

    def locked(self, name: str) -> bool:
        """True while *name*'s account is locked."""
        failures = self._failures.get(name.strip())
        return (
            failures is not None and failures.locked and self._clock() - failures.last <= LOCK_TIME
        )

    def _failed(self, name: str, now: float) -> None:
        failures = self._failures.setdefault(name, _Failures())
        failures.count += 1
        failures.last = now
        failures.locked = failures.count >= MAX_LOGIN_FAILURES


class Logins:
    """Sessions and credentials of one v2 service (methods run in the loop's thread).

    Args:
        users: who may log in.
        secure: cookies get ``Secure`` (the service is HTTPS).
    """

    def __init__(self, users: Users, *, secure: bool) -> None:
        self._users = users
        self._secure = secure
        self._sessions: OrderedDict[str, WebSession] = OrderedDict()
        self.passwords = Passwords(users)

    def new_session(self, user: User | None) -> tuple[str, WebSession]:
        """A fresh session (the least recently used one goes when there are too many)."""
        while len(self._sessions) >= _MAX_SESSIONS:
            self._sessions.popitem(last=False)
        session_id = secrets.token_hex(16).upper()
        session = WebSession(user, expires=time.monotonic() + _SESSION_TIMEOUT)
        self._sessions[session_id] = session
        return session_id, session

    def set_cookie(self, response: web.StreamResponse, session_id: str) -> None:
        """Send the session cookie with *response*."""
        response.set_cookie(
            SESSION_COOKIE,
            session_id,
            path="/spalloc",
            httponly=True,
            secure=self._secure,
            samesite="Lax",
        )

    def cookie_session(self, request: web.Request) -> tuple[str | None, WebSession | None]:
        """The live session named by the request's cookie (its idle timer restarts), or None."""
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id is None:
            return None, None
        session = self._sessions.get(session_id)
        now = time.monotonic()
        if session is None or session.expires < now:
            self._sessions.pop(session_id, None)
            return None, None
        session.expires = now + _SESSION_TIMEOUT
        self._sessions.move_to_end(session_id)
        return session_id, session

    def header_user(self, request: web.Request) -> tuple[User, bool] | None:
        """The user named by an Authorization header (and whether it is a bearer token)."""
        header = request.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            user = self._users.with_token(value)
            if user is not None:
                return user, True
        elif scheme.lower() == "basic":
            try:
                name, _, password = (
                    base64.b64decode(value, validate=True).decode("utf-8").partition(":")
                )
            except (binascii.Error, UnicodeDecodeError):
                raise self._unauthorised() from None
            user = self.passwords.check(name, password)
            if user is not None:
                return user, False
        raise self._unauthorised()

    @staticmethod
    def _unauthorised() -> HttpError:
        # Two headers, one challenge each, as BasicAuthEntryPoint sends them.
        challenges = [
            ("WWW-Authenticate", 'Basic realm="SpallocService"'),
            (
                "WWW-Authenticate",
                'Bearer realm="SpallocService", scope="openid, profile, roles, email, team, group"',
            ),
        ]
        return HttpError(401, _UNAUTHORISED, challenges)

    def caller(self, request: web.Request, *, csrf: bool) -> Caller:
        """Who is calling; checks the CSRF token of state-changing requests.

        Raises:
            HttpError: 401 (nobody logged in) or 403 (bad CSRF token).
        """
        from_header = self.header_user(request)
        session_id, session = self.cookie_session(request)
        bearer = from_header is not None and from_header[1]
        # As Spring: CSRF comes first and binds to the session; bearer requests are exempt.
        if csrf and not bearer:
            given = request.headers.get(CSRF_HEADER, "")
            if session is None or not hmac.compare_digest(session.csrf.encode(), given.encode()):
                raise HttpError(
                    403,
                    "Invalid CSRF token: missing or does not match the "
                    "session (send the X-CSRF-TOKEN header)",
                )
        if from_header is not None:
            return Caller(from_header[0], session_id, session, bearer)
        if session is not None and session.user is not None:
            return Caller(session.user, session_id, session, False)
        raise self._unauthorised()

    # --- the login pages ------------------------------------------------------------------

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        found = self.header_user(request)
        session_id, session = self.new_session(found[0] if found else None)
        response = web.Response(
            text=_LOGIN_PAGE.format(
                action="/spalloc/system/perform_login", csrf=html.escape(session.csrf)
            ),
            content_type="text/html",
        )
        self.set_cookie(response, session_id)
        return response

    async def perform_login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        _, session = self.cookie_session(request)
        given = str(form.get("_csrf", request.headers.get(CSRF_HEADER, "")))
        if session is None or not hmac.compare_digest(session.csrf.encode(), given.encode()):
            raise HttpError(403, "Invalid CSRF token: fetch the login page first")
        user = self.passwords.check(str(form.get("username", "")), str(form.get("password", "")))
        if user is None:
            return json_reply({"message": _REFUSED, "timestamp": iso_time(time.time())}, 401)
        old = request.cookies.get(SESSION_COOKIE)
        if old is not None:
            self._sessions.pop(old, None)
        session_id, _ = self.new_session(user)  # a new id: no session fixation
        response = web.Response(status=302, headers={"Location": "/spalloc/system/"})
        self.set_cookie(response, session_id)
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session_id, _ = self.cookie_session(request)
        if session_id is not None:
            self._sessions.pop(session_id, None)
        response = web.Response(status=302, headers={"Location": "/spalloc/system/login.html"})
        response.del_cookie(SESSION_COOKIE, path="/spalloc")
        return response
