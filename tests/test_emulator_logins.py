"""The emulator's password logins: the login page and form, HTTP Basic, the 401 challenge, and
one failure count per account shared by the form login and Basic, with the lock-out and its
end, as the Java server's ``LocalAuthProviderImpl`` does."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from spalloc.emulator._auth import LOCK_TIME, MAX_LOGIN_FAILURES, Passwords
from spalloc.emulator.users import User, Users
from tests._v2 import V2Server, running_v2_server

HOUR = 3600.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[V2Server]:
    """A fresh server per test: lock-outs must not leak between tests."""
    with running_v2_server(tmp_path, tls=False) as running:
        yield running


def basic_status(server: V2Server, name: str, password: str) -> int:
    http = server.http()
    http.headers["Authorization"] = (
        "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()
    )
    return http.get("srv/spalloc/machines").status


def form_status(server: V2Server, name: str, password: str) -> int:
    return server.http().login(name, password).status


# --- the pages, the form, Basic and the challenge (on the shared server) -------------------


def test_login_page_has_the_csrf_field_and_an_upper_hex_session(v2_server: V2Server) -> None:
    reply = v2_server.http().get("system/login.html")
    assert reply.status == 200
    assert re.search(r'<input type="hidden" name="_csrf" value="[-a-z0-9]{36}" />', reply.text)
    cookie = reply.headers["Set-Cookie"]
    # The Java client's own pattern: JSESSIONID=([A-Z0-9]+);
    assert re.match(r"JSESSIONID=[A-F0-9]{32}; ", cookie)
    assert "Path=/spalloc" in cookie and "Secure" in cookie and "HttpOnly" in cookie


def test_form_login_gives_a_new_session_and_the_root_document(v2_server: V2Server) -> None:
    http = v2_server.http()
    http.get("system/login.html")
    temporary = http.cookie
    user = v2_server.users["alice"]
    assert user.password is not None
    assert http.login(user.name, user.password).status == 302
    assert http.cookie != temporary
    root = http.get("srv/spalloc/").json()
    assert root["version"] == {"major-version": 7, "minor-version": 4, "revision": 2}
    assert root["jobs-ref"] == v2_server.base_url + "srv/spalloc/jobs"
    assert root["machines-ref"] == v2_server.base_url + "srv/spalloc/machines"
    assert root["csrf-header"] == "X-CSRF-TOKEN"
    assert re.fullmatch(r"[-a-z0-9]{36}", root["csrf-token"])


def test_wrong_password_is_401_with_a_json_message(v2_server: V2Server) -> None:
    http = v2_server.http()
    reply = http.login("alice", "wrong")
    assert reply.status == 401
    doc = reply.json()
    assert doc["message"] == "computer says no"  # MyAuthenticationFailureHandler
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", doc["timestamp"])
    assert set(doc) == {"message", "timestamp"}
    assert http.get("srv/spalloc/").status == 401


def test_three_failures_lock_the_account(v2_server: V2Server) -> None:
    for _ in range(3):
        assert v2_server.http().login("bob", "wrong").status == 401
    reply = v2_server.http().login("bob", "bob-secret")
    assert reply.status == 401 and reply.json()["message"] == "computer says no"


def test_perform_login_needs_the_pages_csrf_token(v2_server: V2Server) -> None:
    http = v2_server.http()
    http.get("system/login.html")
    reply = http.request(
        "POST",
        "system/perform_login",
        csrf=False,
        body=b"_csrf=nope&username=alice&password=alice-secret",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status == 403


def test_basic_auth_and_bad_basic(v2_server: V2Server) -> None:
    http = v2_server.http().basic("alice", "alice-secret")
    assert http.get("srv/spalloc/machines").status == 200
    bad = v2_server.http()
    bad.headers["Authorization"] = "Basic bm90LWJhc2U2NA=="  # "not-base64" as user
    assert bad.get("srv/spalloc/").status == 401
    bad.headers["Authorization"] = "Basic !!!"
    assert bad.get("srv/spalloc/").status == 401


def test_unauthenticated_is_401_with_both_challenges(v2_server: V2Server) -> None:
    reply = v2_server.http().get("srv/spalloc/machines")
    assert reply.status == 401
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert reply.text.startswith("log in required")
    # One header per challenge, as the Java server's BasicAuthEntryPoint sends them.
    assert reply.headers.get_all("WWW-Authenticate") == [
        'Basic realm="SpallocService"',
        'Bearer realm="SpallocService", scope="openid, profile, roles, email, team, group"',
    ]


# --- failures and the lock-out, over the wire ------------------------------------------------


def test_a_good_basic_login_clears_the_failures(server: V2Server) -> None:
    for _ in range(MAX_LOGIN_FAILURES - 1):
        assert basic_status(server, "bob", "wrong") == 401
    assert basic_status(server, "bob", "bob-secret") == 200
    for _ in range(MAX_LOGIN_FAILURES - 1):
        assert basic_status(server, "bob", "wrong") == 401
    assert basic_status(server, "bob", "bob-secret") == 200


def test_a_form_failure_counts_once(server: V2Server) -> None:
    for _ in range(MAX_LOGIN_FAILURES - 1):
        assert form_status(server, "bob", "wrong") == 401
    assert form_status(server, "bob", "bob-secret") == 302
    for _ in range(MAX_LOGIN_FAILURES - 1):
        assert form_status(server, "bob", "wrong") == 401
    assert basic_status(server, "bob", "bob-secret") == 200


def test_form_and_basic_failures_add_up_to_one_lock(server: V2Server) -> None:
    assert form_status(server, "bob", "wrong") == 401
    assert basic_status(server, "bob", "wrong") == 401
    reply = server.http().login("bob", "wrong")
    assert reply.status == 401 and reply.json()["message"] == "computer says no"
    # Locked for both kinds of login, the right password included.
    assert basic_status(server, "bob", "bob-secret") == 401
    reply = server.http().login("bob", "bob-secret")
    assert reply.status == 401 and reply.json()["message"] == "computer says no"
    # Somebody else is not affected.
    assert basic_status(server, "alice", "alice-secret") == 200


def test_a_padded_user_name_is_the_same_account(server: V2Server) -> None:
    assert form_status(server, " alice ", "alice-secret") == 302
    for _ in range(MAX_LOGIN_FAILURES):
        assert basic_status(server, "alice\t", "wrong") == 401
    assert form_status(server, "alice", "alice-secret") == 401


# --- the rules, on a clock --------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def passwords(clock: Clock) -> Passwords:
    users = Users([User("bob", "secret"), User("tok", tokens=("t",))])
    return Passwords(users, clock=clock)


def lock(passwords: Passwords) -> None:
    for _ in range(MAX_LOGIN_FAILURES):
        assert passwords.check("bob", "wrong") is None
    assert passwords.locked("bob")


def test_the_lock_ends_a_day_after_the_last_failure(passwords: Passwords, clock: Clock) -> None:
    lock(passwords)
    clock.now += LOCK_TIME - 1
    assert passwords.locked("bob")
    clock.now += 2
    assert not passwords.locked("bob")
    user = passwords.check("bob", "secret")
    assert user is not None and user.name == "bob"


def test_an_attempt_on_a_locked_account_extends_the_lock(
    passwords: Passwords, clock: Clock
) -> None:
    lock(passwords)
    clock.now += 23 * HOUR
    assert passwords.check("bob", "secret") is None  # the right password, refused and counted
    clock.now += 2 * HOUR  # 25 h after the lock, 2 h after the last attempt
    assert passwords.locked("bob")
    assert passwords.check("bob", "secret") is None
    clock.now += LOCK_TIME + 1
    assert passwords.check("bob", "secret") is not None


def test_after_a_lock_ends_the_count_starts_again(passwords: Passwords, clock: Clock) -> None:
    lock(passwords)
    clock.now += LOCK_TIME + 1
    assert passwords.check("bob", "wrong") is None
    assert not passwords.locked("bob")


def test_failures_below_the_limit_do_not_wear_off(passwords: Passwords, clock: Clock) -> None:
    for _ in range(MAX_LOGIN_FAILURES - 1):
        assert passwords.check("bob", "wrong") is None
    clock.now += 30 * 24 * HOUR
    assert passwords.check("bob", "wrong") is None
    assert passwords.locked("bob")


def test_unknown_names_and_accounts_without_a_password_count_nothing(
    passwords: Passwords,
) -> None:
    for _ in range(2 * MAX_LOGIN_FAILURES):
        assert passwords.check("tok", "t") is None
        assert passwords.check("nobody", "x") is None
        assert passwords.check("  ", "x") is None
    assert not passwords.locked("tok") and not passwords.locked("nobody")
    assert passwords._failures == {}
