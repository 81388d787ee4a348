"""``spalloc --hostname https://…/spalloc/`` against the emulator's v2 service: the same
allocation, -c substitutions and exit codes as against v1, credentials from the environment or
the URL, and secrets kept out of what it prints."""

from __future__ import annotations

import pytest

from spalloc.cli import alloc
from spalloc.cli._common import EXIT_USAGE
from tests._v2 import V2Server, log_in_from_environment

pytestmark = pytest.mark.usefixtures("isolated_config")


@pytest.fixture
def server(v2_server: V2Server, monkeypatch: pytest.MonkeyPatch) -> V2Server:
    return log_in_from_environment(v2_server, monkeypatch, "alice")


def test_command_gets_the_allocation_as_over_v1(
    server: V2Server, capfd: pytest.CaptureFixture[str]
) -> None:
    code = alloc.main(
        ["--hostname", server.base_url, "2", "-c", "echo got {hostname} {w}x{h} job {id}"]
    )
    out, err = capfd.readouterr()
    assert code == 0, err
    [line] = [line for line in out.splitlines() if line.startswith("got ")]
    _, host, size, _, job_id = line.split()
    assert size == "16x12"  # two boards of a triad, in chips, as v1 reports them
    retired = server.emulator.retired_jobs()
    assert int(job_id) in retired and server.emulator.jobs() == []
    assert host.startswith("127.")


def test_credentials_in_the_url_are_used_and_never_printed(
    server: V2Server, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SPALLOC_USER")
    monkeypatch.delenv("SPALLOC_PASSWORD")
    alice = server.users["alice"]
    url = server.base_url.replace("://", f"://{alice.name}:{alice.password}@")
    assert alloc.main(["--hostname", url, "-c", "true"]) == 0
    wrong = server.base_url.replace("://", f"://{alice.name}:url-secret@")
    code = alloc.main(["--hostname", wrong, "-c", "true"])
    out, err = capfd.readouterr()
    assert code == alloc.EXIT_CONNECT and "computer says no" in err
    assert "url-secret" not in out + err and str(alice.password) not in out + err
    server.emulator.stop()
    code = alloc.main(["--hostname", wrong, "-c", "true"])
    out, err = capfd.readouterr()
    assert code == alloc.EXIT_CONNECT and "Could not connect to server" in err
    assert server.base_url in err and "url-secret" not in out + err


def test_a_keepalive_v2_refuses_is_a_usage_error(
    server: V2Server, capfd: pytest.CaptureFixture[str]
) -> None:
    code = alloc.main(["--hostname", server.base_url, "--keepalive", "10", "-c", "true"])
    _, err = capfd.readouterr()
    assert code == EXIT_USAGE and "between 30 and 300 seconds" in err
    assert server.emulator.jobs() == [] and server.emulator.retired_jobs() == {}
