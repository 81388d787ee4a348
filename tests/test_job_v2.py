"""``Job`` over spalloc v2 (``hostname="https://…/spalloc/"``) against the emulator's HTTPS
service: the life cycle, power, where-is, resume, destroy reasons, keepalives, the logins and
their failures, session renewal, and the same job read through v1 and v2 alike."""

from __future__ import annotations

import http.server
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spalloc import Job, JobState
from spalloc._deadline import deadline_of
from spalloc.exceptions import (
    JobDestroyedError,
    ProtocolTimeoutError,
    ServerConnectionError,
    SpallocServerException,
)
from spalloc.service import open_service
from spalloc.service.v1 import V1Service
from spalloc.service.v2 import V2Service
from tests._v2 import Http, V2Server, long_polls, running_v2_server
from tests.conftest import make_appendix_machines, wait_for

WAIT = 5.0


@pytest.fixture
def server(v2_server: V2Server, isolated_config: None, monkeypatch: pytest.MonkeyPatch) -> V2Server:
    """The v2 emulator, trusted through ``SSL_CERT_FILE``, with no credentials about."""
    for name in (
        "OIDC_BEARER_TOKEN",
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_DIR",
        "NMPI_JOB_ID",
        "NMPI_USER",
        "JUPYTERHUB_API_TOKEN",
        "JUPYTERHUB_SERVICE_HOST",
        "JUPYTERHUB_SERVICE_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(v2_server.ca_path))
    return v2_server


def alice_job(server: V2Server, *args: int, **kwargs: Any) -> Job:
    user = server.users["alice"]
    kwargs.setdefault("timeout", WAIT)
    kwargs.setdefault("user", user.name)
    kwargs.setdefault("password", user.password)
    kwargs.setdefault("hostname", server.base_url)
    return Job(*args, **kwargs)


def admin_http(server: V2Server) -> Http:
    root = server.users["root"]
    assert root.password is not None
    return server.http().basic(root.name, root.password)


def job_doc(server: V2Server, job_id: int) -> dict[str, Any]:
    doc: dict[str, Any] = admin_http(server).get(f"srv/spalloc/jobs/{job_id}").json()
    return doc


def v1_job(server: V2Server, job_id: int) -> Job:
    emulator = server.emulator
    return Job(resume_job_id=job_id, hostname=emulator.host, port=emulator.port, timeout=WAIT)


# --- the life cycle ------------------------------------------------------------------------


def test_life_cycle_with_a_password(server: V2Server) -> None:
    job = alice_job(server, 1, keepalive=60)
    try:
        assert isinstance(job.service, V2Service) and job.client is None
        job.wait_until_ready(WAIT)
        assert job.state is JobState.ready and job.power is True
        assert (job.width, job.height) == (8, 8)  # one board, in chips as v1 gives it
        assert job.machine_name == "m2" and job.boards == [[0, 0, 0]]
        assert job.connections is not None and job.hostname == job.connections[(0, 0)]
        assert job.keepalive == 60.0 and job.owner is None  # no owner sent over v2
        [info] = server.emulator.jobs()
        assert info.job_id == job.id and info.owner == "alice"
    finally:
        job.destroy("all done")
    assert job.state is JobState.destroyed and job.reason == "all done"
    assert server.emulator.retired_jobs()[job.id] == "all done"
    assert job_doc(server, job.id)["reason"] == "all done"


def test_context_manager_waits_and_destroys(server: V2Server) -> None:
    with alice_job(server, 1) as job:
        assert job.state is JobState.ready
        job_id = job.id
    assert job.state is JobState.destroyed
    assert job_id in server.emulator.retired_jobs()


def test_power_off_on_and_reset(server: V2Server) -> None:
    with alice_job(server, 1) as job:
        board = (0, 0, 0)
        job.set_power(False)
        job.wait_until_ready(WAIT)
        assert job.power is False
        assert not server.emulator.board_power("m2", board)
        job.set_power(True)
        job.wait_until_ready(WAIT)
        assert job.power is True and server.emulator.board_power("m2", board)
        job.reset()
        job.wait_until_ready(WAIT)
        assert job.power is True and job.state is JobState.ready


def test_where_is_machine(server: V2Server) -> None:
    with alice_job(server, 2) as job:
        assert job.connections is not None and len(job.connections) >= 2
        v1 = v1_job(server, job.id)  # type: ignore[arg-type]
        try:
            for x, y in job.connections:  # each board's Ethernet chip, and one inside it
                assert job.where_is_machine(x, y) == v1.where_is_machine(x, y)
                assert job.where_is_machine(x + 3, y + 2) == v1.where_is_machine(x + 3, y + 2)
            assert job.where_is_machine(0, 0) == (0, 0, 0)
        finally:
            v1.close()
        with pytest.raises(ValueError, match="not in job"):
            job.where_is_machine(1000, 1000)


def test_resume_and_a_missing_job(server: V2Server) -> None:
    first = alice_job(server, 1, keepalive=45)
    try:
        first.wait_until_ready(WAIT)
        first.close()  # the job stays
        again = alice_job(server, resume_job_id=first.id)
        try:
            assert again.keepalive == 45.0 and again.state is JobState.ready
            assert again.connections == first.connections
        finally:
            again.destroy("resumed and done")
        assert again.id is not None
        assert server.emulator.retired_jobs()[again.id] == "resumed and done"
    finally:
        first.destroy()
    with pytest.raises(JobDestroyedError):
        alice_job(server, resume_job_id=first.id)
    with pytest.raises(JobDestroyedError, match="no such job"):
        alice_job(server, resume_job_id=9999)


def test_another_users_job_cannot_be_taken_over_or_read(server: V2Server) -> None:
    with alice_job(server, 1) as job:
        bob = server.users["bob"]
        with pytest.raises(SpallocServerException, match="not your job"):
            Job(
                resume_job_id=job.id,
                hostname=server.base_url,
                user=bob.name,
                password=bob.password,
                timeout=WAIT,
            )
        with Job(
            1,
            hostname=server.base_url,
            user=bob.name,
            password=bob.password,
            group="g1",
            timeout=WAIT,
        ) as bobs:
            assert job.service is not None and bobs.service is not None
            assert [j.job_id for j in bobs.service.list_jobs(deadline_of(WAIT))] == [bobs.id]
            root = server.users["root"]
            admin = open_service(server.base_url, None, user=root.name, password=root.password)
            try:
                admin.connect(deadline_of(WAIT))
                listed = admin.list_jobs(deadline_of(WAIT))
                assert [(j.job_id, j.owner) for j in listed] == [
                    (job.id, "alice"),
                    (bobs.id, "bob"),
                ]
            finally:
                admin.close()


# --- the same job through v1 and v2 -----------------------------------------------------------


@pytest.mark.parametrize("args", [(1,), (2,), (1, 1), (2, 1)])
def test_the_same_job_reads_the_same_through_v1_and_v2(
    server: V2Server, args: tuple[int, ...]
) -> None:
    with alice_job(server, *args) as job:
        v1 = v1_job(server, job.id)  # type: ignore[arg-type]
        try:
            v1.wait_until_ready(WAIT)
            for name in (
                "id",
                "state",
                "power",
                "width",
                "height",
                "connections",
                "hostname",
                "machine_name",
                "boards",
                "keepalive",
                "reason",
            ):
                assert getattr(job, name) == getattr(v1, name), name
            assert job.snapshot.start_time == pytest.approx(v1.snapshot.start_time, abs=1e-3)
        finally:
            v1.close()
        job_id = job.id
    # Destroyed over v2, as v1 sees it.
    v1_service = V1Service(server.emulator.host, server.emulator.port)
    try:
        v1_service.connect(deadline_of(WAIT))
        assert job_id is not None
        state = v1_service.send_fetch(job_id, deadline_of(WAIT)).wait().state
        # Destroyed over v2 without a reason: the server records "" (the parameter's default),
        # which a Job reads as no reason.
        assert state.state is JobState.destroyed and state.reason == "" and job.reason is None
    finally:
        v1_service.close()


def test_machines_and_jobs_read_the_same_through_v1_and_v2(
    tmp_path: Path, isolated_config: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Appendix A's machines have dead boards and dead links.
    with running_v2_server(tmp_path / "v2", machines=make_appendix_machines()) as server:
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_path))
        alice = server.users["alice"]
        v2 = open_service(server.base_url, None, user=alice.name, password=alice.password)
        v1 = open_service(server.emulator.host, server.emulator.port)
        try:
            v1.connect(deadline_of(WAIT))
            v2.connect(deadline_of(WAIT))

            def machines(service: Any) -> list[Any]:
                return [
                    (m.name, m.tags, m.width, m.height, sorted(m.dead_boards), sorted(m.dead_links))
                    for m in service.list_machines(deadline_of(WAIT))
                ]

            assert machines(v2) == machines(v1)
            assert any(m[5] for m in machines(v2))  # the dead links were compared
            job = alice_job(server, 2, machine="m")
            try:
                job.wait_until_ready(WAIT)

                def jobs(service: Any) -> list[Any]:
                    return [
                        (
                            j.job_id,
                            j.state,
                            j.power,
                            j.allocated_machine_name,
                            j.boards,
                            j.keepalive,
                        )
                        for j in service.list_jobs(deadline_of(WAIT))
                    ]

                assert jobs(v2) == jobs(v1) and len(jobs(v2)) == 1
                queries: list[dict[str, Any]] = [
                    dict(machine="m", x=1, y=0, z=2),
                    dict(machine="m", cabinet=0, frame=0, board=3),
                    dict(machine="m", chip_x=13, chip_y=5),
                    dict(machine="m", x=9, y=9, z=0),  # wraps, as in v1
                    dict(job_id=job.id, chip_x=4, chip_y=4),
                ]
                for query in queries:
                    assert v2.where_is(deadline_of(WAIT), **query) == v1.where_is(
                        deadline_of(WAIT), **query
                    ), query
                dead = dict(machine="md", x=1, y=1, z=1)  # a dead board: nothing is there
                assert v2.where_is(deadline_of(WAIT), **dead) is None
                assert v1.where_is(deadline_of(WAIT), **dead) is None
            finally:
                job.destroy()
        finally:
            v1.close()
            v2.close()


def test_close_ends_the_long_poll_at_once_and_keeps_the_job(server: V2Server) -> None:
    job = alice_job(server, 1)
    job.wait_until_ready(WAIT)
    job_id = job.id
    assert job_id is not None
    polls = wait_for(
        lambda: [t for t in threading.enumerate() if t.name == f"spalloc-v2-follow-{job_id}"]
    )
    long_polls(server.emulator, lambda rest: rest._job_waiters.get(job_id))
    job.close()  # the poll was blocked in a read for up to the server's 30 s
    assert not any(t.is_alive() for t in polls)
    wait_for(lambda: not [t for t in threading.enumerate() if t.name.startswith("spalloc-v2")])
    [info] = server.emulator.jobs()
    assert info.job_id == job.id and info.state is JobState.ready


def test_a_restarted_server_is_reconnected_to(server: V2Server) -> None:
    emulator = server.emulator
    with alice_job(server, 1, reconnect_delay=0.1) as job:
        emulator.stop()  # its sessions go with it
        wait_for(lambda: not job.snapshot.connected)
        emulator.start()
        wait_for(lambda: job.snapshot.connected)
        job.set_power(False)
        job.wait_until_ready(WAIT)
        assert job.power is False


def test_destroy_never_raises_when_the_server_is_gone(server: V2Server) -> None:
    job = alice_job(server, 1)
    job.wait_until_ready(WAIT)
    server.emulator.stop()
    job.destroy("server gone")
    assert job.state is JobState.destroyed and job.reason == "server gone"
    assert job.snapshot.keepalive_error is not None
    assert "destroy not confirmed" in job.snapshot.keepalive_error


# --- keepalive -------------------------------------------------------------------------------


def test_keepalive_must_be_what_v2_accepts(server: V2Server) -> None:
    for keepalive in (None, 5, 29.9, 301):
        with pytest.raises(ValueError, match="between 30 and 300 seconds"):
            alice_job(server, 1, keepalive=keepalive)
    assert server.emulator.jobs() == []


def test_a_keepalive_fetch_puts_a_keepalive(
    server: V2Server, caplog: pytest.LogCaptureFixture
) -> None:
    job = alice_job(server, 1)
    try:
        service = job.service
        assert service is not None and job.id is not None
        before = job_doc(server, job.id)["keep-alive-time"]
        time.sleep(0.01)  # the server's keepalive time has millisecond resolution
        with caplog.at_level(logging.DEBUG, logger="spalloc.service._v2session"):
            service.send_fetch(job.id, deadline_of(WAIT), keepalive=True).wait()
        assert f"PUT srv/spalloc/jobs/{job.id}/keepalive" in caplog.messages
        assert job_doc(server, job.id)["keep-alive-time"] > before
    finally:
        job.destroy()


@pytest.mark.slow
def test_keepalive_puts_arrive_every_half_interval(
    server: V2Server, caplog: pytest.LogCaptureFixture
) -> None:
    # The shortest v2 keepalive is 30 s: a beat is due 15 s after the job is made.
    with caplog.at_level(logging.DEBUG, logger="spalloc.service._v2session"):
        job = alice_job(server, 1, keepalive=30)
        try:
            assert job.id is not None
            before = job_doc(server, job.id)["keep-alive-time"]
            put = f"PUT srv/spalloc/jobs/{job.id}/keepalive"
            wait_for(lambda: put in caplog.messages, timeout=25.0, interval=0.2)
            assert job_doc(server, job.id)["keep-alive-time"] > before
            assert job.snapshot.keepalive_error is None
        finally:
            job.destroy()


# --- logins ----------------------------------------------------------------------------------


def test_bearer_token_by_keyword_and_from_the_environment(
    server: V2Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = server.users["alice"]
    with alice_job(server, 1, user=None, password=None, token=alice.token) as job:
        assert server.emulator.jobs()[0].owner == "alice"
        assert str(alice.token) not in repr(job.service)
    monkeypatch.setenv("OIDC_BEARER_TOKEN", str(alice.token))
    with alice_job(server, 1, user=None, password=None) as job:
        assert job.state is JobState.ready


def test_password_from_the_url_and_from_the_environment(
    server: V2Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = server.users["alice"]
    url = server.base_url.replace("://", f"://{alice.name}:{alice.password}@")
    job = Job(1, hostname=url, timeout=WAIT)
    try:
        assert job.service is not None and job.service.address == server.base_url
        assert str(alice.password) not in repr(job.service) + repr(job)
    finally:
        job.destroy()
    monkeypatch.setenv("SPALLOC_USER", alice.name)
    monkeypatch.setenv("SPALLOC_PASSWORD", str(alice.password))
    with Job(1, hostname=server.base_url, timeout=WAIT) as job:
        assert job.state is JobState.ready
    # Keywords come first: a wrong password in the URL is not used.
    bad = server.base_url.replace("://", f"://{alice.name}:wrong@")
    with Job(1, hostname=bad, user=alice.name, password=alice.password, timeout=WAIT) as job:
        assert job.state is JobState.ready


class _TokenService(http.server.BaseHTTPRequestHandler):
    """JupyterHub's ``access-token-service``: a token for the hub's API token (SpiNNMan's
    request: ``GET /services/access-token-service/access-token``)."""

    api_token = "hub-api-secret"
    access_token = "alice-token"
    served: list[str] = []

    def do_GET(self) -> None:
        self.served.append(self.path)
        ok = (
            self.path == "/services/access-token-service/access-token"
            and self.headers.get("Authorization") == f"Token {self.api_token}"
        )
        body = (json.dumps({"access_token": self.access_token}) if ok else "forbidden").encode()
        self.send_response(200 if ok else 403)
        self.send_header("Content-Type", "application/json" if ok else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def token_service() -> Iterator[tuple[str, int]]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenService)
    thread = threading.Thread(target=httpd.serve_forever, name="test-token-service", daemon=True)
    thread.start()
    yield "127.0.0.1", httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()
    thread.join(WAIT)


def test_a_bearer_token_from_the_jupyterhub_token_service(
    server: V2Server, token_service: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = token_service
    monkeypatch.setenv("JUPYTERHUB_SERVICE_HOST", host)
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PORT", str(port))
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", _TokenService.api_token)
    monkeypatch.setenv("OIDC_BEARER_TOKEN", "not-used-inside-a-hub")
    _TokenService.served.clear()
    with alice_job(server, 1, user=None, password=None) as job:
        assert server.emulator.jobs()[0].owner == "alice"
        assert _TokenService.api_token not in repr(job.service)
    assert _TokenService.served == ["/services/access-token-service/access-token"]
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "a-wrong-hub-token")
    with pytest.raises(SpallocServerException, match="access-token-service") as caught:
        alice_job(server, 1, user=None, password=None)
    assert "a-wrong-hub-token" not in str(caught.value)


def test_accounting_group_collab_and_nmpi_job(
    server: V2Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob = server.users["bob"]  # in groups g1 and g2

    def bob_job(**kwargs: Any) -> Job:
        return Job(
            1,
            hostname=server.base_url,
            user=bob.name,
            password=bob.password,
            timeout=WAIT,
            **kwargs,
        )

    with pytest.raises(SpallocServerException, match="more than one group"):
        bob_job()
    with bob_job(group="g2") as job:
        assert job.state is JobState.ready
    with pytest.raises(SpallocServerException, match="not a member of group g3"):
        bob_job(group="g3")
    with pytest.raises(ValueError, match="not both"):
        bob_job(group="g2", collab="c")
    # The emulator refuses NMPI accounting: the refusal shows the fields were sent.
    with pytest.raises(SpallocServerException, match="NMPI accounting"):
        bob_job(collab="my-collab")
    monkeypatch.setenv("NMPI_JOB_ID", "1234")
    with pytest.raises(SpallocServerException, match="NMPI accounting"):
        bob_job()
    with bob_job(group="g1") as job:  # a group given wins over the environment
        assert job.state is JobState.ready
    monkeypatch.setenv("NMPI_JOB_ID", "x12")
    with pytest.raises(ValueError, match="NMPI_JOB_ID must be a job number"):
        bob_job()


def test_a_url_in_the_config_file_selects_v2(
    server: V2Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # isolated_config made tmp_path the working directory: ./.spalloc is read.
    (tmp_path / ".spalloc").write_text(
        f"[spalloc]\nhostname = {server.base_url}\nport = 1\nkeepalive = 45\n"
    )
    alice = server.users["alice"]
    monkeypatch.setenv("SPALLOC_USER", alice.name)
    monkeypatch.setenv("SPALLOC_PASSWORD", str(alice.password))
    with Job(1) as job:
        assert isinstance(job.service, V2Service) and job.keepalive == 45.0
        assert server.emulator.jobs()[0].owner == "alice"


def test_a_wrong_password_fails_fast_and_clearly(
    server: V2Server, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.DEBUG, logger="spalloc"),
        pytest.raises(SpallocServerException) as caught,
    ):
        alice_job(server, 1, password="not-her-password")
    message = str(caught.value)
    assert "computer says no" in message and "'alice'" in message
    assert "not-her-password" not in message + caplog.text
    # Fast: one attempt, no retries (three failures would lock the account for a day).
    assert caplog.messages.count("POST system/perform_login") == 1
    assert server.emulator.jobs() == []


def test_a_wrong_token_fails_clearly(server: V2Server) -> None:
    with pytest.raises(SpallocServerException, match="refused the bearer token") as caught:
        alice_job(server, 1, user=None, password=None, token="made-up-token")
    assert "made-up-token" not in str(caught.value)


def test_a_url_that_is_not_the_service_says_so(server: V2Server) -> None:
    wrong = server.base_url.replace("/spalloc/", "/")
    with pytest.raises(SpallocServerException, match="usually ends in /spalloc/"):
        alice_job(server, 1, hostname=wrong)


def test_no_credentials_is_a_clear_error(server: V2Server) -> None:
    with pytest.raises(ValueError, match=r"no credentials .* SPALLOC_USER"):
        Job(1, hostname=server.base_url, timeout=WAIT)
    with pytest.raises(ValueError, match="no password for user 'alice'"):
        Job(1, hostname=server.base_url, user="alice", timeout=WAIT)


def test_credentials_for_a_v1_server_are_refused(server: V2Server) -> None:
    emulator = server.emulator
    with pytest.raises(ValueError, match="for spalloc v2 servers"):
        Job(1, hostname=emulator.host, port=emulator.port, owner="me", password="x")


@pytest.mark.parametrize("login", ["password", "token"])
def test_an_expired_session_is_renewed(
    server: V2Server, caplog: pytest.LogCaptureFixture, login: str
) -> None:
    emulator = server.emulator
    alice = server.users["alice"]
    credentials: dict[str, Any] = (
        {} if login == "password" else {"user": None, "password": None, "token": alice.token}
    )

    def forget_sessions() -> None:
        http = emulator._http
        assert http is not None
        emulator._call(http._auth._sessions.clear)

    with alice_job(server, 1, **credentials) as job, caplog.at_level(logging.INFO):
        forget_sessions()
        job.set_power(False)  # a POST: the forgotten session fails the CSRF check (403)
        job.wait_until_ready(WAIT)
        assert job.power is False
        forget_sessions()
        assert job.refresh().power is False  # GETs: 401
        renewals = [m for m in caplog.messages if "expired; logging in again" in m]
        # A bearer token goes with every request: the server needs no session to renew.
        assert len(renewals) == (2 if login == "password" else 0)


# --- TLS, imports ----------------------------------------------------------------------------


def test_tls_is_verified_and_a_private_ca_can_come_from_requests_ca_bundle(
    server: V2Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")
    with pytest.raises(ServerConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        alice_job(server, 1)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_path))
    with alice_job(server, 1) as job:
        assert job.state is JobState.ready
    monkeypatch.setenv("SSL_CERT_FILE", str(server.users_path))  # not a CA bundle
    with pytest.raises(ValueError, match=r"SSL_CERT_FILE=.* cannot be read as trusted CAs"):
        alice_job(server, 1)


def test_a_server_that_never_answers_times_out(isolated_config: None) -> None:
    # Accepts connections (the kernel's backlog) and never reads or writes.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        service = open_service(f"http://127.0.0.1:{port}/spalloc/", None, user="u", password="p")
        try:
            with pytest.raises(ProtocolTimeoutError, match="no answer from"):
                service.connect(deadline_of(0.3))
            assert not service.connected
        finally:
            service.close()


def test_an_unreachable_server_is_a_connection_error(server: V2Server) -> None:
    server.emulator.stop()
    with pytest.raises(ServerConnectionError, match="cannot talk to"):
        alice_job(server, 1)


def test_the_notebook_exit_cleanup_destroys_a_v2_job(v2_server: V2Server) -> None:
    # At interpreter exit the thread pools take no more work before atexit hooks run: the
    # cleanup must still reach the server.
    alice = v2_server.users["alice"]
    code = (
        "import sys\n"
        "from spalloc import Job\n"
        "from spalloc_nb._registry import registry\n"
        "job = Job(1, hostname=sys.argv[1], user=sys.argv[2], password=sys.argv[3],\n"
        "          keepalive=60.0, config_filenames=[])\n"
        "registry.add_job(job)\n"
        "job.wait_until_ready(timeout=10)\n"
        "print(job.id)\n"
    )
    env = {**os.environ, "SSL_CERT_FILE": str(v2_server.ca_path)}
    done = subprocess.run(
        [sys.executable, "-c", code, v2_server.base_url, alice.name, str(alice.password)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    job_id = int(done.stdout.split()[-1])
    assert job_id not in [j.job_id for j in v2_server.emulator.jobs()], done.stderr
    assert job_id in v2_server.emulator.retired_jobs()
