"""The admin tools (``spalloc-ps``, ``-job``, ``-machine``, ``-where-is``) and ``%spalloc``
against the emulator's v2 service: they run on the service interface, so a v2 URL must give
the output a v1 address gives for the same server state (both front doors of one emulator)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from spalloc import Job
from spalloc.cli import job as job_cli
from spalloc.cli import machine as machine_cli
from spalloc.cli import ps as ps_cli
from spalloc.cli import where_is as where_is_cli
from tests._v2 import V2Server, log_in_from_environment

pytestmark = pytest.mark.usefixtures("isolated_config")

WAIT = 10.0
# Who a job's keepalive last came from, and when: the two protocols touch them differently.
_VOLATILE = re.compile(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d")


@pytest.fixture
def server(v2_server: V2Server, monkeypatch: pytest.MonkeyPatch) -> V2Server:
    return log_in_from_environment(v2_server, monkeypatch, "alice")


def both(
    server: V2Server,
    capfd: pytest.CaptureFixture[str],
    main: Callable[[list[str]], int],
    *args: str,
) -> tuple[tuple[int, str], tuple[int, str]]:
    """(exit code, stdout) of one tool over v1 and over v2."""
    v1 = ["-H", server.emulator.host, "-P", str(server.emulator.port)]
    results = []
    for where in (v1, ["-H", server.base_url]):
        code = main([*where, *args])
        out, _ = capfd.readouterr()
        results.append((code, _VOLATILE.sub("<time>", out)))
    return results[0], results[1]


def test_the_admin_tools_read_v2_as_v1(server: V2Server, capfd: pytest.CaptureFixture[str]) -> None:
    alice = server.users["alice"]
    job = Job(
        2,
        hostname=server.base_url,
        user=alice.name,
        password=alice.password,
        keepalive=60.0,
        config_filenames=[],
        timeout=WAIT,
    )
    try:
        job.wait_until_ready(timeout=WAIT)
        job_id = str(job.id)
        v1, v2 = both(server, capfd, ps_cli.main)
        assert v2 == v1 and f" {job_id} " in v1[1]
        v1, v2 = both(server, capfd, machine_cli.main)
        assert v2 == v1 and v1[0] == 0
        v1, v2 = both(server, capfd, machine_cli.main, str(job.machine_name))
        assert v2 == v1 and v1[0] == 0
        v1, v2 = both(server, capfd, job_cli.main, job_id, "--ethernet-ips")
        assert v2 == v1 and v1[0] == 0 and str(job.hostname) in v1[1]
        v1, v2 = both(server, capfd, where_is_cli.main, "--job-chip", job_id, "1", "1")
        assert v2 == v1 and v1[0] == 0 and f"Job using board: {job_id}" in v1[1]
        v1, v2 = both(
            server, capfd, where_is_cli.main, "--board", str(job.machine_name), "0", "0", "1"
        )
        assert v2 == v1 and v1[0] == 0
        # Powering off through v2 waits, as through v1, until the boards are off.
        assert job_cli.main(["-H", server.base_url, job_id, "--power-off"]) == 0
        capfd.readouterr()
        assert job.refresh().power is False
        assert job_cli.main(["-H", server.base_url, job_id, "--destroy", "done over v2"]) == 0
        assert server.emulator.retired_jobs()[int(job_id)] == "done over v2"
    finally:
        job.destroy()


def test_an_unknown_job_says_so_over_v2(
    server: V2Server, capfd: pytest.CaptureFixture[str]
) -> None:
    v1, v2 = both(server, capfd, job_cli.main, "4242")
    assert v2 == v1 and v1[0] == job_cli.EXIT_UNKNOWN_JOB


def test_the_magic_over_v2(server: V2Server) -> None:
    from IPython.testing.globalipapp import get_ipython

    ip = get_ipython()
    ip.run_line_magic("load_ext", "spalloc_nb")
    try:
        job = ip.run_line_magic("spalloc", f"--hostname {server.base_url} --keepalive 60 1 --wait")
        try:
            assert job.state.name == "ready" and job.hostname is not None
            table = ip.run_line_magic("spalloc", f"--hostname {server.base_url} ps")
            assert str(job.id) in str(table)
        finally:
            job.destroy("magic over v2")
        assert server.emulator.retired_jobs()[job.id] == "magic over v2"
    finally:
        ip.run_line_magic("unload_ext", "spalloc_nb")
