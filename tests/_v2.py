"""Helpers for tests of spalloc v2: an emulator serving HTTPS with a users file, and a tiny
HTTP client on the standard library (no redirects followed, one session cookie kept).

``v2_server`` in conftest.py wraps :func:`running_v2_server`; it yields a :class:`V2Server`
with the base URL, the users' credentials and the CA bundle that trusts the server.
"""

from __future__ import annotations

import base64
import http.client
import json
import random
import re
import ssl
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from spalloc.emulator import Emulator
from spalloc.emulator.machines import parse_machines

if TYPE_CHECKING:  # benchmarks/bridge.py imports this module without pytest
    import pytest

    from spalloc.emulator._rest import RestService

__all__ = [
    "USERS",
    "Credentials",
    "Http",
    "Reply",
    "V2Server",
    "log_in_from_environment",
    "long_polls",
    "make_ca",
    "running_v2_server",
    "v2_machines",
]


@dataclass(frozen=True)
class Credentials:
    """One test account (``repr`` hides the secrets)."""

    name: str
    password: str | None = field(repr=False)
    token: str | None = field(repr=False)
    groups: tuple[str, ...]
    admin: bool = False


#: The accounts written to the users file.
USERS = {
    "alice": Credentials("alice", "alice-secret", "alice-token", ("g1",)),
    "bob": Credentials("bob", "bob-secret", None, ("g1", "g2")),
    "root": Credentials("root", "root-secret", "root-token", ("admins",), admin=True),
}


def _users_toml() -> str:
    lines = []
    for user in USERS.values():
        lines.append("[[user]]")
        lines.append(f"name = {json.dumps(user.name)}")
        if user.password is not None:
            lines.append(f"password = {json.dumps(user.password)}")
        if user.token is not None:
            lines.append(f"tokens = [{json.dumps(user.token)}]")
        lines.append(f"groups = {json.dumps(list(user.groups))}")
        lines.append(f"admin = {'true' if user.admin else 'false'}")
    return "\n".join(lines) + "\n"


def v2_machines() -> list[Any]:
    """A 2x1-triad machine (tag ``default``) and a single board, on a random 127.x/16 so that
    parallel test runs do not share board addresses."""
    net = random.Random().randrange(100, 250)
    return parse_machines(
        {
            "machine": [
                {
                    "name": "m2",
                    "tags": ["default"],
                    "width": 2,
                    "height": 1,
                    "base_ip": f"127.{net}.0.0",
                },
                {
                    "name": "one",
                    "tags": ["single"],
                    "single_board": True,
                    "base_ip": f"127.{net}.128.0",
                },
            ]
        },
        "<v2 test machines>",
    )


def make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a 127.0.0.1/localhost certificate: (ca.pem, cert.pem, key.pem)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_path, cert_path, key_path = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(str(ca_path))
    cert.private_key_pem.write_to_path(str(key_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    for extra in cert.cert_chain_pems[1:]:
        cert_path.write_bytes(cert_path.read_bytes() + extra.bytes())
    return ca_path, cert_path, key_path


@dataclass
class V2Server:
    """A running emulator with v2 over HTTPS."""

    emulator: Emulator
    base_url: str
    ca_path: Path
    users_path: Path
    users: Mapping[str, Credentials]

    def http(self) -> Http:
        """A fresh client (no session) trusting the test CA."""
        return Http(self.base_url, self.ca_path)


@contextmanager
def running_v2_server(directory: Path, *, tls: bool = True, **options: Any) -> Iterator[V2Server]:
    """Start an emulator (v1 on port 0, v2 on port 0) with the test users; stop it after."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = make_ca(directory)
    users_path = directory / "users.toml"
    users_path.write_text(_users_toml())
    options.setdefault("machines", v2_machines())
    machines = options.pop("machines")
    with Emulator(
        machines,
        http_port=0,
        users=users_path,
        tls_cert=cert_path if tls else None,
        tls_key=key_path if tls else None,
        **options,
    ) as emulator:
        assert emulator.base_url is not None
        yield V2Server(emulator, emulator.base_url, ca_path, users_path, USERS)


def long_polls(emulator: Emulator, pick: Callable[[RestService], object]) -> None:
    """Wait until *emulator* holds the long-polls that *pick* picks out of its v2 front door
    (``lambda rest: rest._machine_waiters.get("m2")``; ``_job_waiters``, ``_list_waiters``).

    A v2 long-poll is woken only by the changes made after it reaches the server. A follow
    compares each answer with the document it last read, so a change made earlier that alters
    the document is reported only when the long-poll runs out (30 s), and one that does not (a
    machine's allocations) not at all. A test that makes a change and waits a
    bounded time for its report waits for this first. An emulator without v2 has nothing to
    wait for (v1 subscriptions are acknowledged before the client goes on).
    """
    from tests.conftest import wait_for  # not at the top: benchmarks import this module

    rest = emulator._http
    if rest is not None:
        wait_for(lambda: emulator._call(lambda: bool(pick(rest))))


@dataclass
class Reply:
    """One HTTP response, read in full."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class Http:
    """A minimal client: one connection per request, the ``JSESSIONID`` cookie kept."""

    def __init__(self, base_url: str, ca_path: Path | None = None) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url
        self.scheme = parts.scheme
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.context = (
            ssl.create_default_context(cafile=str(ca_path)) if parts.scheme == "https" else None
        )
        self.cookie: str | None = None
        self.csrf: str | None = None
        self.headers: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        json_body: Any = None,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        csrf: bool = True,
        timeout: float = 40.0,
    ) -> Reply:
        """*path* is relative to the base URL (``srv/spalloc/jobs``) or absolute."""
        if path.startswith(("http://", "https://")):
            target = urlsplit(path)
            url = target.path + (f"?{target.query}" if target.query else "")
        else:
            url = urlsplit(self.base_url).path + path
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query)
        sent = dict(self.headers)
        if self.cookie is not None:
            sent["Cookie"] = f"JSESSIONID={self.cookie}"
        if csrf and self.csrf is not None and method not in ("GET", "HEAD"):
            sent["X-CSRF-TOKEN"] = self.csrf
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        if self.context is not None:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, context=self.context, timeout=timeout
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, url, body=body, headers=sent)
            response = conn.getresponse()
            reply = Reply(response.status, response.headers, response.read())
        finally:
            conn.close()
        for cookie in reply.headers.get_all("Set-Cookie") or []:
            match = re.match(r"JSESSIONID=([^;]*)", cookie)
            if match:
                self.cookie = match.group(1)
        return reply

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def basic(self, name: str, password: str) -> Http:
        """Send HTTP Basic credentials on every request; fetch the CSRF token."""
        raw = base64.b64encode(f"{name}:{password}".encode()).decode()
        self.headers["Authorization"] = f"Basic {raw}"
        self.csrf = self.get("srv/spalloc/").json()["csrf-token"]
        return self

    def bearer(self, token: str) -> Http:
        """Send a bearer token on every request."""
        self.headers["Authorization"] = f"Bearer {token}"
        return self

    def login(self, name: str, password: str) -> Reply:
        """The form login SpiNNMan does; on success the session's CSRF token is fetched."""
        page = self.get("system/login.html")
        match = re.search(r'<input type="hidden" name="_csrf" value="([-a-z0-9]+)" />', page.text)
        assert match, page.text
        form = urlencode(
            {"_csrf": match.group(1), "username": name, "password": password, "submit": "submit"}
        ).encode()
        reply = self.request(
            "POST",
            "system/perform_login",
            body=form,
            csrf=False,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        if reply.status == 302:
            self.csrf = self.get("srv/spalloc/").json()["csrf-token"]
        return reply


def log_in_from_environment(
    server: V2Server, monkeypatch: pytest.MonkeyPatch, user: str = "alice", *unset: str
) -> V2Server:
    """Trust ``server`` through ``SSL_CERT_FILE`` and put ``user``'s login in ``SPALLOC_*``.

    Other ways to trust a server or log in (and any ``unset`` names) are removed from the
    environment, so only these apply.
    """
    for name in ("OIDC_BEARER_TOKEN", "REQUESTS_CA_BUNDLE", "SSL_CERT_DIR", *unset):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_path))
    credentials = server.users[user]
    monkeypatch.setenv("SPALLOC_USER", credentials.name)
    monkeypatch.setenv("SPALLOC_PASSWORD", str(credentials.password))
    return server
