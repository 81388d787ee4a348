"""spalloc v2 logins from the config file: ``user``/``password``/``token`` (and ``group``,
``collab``) under ``[spalloc]``, used last (after keywords, the URL, ``SPALLOC_*``, JupyterHub
and ``OIDC_BEARER_TOKEN``), refused from a file other users may read, never shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spalloc import Job
from spalloc.cli import ps as ps_cli
from spalloc.config import load_config
from spalloc.exceptions import ConfigError
from tests._v2 import V2Server

pytestmark = pytest.mark.usefixtures("isolated_config")

WAIT = 10.0


@pytest.fixture
def server(v2_server: V2Server, monkeypatch: pytest.MonkeyPatch) -> V2Server:
    for name in ("OIDC_BEARER_TOKEN", "REQUESTS_CA_BUNDLE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(v2_server.ca_path))
    return v2_server


def write_config(server: V2Server, password: str, mode: int = 0o600) -> Path:
    path = Path(".spalloc")
    path.write_text(
        f"[spalloc]\nhostname = {server.base_url}\nuser = alice\npassword = {password}\n",
        encoding="utf-8",
    )
    os.chmod(path, mode)
    return path


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_password_in_a_file_others_may_read_is_refused(server: V2Server) -> None:
    path = write_config(server, "alice-secret", mode=0o644)
    with pytest.raises(ConfigError, match="chmod 600") as caught:
        load_config()
    assert "alice-secret" not in str(caught.value) and str(path) in str(caught.value)


def test_the_config_files_login_is_used_and_never_shown(
    server: V2Server, capfd: pytest.CaptureFixture[str]
) -> None:
    write_config(server, str(server.users["alice"].password))
    config = load_config()
    assert config.password is not None and str(config.password) not in repr(config)
    job = Job(1, keepalive=60.0, timeout=WAIT)  # hostname and login from ./.spalloc
    try:
        job.wait_until_ready(timeout=WAIT)
        assert server.emulator.jobs()[0].owner == "alice"
        assert ps_cli.main([]) == 0
        out, err = capfd.readouterr()
        assert f" {job.id} " in out and "alice-secret" not in out + err
    finally:
        job.destroy()


def test_the_environment_comes_before_the_config_file(
    server: V2Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(server, "wrong-password")
    alice = server.users["alice"]
    monkeypatch.setenv("SPALLOC_USER", alice.name)
    monkeypatch.setenv("SPALLOC_PASSWORD", str(alice.password))
    with Job(1, keepalive=60.0, timeout=WAIT) as job:
        assert job.state.name == "ready"


def test_a_v2_url_without_a_login_is_one_line_and_exit_2(
    server: V2Server, capfd: pytest.CaptureFixture[str]
) -> None:
    assert ps_cli.main(["-H", server.base_url]) == 2
    _, err = capfd.readouterr()
    assert err.count("\n") == 1 and "no credentials" in err and "Traceback" not in err
