"""The proxy bridge (issue 13): a v2 job's boards on loopback addresses of this machine,
relayed through the job's websocket proxy, against the emulator's v2 service over HTTPS."""

from __future__ import annotations

import ipaddress
import os
import random
import re
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spalloc import Job
from spalloc.cli import alloc
from spalloc.config import load_config
from spalloc.exceptions import ConfigError, ProtocolError
from spalloc.service._reach import reachable
from spalloc.service.bridge import BOOT_PORT, BRIDGE_NETWORK, SCP_PORT, Bridge
from tests._v2 import V2Server, log_in_from_environment
from tests.conftest import wait_for
from tests.test_emulator_v2_proxy import check_version_reply, scp_version_request

WAIT = 10.0


@pytest.fixture
def server(v2_server: V2Server, isolated_config: None, monkeypatch: pytest.MonkeyPatch) -> V2Server:
    """The v2 emulator, trusted through ``SSL_CERT_FILE``, alice's login in the environment."""
    return log_in_from_environment(v2_server, monkeypatch, "alice", "NMPI_JOB_ID")


@pytest.fixture
def make_job(server: V2Server) -> Iterator[Any]:
    """``make_job(*args, **kwargs)``: a ready v2 Job (destroyed at teardown)."""
    jobs: list[Job] = []

    def factory(*args: int, **kwargs: Any) -> Job:
        kwargs.setdefault("timeout", WAIT)
        kwargs.setdefault("proxy", "always")
        job = Job(*args, hostname=server.base_url, **kwargs)
        jobs.append(job)
        job.wait_until_ready(WAIT)
        return job

    yield factory
    for job in jobs:
        job.destroy()


def udp_ask(address: str, request: bytes, port: int = SCP_PORT) -> tuple[bytes, Any]:
    """Send *request* from a plain UDP socket; the reply and who sent it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(WAIT)
        sock.sendto(request, (address, port))
        return sock.recvfrom(65536)


def in_bridge_network(address: str) -> bool:
    return ipaddress.IPv4Address(address) in ipaddress.IPv4Network(BRIDGE_NETWORK)


def test_a_plain_udp_scp_request_is_answered_through_the_websocket(make_job: Any) -> None:
    job = make_job(1)
    snap = job.snapshot
    assert snap.bridged and job.bridge is not None
    assert job.hostname is not None and in_bridge_network(job.hostname)
    assert snap.board_connections is not None
    assert not in_bridge_network(snap.board_connections[(0, 0)])
    reply, sender = udp_ask(job.hostname, scp_version_request(7))
    check_version_reply(reply, 7)
    assert sender == (job.hostname, SCP_PORT)  # the reply comes from where it was sent
    # A second sender gets its own channel, and only its own replies.
    reply, _ = udp_ask(job.hostname, scp_version_request(8))
    check_version_reply(reply, 8)
    traffic = job.bridge.stats()
    assert traffic.packets_out == 2 and traffic.packets_in == 2
    assert traffic.bytes_out == 2 * len(scp_version_request(0))
    assert traffic.errors_out == traffic.errors_in == 0
    wait_for(lambda: job.snapshot.traffic == traffic, WAIT)  # the snapshot follows


def test_every_ethernet_chip_of_a_three_board_job(make_job: Any) -> None:
    job = make_job(3)
    connections = job.connections
    boards = job.snapshot.board_connections
    assert len(connections) == 3 and set(connections) == set(boards)
    assert len(set(connections.values())) == 3
    for seq, ((x, y), address) in enumerate(sorted(connections.items())):
        assert in_bridge_network(address)
        reply, _ = udp_ask(address, scp_version_request(seq, x, y))
        check_version_reply(reply, seq, x, y)
        # The boot port goes to the same board: stand in for it on the board's own address.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as board:
            board.bind((boards[(x, y)], BOOT_PORT))
            board.settimeout(WAIT)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tool:
                tool.settimeout(WAIT)
                tool.sendto(f"boot {x} {y}".encode(), (address, BOOT_PORT))
                data, proxy_side = board.recvfrom(4096)
                assert data == f"boot {x} {y}".encode()
                board.sendto(b"booted", proxy_side)
                assert tool.recvfrom(4096) == (b"booted", (address, BOOT_PORT))


def test_channels_and_a_listener_from_python(make_job: Any) -> None:
    job = make_job(3)
    bridge = job.bridge
    boards = job.snapshot.board_connections
    (x, y), board_ip = sorted(boards.items())[1]
    # A connected channel to any port of a board.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as board:
        board.bind((board_ip, 0))
        board.settimeout(WAIT)
        with bridge.open_channel((x, y), board.getsockname()[1]) as channel:
            channel.send(b"to the board")
            data, proxy_side = board.recvfrom(4096)
            assert data == b"to the board"
            board.sendto(b"from the board", proxy_side)
            assert channel.recv(WAIT) == b"from the board"
    # A listener: its address is real, and a board's datagram to it arrives.
    with bridge.open_listener() as listener:
        ip, port = listener.address
        assert port > 0 and ip != "0.0.0.0"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as board:
            board.bind((board_ip, 0))
            board.sendto(b"live event", (ip, port))
        assert listener.recv(WAIT) == b"live event"
        listener.send_to((x, y), SCP_PORT, scp_version_request(4, x, y))
        check_version_reply(listener.recv(WAIT), 4, x, y)
    with pytest.raises(ProtocolError, match="unrecognised ethernet chip"):
        bridge.open_channel((99, 99), SCP_PORT, timeout=WAIT)
    with pytest.raises(ValueError):
        bridge.open_channel((0, 0), 0)


def ask_until_answered(sock: socket.socket, address: str, seq: int) -> bytes:
    """Send CMD_VER every 0.25 s until its answer comes (UDP may lose a datagram, e.g. one
    sent while the emulator still binds its boards' sockets after a restart)."""
    sock.settimeout(0.25)
    for _ in range(int(3 * WAIT / 0.25)):
        sock.sendto(scp_version_request(seq), (address, SCP_PORT))
        try:
            for _ in range(100):
                reply = sock.recv(65536)
                if struct.unpack_from("<H", reply, 12)[0] == seq:
                    return reply
        except TimeoutError:
            continue
    raise AssertionError(f"no answer from {address} within {3 * WAIT} s")


def test_the_bridge_recovers_when_the_websocket_is_cut(server: V2Server, make_job: Any) -> None:
    job = make_job(1, reconnect_delay=0.1)
    bridge = job.bridge
    address = job.hostname
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tool:
        check_version_reply(ask_until_answered(tool, address, 1), 1)
        server.emulator.stop()  # the websocket (and the session) go with it
        wait_for(lambda: not bridge.connected, WAIT)
        server.emulator.start()
        wait_for(lambda: bridge.connected, 3 * WAIT)
        assert job.hostname == address and job.bridge is bridge  # the same addresses still
        # The same sender's channel is opened again on the new websocket...
        check_version_reply(ask_until_answered(tool, address, 2), 2)
    # ...and a new sender gets one.
    check_version_reply(udp_ask(address, scp_version_request(3))[0], 3)
    assert bridge.stats().reconnects >= 1
    wait_for(lambda: job.snapshot.bridge_error is None, WAIT)


def test_destroy_closes_the_bridge_and_frees_its_ports(make_job: Any) -> None:
    job = make_job(3)
    bridge = job.bridge
    addresses = list(job.connections.values())
    job.destroy()
    assert job.bridge is None and bridge.closed and not job.snapshot.bridged
    assert job.connections == job.snapshot.connections  # the boards' own again
    names = [t.name for t in threading.enumerate()]
    assert not [n for n in names if n.startswith(f"spalloc-bridge-job-{job.id}-")]
    for address in addresses:
        for port in (SCP_PORT, BOOT_PORT):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind((address, port))  # free again


def test_close_also_closes_the_bridge(make_job: Any) -> None:
    job = make_job(1)
    bridge = job.bridge
    job.close()
    assert bridge.closed and job.bridge is None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((bridge.hostname or "", SCP_PORT))


def test_auto_uses_the_boards_when_they_answer_and_never_does_not_bridge(
    make_job: Any,
) -> None:
    job = make_job(1, proxy="auto")
    assert not job.snapshot.bridged and job.bridge is None
    assert job.hostname is not None and not in_bridge_network(job.hostname)
    assert make_job(1, proxy="never").bridge is None


def test_auto_bridges_boards_that_do_not_answer(server: V2Server, make_job: Any) -> None:
    # Powered off, the emulated board is silent, as a board out of reach is: a Job taking
    # the job up then finds it unreachable and bridges it.
    first = make_job(1, proxy="never")
    first.set_power(False)
    first.wait_until_ready(WAIT)
    job = make_job(resume_job_id=first.id, proxy="auto")
    assert job.snapshot.bridged and job.bridge is not None
    assert in_bridge_network(job.hostname)
    job.set_power(True)
    job.wait_until_ready(WAIT)
    assert job.hostname == job.bridge.hostname  # the decision holds for the job's life
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tool:
        check_version_reply(ask_until_answered(tool, job.hostname, 6), 6)


def test_the_reachability_probe(make_job: Any) -> None:
    job = make_job(1, proxy="never")
    assert reachable(job.hostname)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        # Holds a board's SCP port and never answers (an unbooted or unreachable board).
        silent.bind((f"127.3.{random.randrange(256)}.{random.randrange(1, 255)}", SCP_PORT))
        assert not reachable(silent.getsockname()[0], 0.2)
    assert not reachable("no-such-host.invalid", 0.2)


def test_v1_jobs_never_bridge(server: V2Server) -> None:
    emulator = server.emulator
    job = Job(1, hostname=emulator.host, port=emulator.port, owner="o", proxy="always")
    try:
        job.wait_until_ready(WAIT)
        assert not job.snapshot.bridged and job.bridge is None
    finally:
        job.destroy()


def test_the_proxy_setting_comes_from_config_and_is_checked() -> None:
    assert load_config([], {}).proxy == "auto"
    assert load_config([], {"SPALLOC_PROXY": "Always"}).proxy == "always"
    with pytest.raises(ConfigError, match="proxy"):
        load_config([], {"SPALLOC_PROXY": "sometimes"})
    with pytest.raises(ValueError):
        Job(hostname="https://127.0.0.1:9/spalloc/", token="t", proxy="maybe")


def test_spalloc_proxy_always_runs_a_command_that_talks_scp_to_hostname(
    server: V2Server, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "talk.py"
    script.write_text(
        "import socket, struct, sys\n"
        "sdp = struct.pack('<2x8B', 0x87, 0xFF, 0, (7 << 5) | 31, 0, 0, 0, 0)\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.settimeout(10)\n"
        "s.sendto(sdp + struct.pack('<HH3I', 0, 5, 0, 0, 0), (sys.argv[1], 17893))\n"
        "reply = s.recv(4096)\n"
        "print('answer', sys.argv[1], struct.unpack_from('<HH', reply, 10), reply[26:42])\n"
        "print('csv', open(sys.argv[2]).read().split())\n"
    )
    code = alloc.main(
        [
            "--hostname",
            server.base_url,
            "--proxy",
            "always",
            "-c",
            sys.executable,
            str(script),
            "{hostname}",
            "{ethernet_ips}",
        ]
    )
    out, err = capfd.readouterr()
    assert code == 0, err
    [line] = [line for line in out.splitlines() if line.startswith("answer ")]
    assert in_bridge_network(line.split()[1])
    assert "(128, 5)" in line and "SC&MP/SpiNNaker" in line
    [csv] = [line for line in out.splitlines() if line.startswith("csv ")]
    assert f"'0,0,{line.split()[1]}'" in csv  # the CSV has the bridge's addresses too
    assert "Bridged: through the job's websocket proxy" in err
    assert "bridge carried 1 packets" in err
    assert server.emulator.jobs() == []


def test_the_bridge_alone_and_its_errors(server: V2Server, make_job: Any) -> None:
    job = make_job(1, proxy="never")
    service = job.service
    assert service is not None
    calls = []

    def endpoint(deadline: float | None) -> Any:
        calls.append(deadline)
        if len(calls) == 1:
            raise ProtocolError("not yet")  # the first attempt fails; the next one works
        return service.proxy_endpoint(job.id, deadline)

    with Bridge(endpoint, list(job.connections), name="alone") as bridge:
        bridge.wait_connected(WAIT)
        assert len(calls) >= 2 and bridge.error is None
        reply, _ = udp_ask(bridge.hostname or "", scp_version_request(3))
        check_version_reply(reply, 3)
    assert bridge.closed
    with pytest.raises(ProtocolError, match="closed"):
        bridge.open_listener()


def test_the_job_widget_shows_bridged_and_the_traffic(
    make_job: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import comm

    from tests.test_nb_widget import RecordingComm

    # The widget needs a comm: one that records what the kernel would send.
    monkeypatch.setattr(comm, "create_comm", lambda *a, **k: RecordingComm(*a, **k))
    from spalloc_nb.widgets.job import JobWidget

    job = make_job(1)
    widget = JobWidget(job)
    try:
        assert widget.bridged
        udp_ask(job.hostname, scp_version_request(1))
        wait_for(lambda: widget.traffic.startswith("1 packets (26 B) out, 1 packets"), WAIT)
        html = widget._summary.value
        assert "Bridged" in html and "through the job&#x27;s websocket proxy" in html
        assert "0 errors" in widget.traffic
        assert "bridged (1 packets" in widget._repr_mimebundle_()["text/plain"]
    finally:
        widget.close()


def test_the_renderings_of_a_bridged_job() -> None:
    from spalloc.models import BridgeTraffic, JobSnapshot
    from spalloc.states import JobState
    from spalloc_nb._html import job_html, job_text, job_view

    snap = JobSnapshot(
        job_id=3,
        state=JobState.ready,
        power=True,
        machine_name="m",
        boards=((0, 0, 0),),
        width=8,
        height=8,
        connections={(0, 0): "127.1.2.3"},
        connected=True,
        bridged=True,
        board_connections={(0, 0): "10.0.0.1"},
        traffic=BridgeTraffic(5, 130, 1, 4, 200, 0, 2),
        bridge_error="proxy websocket unavailable: gone",
    )
    text = job_text(job_view(snap))
    assert text.endswith(
        "127.1.2.3 (8\u00d78 chips), bridged (5 packets (130 B) out, 4 packets (200 B) in, "
        "1 errors, 2 reconnections)"
    )
    html = job_html(job_view(snap))
    assert "proxy websocket unavailable: gone" in html and "4 packets (200 B) in" in html
    assert "Bridged" not in job_html(job_view(snap._replace(bridged=False, traffic=None)))


def test_the_magics_take_proxy_from_the_same_options(server: V2Server) -> None:
    from types import SimpleNamespace

    from IPython.core.error import UsageError

    from spalloc.ui.options import job_arguments
    from spalloc_nb._magicargs import alloc_parser

    config = load_config([], {"SPALLOC_PROXY": "never"})
    defaults = SimpleNamespace(**{name: getattr(config, name) for name in config._fields})
    parser = alloc_parser(False, defaults, "job")
    _, kwargs = job_arguments(parser.parse_args(["--hostname", server.base_url]))
    assert kwargs["proxy"] == "never"  # the config's
    args = parser.parse_args(["--hostname", server.base_url, "--proxy", "ALWAYS"])
    _, kwargs = job_arguments(args)
    assert kwargs["proxy"] == "always"
    with pytest.raises((UsageError, SystemExit)):
        parser.parse_args(["--proxy", "sometimes"])


def test_the_notebook_exit_cleanup_closes_the_bridge(server: V2Server) -> None:
    # At interpreter exit the registry destroys the job: the bridge must close with it and
    # the interpreter end (its threads are joined, not left to block the exit).
    code = (
        "import sys\n"
        "from spalloc import Job\n"
        "from spalloc_nb._registry import registry\n"
        "job = Job(1, hostname=sys.argv[1], proxy='always', keepalive=60.0,\n"
        "          config_filenames=[])\n"
        "registry.add_job(job)\n"
        "job.wait_until_ready(timeout=10)\n"
        "job.bridge.wait_connected(10)\n"
        "print(job.id, job.hostname)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, server.base_url],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    job_id, address = done.stdout.split()[-2:]
    assert in_bridge_network(address)
    assert int(job_id) in server.emulator.retired_jobs()


def test_ctrl_c_of_spalloc_c_destroys_the_job_and_closes_the_bridge(server: V2Server) -> None:
    import signal

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spalloc.cli.alloc",
            "--hostname",
            server.base_url,
            "--proxy",
            "always",
            "-c",
            "echo started {id} {hostname}; exec sleep 30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded by pytest-timeout
        assert line.startswith("started "), line
        job_id, address = int(line.split()[1]), line.split()[2]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tool:
            check_version_reply(ask_until_answered(tool, address, 9), 9)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=3 * WAIT)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGINT
    assert job_id in server.emulator.retired_jobs()
    # Said after the bridge closed with the job; the request above may have been sent twice.
    assert re.search(r"bridge carried [1-9]\d* packets", err), err
