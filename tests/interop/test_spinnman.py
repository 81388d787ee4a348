"""SpiNNMan 1!7.4.1's ``SpallocClient`` (the v2 client sPyNNaker uses), unchanged, against the
emulator's v2 service over HTTPS, with the official v1 client on the same emulator.

SpiNNMan runs in its own venv through the script below. It trusts the throw-away CA through
``REQUESTS_CA_BUNDLE`` and ``WEBSOCKET_CLIENT_CA_BUNDLE`` (V2_PROTOCOL.md §3.5) and needs a
spinn_utilities config for ``create_job`` (``unittest_setup`` plus a required board count).
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._emuproc import emulator_process, url_in
from tests._v2 import Http, V2Server, running_v2_server

from .conftest import PeerEnv, peer_bin

pytestmark = pytest.mark.interop

_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from spinnman.config_setup import unittest_setup
    from spinnman.data.spinnman_data_writer import SpiNNManDataWriter
    from spinnman.messages.scp.impl import GetVersion
    from spinnman.spalloc import SpallocClient, SpallocState

    url, mode, name, secret = sys.argv[1:5]
    unittest_setup()
    SpiNNManDataWriter.mock().set_n_required(3, None)
    out = {}

    def login():
        if mode == "bearer":
            return SpallocClient(url, bearer_token=secret)
        return SpallocClient(url, username=name, password=secret)

    if mode == "wrong":
        try:
            login().list_machines()
        except Exception as exc:
            out["refused"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(out))
        sys.exit(0)

    client = login()
    out["version"] = str(client.version)
    machines = client.list_machines()
    out["machines"] = {n: [m.width, m.height, sorted(m.tags)] for n, m in machines.items()}
    job = client.create_job()
    out["job"] = str(job)
    if mode == "expire":
        job.wait_until_ready()
        # The keepalive thread sent one PUT at creation and sleeps for 60 s; the job's
        # keepalive is capped below that, so it must expire while the client stays silent.
        out["expired_state"] = job.wait_for_state_change(SpallocState.READY, timeout=30).name
        print(json.dumps(out))
        sys.exit(0)
    job.wait_until_ready()
    out["state"] = job.get_state().name
    out["root"] = job.get_root_host()
    out["connections"] = sorted([list(k), v] for k, v in job.get_connections().items())
    out["where_is_machine"] = list(job.where_is_machine(0, 0))

    conn = job.connect_to_board(0, 0)
    request = GetVersion(0, 0, 0)
    request.scp_request_header.sequence = 42
    conn.send(conn.get_scp_data(request))
    result, seq, data, offset = conn.receive_scp_response(10)
    response = request.get_scp_response()
    response.read_bytestring(data, offset)
    info = response.version_info
    out["scp"] = [result.name, seq, info.name, info.hardware, list(info.version_number),
                  info.x, info.y]
    conn.close()

    listener = job.open_udp_listener_connection()
    (x, y), ip = sorted(job.get_connections().items())[-1]
    request = GetVersion(x, y, 0)
    request.scp_request_header.sequence = 7
    request.sdp_header.update_for_send(x, y)
    listener.send_to(b"\\0\\0" + request.bytestring, (ip, 17893))
    reply = listener.receive(10)
    response = request.get_scp_response()
    response.read_bytestring(reply, 2)
    out["listener"] = [response.version_info.x, response.version_info.y,
                       response.version_info.version_string]
    listener.close()

    jobs = list(client.list_jobs())
    out["listed"] = [str(j) for j in jobs]
    with open(sys.argv[5], "w") as ready:
        ready.write(str(job))
    # Hold the job while the test's v1 client looks at the same emulator.
    sys.stdin.readline()
    job.destroy("done by spinnman")
    out["after_destroy"] = job.get_state().name
    client.close()
    print(json.dumps(out))
    """
)


@pytest.fixture
def spinnman_bin() -> Path:
    """``bin`` of a venv with ``SpiNNMan==1!7.4.1``."""
    return peer_bin("spinnman")


@pytest.fixture
def v2_https(tmp_path: Path) -> Iterator[V2Server]:
    with running_v2_server(tmp_path, power_delay=0.05, free_delay=0.05) as server:
        yield server


def _spinnman(
    spinnman_bin: Path,
    peer_env: PeerEnv,
    server: V2Server,
    mode: str,
    name: str,
    secret: str,
    *,
    timeout: float = 120.0,
    while_held: Any = None,
) -> dict[str, Any]:
    script = peer_env.cwd / "spinnman_flow.py"
    script.write_text(_SCRIPT)
    ready = peer_env.cwd / f"ready-{mode}"
    env = dict(
        peer_env.env,
        REQUESTS_CA_BUNDLE=str(server.ca_path),
        WEBSOCKET_CLIENT_CA_BUNDLE=str(server.ca_path),
    )
    proc = subprocess.Popen(
        [
            str(spinnman_bin / "python"),
            str(script),
            server.base_url,
            mode,
            name,
            secret,
            str(ready),
        ],
        cwd=peer_env.cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if while_held is not None:
            deadline = time.monotonic() + timeout
            while not ready.exists() and proc.poll() is None:
                assert time.monotonic() < deadline, "SpiNNMan never got its job ready"
                time.sleep(0.05)
            if proc.poll() is None:
                while_held()
        out, err = proc.communicate("\n", timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:{out}\nstderr:{err[-4000:]}"
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _check_full_flow(result: dict[str, Any], server: V2Server) -> None:
    assert result["version"] == "7.4.2"
    assert result["machines"] == {"m2": [2, 1, ["default"]], "one": [1, 1, ["single"]]}
    assert result["state"] == "READY"
    connections = result["connections"]
    assert len(connections) == 3 and connections[0][0] == [0, 0]
    assert result["root"] == connections[0][1]
    machine = server.emulator.machines[0]
    board = next(b for b in machine.boards() if machine.ip(b) == result["root"])
    assert result["where_is_machine"] == list(machine.location(board) or ())
    assert result["scp"] == ["RC_OK", 42, "SC&MP", "SpiNNaker", [4, 0, 0], 0, 0]
    (x, y), _ = sorted(connections)[-1]
    assert result["listener"] == [x, y, "4.0.0"]
    assert result["job"] in result["listed"]
    assert result["after_destroy"] == "DESTROYED"


def test_password_login_full_flow_with_a_v1_client_alongside(
    spinnman_bin: Path, client74: Path, peer_env: PeerEnv, v2_https: V2Server
) -> None:
    host, port = v2_https.emulator.address
    v1_seen: dict[str, Any] = {}

    def v1_client() -> None:
        code = textwrap.dedent("""
            import json, sys
            from spalloc_client import Job, ProtocolClient
            host, port = sys.argv[1], int(sys.argv[2])
            with Job(1, hostname=host, port=port, owner="v1-user", keepalive=5.0,
                     machine="one", config_filenames=[]) as job:
                job.wait_until_ready(timeout=30)
                out = {"state": job.state.name, "hostname": job.hostname}
                with ProtocolClient(host, port, timeout=10.0) as client:
                    out["jobs"] = sorted([j["owner"], j["state"]] for j in client.list_jobs())
            print(json.dumps(out))
            """)
        proc = subprocess.run(
            [str(client74 / "python"), "-c", code, host, str(port)],
            cwd=peer_env.cwd,
            env=peer_env.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        v1_seen.update(json.loads(proc.stdout))

    alice = v2_https.users["alice"]
    assert alice.password is not None
    result = _spinnman(
        spinnman_bin, peer_env, v2_https, "password", "alice", alice.password, while_held=v1_client
    )
    _check_full_flow(result, v2_https)
    assert v1_seen["state"] == "ready"
    assert v1_seen["jobs"] == [["alice", 3], ["v1-user", 3]]
    reason = v2_https.emulator.retired_jobs()
    assert "done by spinnman" in reason.values()


@pytest.fixture
def cli_v2_server(tmp_path: Path) -> Iterator[V2Server]:
    """``spalloc-emulator --http-port 0 --users FILE --tls-cert C --tls-key K`` in a process."""
    with running_v2_server(tmp_path / "shape") as shape:  # for its files and machines
        machines = shape.emulator.machines
        users_path, ca_path = shape.users_path, shape.ca_path
    net = machines[0].ip((0, 0, 0)) or ""
    base = ".".join(net.split(".")[:2])
    (tmp_path / "machines.toml").write_text(
        textwrap.dedent(f"""
        [[machine]]
        name = "m2"
        tags = ["default"]
        width = 2
        height = 1
        base_ip = "{base}.0.0"
        [[machine]]
        name = "one"
        tags = ["single"]
        single_board = true
        base_ip = "{base}.128.0"
        """)
    )
    with emulator_process(
        "--port",
        "0",
        "--http-port",
        "0",
        "--users",
        users_path,
        "--tls-cert",
        tmp_path / "shape" / "cert.pem",
        "--tls-key",
        tmp_path / "shape" / "key.pem",
        "--machines",
        tmp_path / "machines.toml",
        "--power-delay",
        "0.05",
    ) as (_, line):
        from spalloc.emulator import Emulator

        # Only for _check_full_flow's look-ups: the same machines, never started.
        view = Emulator(machines)
        yield V2Server(view, url_in(line), ca_path, users_path, shape.users)


def test_bearer_token_full_flow_against_the_command_line_emulator(
    spinnman_bin: Path, peer_env: PeerEnv, cli_v2_server: V2Server
) -> None:
    token = cli_v2_server.users["alice"].token
    assert token is not None
    result = _spinnman(
        spinnman_bin, peer_env, cli_v2_server, "bearer", "", token, while_held=lambda: None
    )
    _check_full_flow(result, cli_v2_server)


def test_wrong_password_is_refused(
    spinnman_bin: Path, peer_env: PeerEnv, v2_https: V2Server
) -> None:
    result = _spinnman(spinnman_bin, peer_env, v2_https, "wrong", "alice", "not-the-password")
    assert "Unable to login" in result["refused"]
    assert "computer says no" in result["refused"]
    assert "not-the-password" not in result["refused"]


def test_a_job_whose_client_stops_keepaliving_expires(
    spinnman_bin: Path, peer_env: PeerEnv, tmp_path: Path
) -> None:
    with running_v2_server(tmp_path / "expire", keepalive_cap=2.0) as server:
        alice = server.users["alice"]
        assert alice.password is not None
        result = _spinnman(spinnman_bin, peer_env, server, "expire", "alice", alice.password)
        assert result["expired_state"] == "DESTROYED"
        http = Http(server.base_url, server.ca_path)
        http.login("alice", alice.password)
        job_id = int(result["job"].rstrip("/)").rsplit("/", 1)[1])
        assert http.get(f"srv/spalloc/jobs/{job_id}").json()["reason"] == "Job timed out."
