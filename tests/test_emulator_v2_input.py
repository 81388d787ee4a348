"""Bad input on the v2 side, TLS, users files and the command line: clear refusals, no
crash, nothing lost for other clients; aiohttp only loaded when v2 is on."""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from spalloc import ProtocolClient
from spalloc.emulator import Emulator
from spalloc.emulator.users import UserConfigError, load_users, parse_users
from tests._emuproc import emulator_process, run_emulator
from tests._v2 import USERS, V2Server, make_ca
from tests.conftest import WAIT
from tests.test_emulator_v2 import alice, create, wait_state


def raw_post(server: V2Server, path: str, body: bytes, headers: dict[str, str]) -> int:
    http = alice(server)
    reply = http.request("POST", path, body=body, headers=headers)
    return reply.status


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b'{"keepalive-interval": NaN}', "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b'{"keepalive-interval": "PT60S"}', "text/plain", 415),
        (b'{"keepalive-interval": "PT60S", "num-boards": true}', "application/json", 400),
        (b'{"keepalive-interval": "PT60S", "tags": "default"}', "application/json", 400),
        (b'{"keepalive-interval": "PT60S", "dimensions": [1, 1]}', "application/json", 400),
        (b'{"keepalive-interval": "PT60S", "board": {"x": 0}}', "application/json", 400),
        (b'{"keepalive-interval": [60]}', "application/json", 400),
    ],
)
def test_malformed_and_mistyped_create_bodies(
    v2_server: V2Server, body: bytes, content_type: str, status: int
) -> None:
    assert raw_post(v2_server, "srv/spalloc/jobs", body, {"Content-Type": content_type}) == status
    assert v2_server.emulator.jobs() == []


def test_bad_power_bodies(v2_server: V2Server) -> None:
    http = alice(v2_server)
    job_id = create(http)
    bodies: list[Any] = [{"power": "on"}, {"power": 1}, [], {"nothing": True}]
    for body in bodies:
        reply = http.request("POST", f"srv/spalloc/jobs/{job_id}/machine/power", json_body=body)
        assert (reply.status, reply.text) == (400, "bad power description")


def test_unknown_paths_and_methods(v2_server: V2Server) -> None:
    http = alice(v2_server)
    for path in (
        "srv/spalloc/nothing",
        "srv/spalloc/jobs/abc",
        "srv/other",
        "../../etc/passwd",
        "srv/spalloc/machines/m2/elsewhere",
    ):
        reply = http.get(path)
        assert reply.status == 404 and reply.headers["Content-Type"].startswith("text/plain")
    outside = http.get("/etc/passwd")
    assert outside.status == 404
    reply = http.request("PATCH", "srv/spalloc/jobs")
    assert reply.status == 405 and reply.headers["Allow"] == "GET, POST"


def test_a_10_mb_body_is_413_and_the_server_carries_on(v2_server: V2Server) -> None:
    web = alice(v2_server)
    job_id = create(web)
    try:
        reply = web.request(
            "POST",
            "srv/spalloc/jobs",
            body=b"[" + b"1," * (5 << 20) + b"1]",
            headers={"Content-Type": "application/json"},
        )
        status = reply.status
    except (ConnectionError, http.client.HTTPException):
        status = 413  # the server may close while the client is still sending
    assert status == 413
    assert web.get(f"srv/spalloc/jobs/{job_id}").status == 200
    assert [j.job_id for j in v2_server.emulator.jobs()] == [job_id]


def test_a_half_sent_request_does_not_block_others(v2_server: V2Server) -> None:
    host, port = v2_server.emulator.http_address or ("", 0)
    context = ssl.create_default_context(cafile=str(v2_server.ca_path))
    with (
        socket.create_connection((host, port), timeout=WAIT) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(
            b"POST /spalloc/srv/spalloc/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
        )
        http = alice(v2_server)
        job_id = create(http)
        wait_state(http, job_id, "READY")
    with ProtocolClient(*v2_server.emulator.address) as v1:
        assert v1.version() == "5.0.0"


def test_garbage_bytes_on_the_https_port(v2_server: V2Server) -> None:
    host, port = v2_server.emulator.http_address or ("", 0)
    with socket.create_connection((host, port), timeout=WAIT) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\n\r\n" + os.urandom(2048))
        raw.settimeout(WAIT)
        try:
            while raw.recv(4096):
                pass
        except OSError:
            pass
    assert alice(v2_server).get("srv/spalloc/").status == 200


def test_untrusted_clients_cannot_complete_tls(v2_server: V2Server) -> None:
    host, port = v2_server.emulator.http_address or ("", 0)
    conn = http.client.HTTPSConnection(
        host, port, context=ssl.create_default_context(), timeout=WAIT
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        conn.request("GET", "/spalloc/")
    conn.close()


def test_plain_http_service(tmp_path: Path) -> None:
    from tests._v2 import running_v2_server

    with running_v2_server(tmp_path, tls=False) as server:
        assert server.base_url.startswith("http://")
        http = alice(server)
        job_id = create(http)
        state = wait_state(http, job_id, "READY")
        assert state["proxy-ref"].startswith("ws://")
        assert "Secure" not in (http.get("system/login.html").headers["Set-Cookie"])


# --- users files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one [[user]]"),
        ("[[user]]\npassword = 'x'\n", "name must be"),
        ("[[user]]\nname = 'a'\n", "needs a password or a token"),
        ("[[user]]\nname = 'a'\npassword = 'x'\ncolour = 1\n", "unknown key 'colour'"),
        ("[[user]]\nname = 'a'\npassword = 'x'\nadmin = 'yes'\n", "admin must be"),
        ("[[user]]\nname = 'a'\ntokens = 'x'\n", "tokens must be a list"),
        (
            "[[user]]\nname = 'a'\npassword = 'p1'\n[[user]]\nname = 'a'\npassword = 'p2'\n",
            "duplicate",
        ),
        ("[[user]\nname = 'a'", "not valid TOML"),
    ],
)
def test_bad_users_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "users.toml"
    path.write_text(text)
    with pytest.raises(UserConfigError, match=message.replace("[", r"\[")) as info:
        load_users(path)
    assert "p1" not in str(info.value) and "p2" not in str(info.value)


def test_secrets_stay_out_of_reprs() -> None:
    users = parse_users(
        {"user": [{"name": "a", "password": "hunter2", "tokens": ["tok-9"]}]}, "<test>"
    )
    user = users.named("a")
    assert user is not None
    for text in (repr(users), repr(user), str(user)):
        assert "hunter2" not in text and "tok-9" not in text
    assert users.with_token("tok-9") is user and users.with_token("tok-") is None


def test_default_users_only_on_loopback() -> None:
    with pytest.raises(ValueError, match="needs a users file"):
        Emulator(http_port=0, host="0.0.0.0")
    with pytest.raises(ValueError, match="go together"):
        Emulator(http_port=0, tls_cert="c.pem")
    with Emulator(http_port=0) as emulator:
        assert emulator.base_url is not None
        from tests._v2 import Http

        http = Http(emulator.base_url)
        assert http.login("spalloc", "spalloc").status == 302


# --- command line and imports ---------------------------------------------------------------


def test_cli_serves_https_and_prints_both_addresses(tmp_path: Path) -> None:
    _, cert, key = make_ca(tmp_path)
    users = tmp_path / "users.toml"
    users.write_text(
        "[[user]]\nname = 'alice'\npassword = 'do-not-print-me'\ntokens = ['nor-me']\n"
    )
    with emulator_process(
        "--port", "0", "--http-port", "0", "--users", users, "--tls-cert", cert, "--tls-key", key
    ) as (proc, line):
        assert line.startswith("spalloc-emulator listening on 127.0.0.1:")
        assert " and https://127.0.0.1:" in line and "/spalloc/ serving " in line
        assert "do-not-print-me" not in line and "nor-me" not in line
        proc.terminate()
        out, err = proc.communicate(timeout=WAIT)
    assert "do-not-print-me" not in out + err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--http-port", "0", "--tls-cert", "x.pem"], "go together"),
        (["--users", "u.toml"], "need --http-port"),
        (["--http-port", "0", "--users", "/nonexistent/u.toml"], "No such file"),
        (
            ["--http-port", "0", "--tls-cert", "/nonexistent/c", "--tls-key", "/nonexistent/k"],
            "No such file",
        ),
    ],
)
def test_cli_refuses_bad_v2_options(args: list[str], message: str) -> None:
    proc = run_emulator("--port", "0", *args)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_aiohttp_is_loaded_only_for_v2() -> None:
    code = (
        "import sys, spalloc, spalloc.emulator\n"
        "from spalloc.emulator import Emulator\n"
        "with Emulator():\n"
        "    assert 'aiohttp' not in sys.modules, 'v1 only'\n"
        "with Emulator(http_port=0):\n"
        "    assert 'aiohttp' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_stop_and_start_keeps_the_v2_port_and_jobs(v2_server: V2Server) -> None:
    http = alice(v2_server)
    job_id = create(http)
    base = v2_server.base_url
    v2_server.emulator.stop()
    v2_server.emulator.start()
    assert v2_server.emulator.base_url == base
    deadline = time.monotonic() + WAIT
    while True:
        try:
            again = alice(v2_server)
            break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert again.get(f"srv/spalloc/jobs/{job_id}").json()["owner"] == USERS["alice"].name


# --- durations (pure) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT120S", 120.0),
        ("pt60s", 60.0),
        ("PT2M", 120.0),
        ("PT1M30.5S", 90.5),
        ("P1DT1H", 90000.0),
        ("PT0,25S", 0.25),
        ("-PT5S", -5.0),
        (45, 45.0),
        (2.5, 2.5),
    ],
)
def test_durations_parse(text: object, seconds: float) -> None:
    from spalloc.emulator._v2json import parse_duration

    assert parse_duration(text, "d") == seconds


@pytest.mark.parametrize(
    "text", ["", "P", "PT", "120", "PT5X", "5 minutes", True, None, float("inf"), [1]]
)
def test_bad_durations_are_refused(text: object) -> None:
    from spalloc.emulator._jobs import CommandError
    from spalloc.emulator._v2json import parse_duration

    with pytest.raises(CommandError, match="d must be"):
        parse_duration(text, "d")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (30.0, "PT30S"),
        (300.0, "PT5M"),
        (120.0, "PT2M"),
        (90.5, "PT1M30.5S"),
        (3600.0, "PT1H"),
        (0.0, "PT0S"),
    ],
)
def test_durations_print_as_java_does(seconds: float, text: str) -> None:
    from spalloc.emulator._v2json import iso_duration

    assert iso_duration(seconds) == text
