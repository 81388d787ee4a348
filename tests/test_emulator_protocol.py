"""Framing, malformed input (PROTOCOL.md §1.5/§1.6 with our FIXes) and robustness."""

from __future__ import annotations

import socket
import time

import pytest

from spalloc.emulator import EMULATOR_VERSION
from tests.conftest import WAIT, LineClient


def test_version_is_plain_and_accepted_by_both_official_clients(emulator, connect):
    client = connect(emulator)
    version = client.call("version")
    assert version == EMULATOR_VERSION == "5.0.0"
    parts = tuple(int(p) for p in version.split("."))  # the CLIs int() every field
    assert (0, 1, 0) <= parts < (5, 0, 1)  # 1!6.0.0's window (7.x: < 7.0.0)


def test_reply_layout_matches_python_json_dumps(emulator, connect):
    client = connect(emulator)
    client.send("create_job", owner="Jos\u00e9 \u2603", keepalive=None)
    client.reply()
    client.send("list_jobs")
    line = client.read_line()
    assert line is not None
    assert line.startswith(b'{"return": [{"job_id": 1, "owner": "Jos\\u00e9 \\u2603", ')


@pytest.mark.parametrize(
    "raw",
    [
        b'{"command":"version"}\r\n',
        b'\n\n{"command":"version"}\n',
        b'   {"command":"version"}   \n',
        b'\r\n{"command":"version"}\n',  # quirk 8 FIX: a CR-only line is skipped
        b'   \n{"command":"version"}\n',  # quirk 8 FIX: a spaces-only line is skipped
        b'\t\r\n{"command":"version"}\n',
        b'{"command":"version","extra":5}\n',
        b'{"command":"version","kwargs":{"client":"x"}}\n',
        b'{"command":"version","args":[],"kwargs":{}}\n',
    ],
)
def test_accepted_framings(emulator, connect, raw):
    client = connect(emulator)
    client.send_raw(raw)
    assert client.read() == {"return": "5.0.0"}


@pytest.mark.parametrize(
    "raw",
    [
        b"{\n",
        b"[]\n",
        b'"version"\n',
        b"123\n",
        b"null\n",
        b"{}\n",
        b'{"command":123}\n',
        b'{"command":"nope"}\n',
        b'{"command":"__init__"}\n',
        b'{"command":"_cmd_version"}\n',
        b'{"command":"handle"}\n',
        b'{"command":"version","args":"x"}\n',
        b'{"command":"version","kwargs":[]}\n',
        b'{"command":"version","args":null}\n',
        b'{"command":"version","kwargs":null}\n',
        b'{"command":"version"} {"x":1}\n',
        b'{"command":"vers\xff\xfeion"}\n',
        b'{"command":"version","args":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
        b'{"command":"version","args":[NaN\n',
        b"[NaN]\n",
        b'{"command":"version","args":NaN}\n',
    ],
)
def test_malformed_lines_close_the_connection_without_reply(emulator, connect, raw):
    client = connect(emulator)
    client.send_raw(raw)
    assert client.read() is None
    # ...and the server is fine.
    assert connect(emulator).call("version") == "5.0.0"


def test_unknown_command_in_a_pipeline_loses_the_rest(emulator, connect):
    client = connect(emulator)
    client.send_raw(b'{"command":"version"}\n{"command":"nope"}\n{"command":"version"}\n')
    assert client.read() == {"return": "5.0.0"}
    assert client.read() is None


def test_line_without_newline_waits(emulator, connect):
    client = connect(emulator)
    client.send_raw(b'{"command":"version"}')
    with pytest.raises(TimeoutError):
        client.read(timeout=0.2)
    client.send_raw(b"\n")
    assert client.read() == {"return": "5.0.0"}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"command":"get_job_state","args":[NaN]}\n',
        b'{"command":"create_job","args":[NaN],"kwargs":{"owner":"x"}}\n',
        b'{"command":"create_job","args":[],"kwargs":{"owner":"x","keepalive":Infinity}}\n',
        b'{"command":"version","kwargs":{"x":-Infinity}}\n',
    ],
)
def test_non_finite_numbers_get_an_exception_and_keep_the_connection(emulator, connect, raw):
    client = connect(emulator)
    client.send_raw(raw)
    message = client.read()
    assert message is not None and "non-finite" in message["exception"]
    assert client.call("version") == "5.0.0"
    assert client.call("list_jobs") == []  # and no job was created


def test_arity_errors_are_exceptions_and_keep_the_connection(emulator, connect):
    client = connect(emulator)
    assert "positional" in client.error("version", 1)
    assert "foo" in client.error("version", foo=1)
    assert "job_id" in client.error("get_job_state")
    assert "too many" in client.error("get_job_state", 1, 2)
    assert "positional" in client.error("where_is", 1)
    assert client.call("version") == "5.0.0"


def test_a_session_keyword_is_just_an_unknown_keyword(emulator, connect):
    client = connect(emulator)
    assert "session" in client.error("create_job", owner="x", session=1)
    assert "session" in client.error("where_is", session=1)
    assert "session" in client.error("get_job_state", 1, session=1)
    assert client.call("list_jobs") == []


def test_named_arguments_bind_like_positionals(emulator, connect):
    client = connect(emulator)
    job = client.call("create_job", owner="x")
    state = client.call("get_job_state", job_id=job)
    assert state["state"] in (2, 3)
    assert client.call("destroy_job", job_id=job, reason="bye") is None
    assert client.call("get_job_state", job)["reason"] == "bye"


def test_pipelined_requests_are_answered_in_order(emulator, connect):
    client = connect(emulator)
    client.send_raw(
        b"".join(b'{"command":"get_job_state","args":[%d]}\n' % i for i in range(200))
        + b'{"command":"version"}\n'
    )
    for _ in range(200):
        assert client.reply()["return"]["state"] == 0
    assert client.reply() == {"return": "5.0.0"}


def test_over_long_line_drops_only_that_client(emulator, connect):
    bad = connect(emulator)
    good = connect(emulator)
    chunk = b"x" * 65536
    dropped = False
    for _ in range(40):  # 2.5 MiB at most, without a newline
        try:
            bad.send_raw(chunk)
        except OSError:
            dropped = True
            break
    assert good.call("version") == "5.0.0"
    assert dropped or bad.is_closed()


def test_a_client_that_never_reads_does_not_stall_others(emulator, connect):
    hog = socket.create_connection(emulator.address, timeout=WAIT)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    good = connect(emulator)
    request = b'{"command":"list_machines"}\n' * 1000
    hog.setblocking(False)
    sent = 0
    answered = 0
    for i in range(400):  # pipeline up to ~11 MB of requests whose replies are never read
        try:
            sent += hog.send(request)
        except (BlockingIOError, OSError):
            pass
        if i % 20 == 0:
            assert good.call("version") == "5.0.0"
            answered += 1
    assert sent > 0 and answered == 20
    hog.close()
    assert good.call("version") == "5.0.0"


def test_a_client_with_a_huge_unread_backlog_is_dropped(emulator, connect):
    from spalloc.emulator.server import MAX_BACKLOG_BYTES

    worker = connect(emulator)
    for _ in range(100):  # list_jobs answers about 1 MB
        worker.call("create_job", owner="o" * 10_000, machine="board1", keepalive=None)
    hog = connect(emulator)
    hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    count = 2 * MAX_BACKLOG_BYTES // 1_000_000 + 8
    hog.send_raw(b'{"command":"list_jobs"}\n' * count)  # far more than the limit, unread
    assert worker.call("version") == "5.0.0"
    assert hog.is_closed()


def test_pipelined_requests_then_close_does_not_hurt_the_server(emulator, connect):
    for _ in range(5):
        sock = socket.create_connection(emulator.address, timeout=WAIT)
        sock.sendall(b'{"command":"list_machines"}\n' * 200)
        sock.close()
    sock = socket.create_connection(emulator.address, timeout=WAIT)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.sendall(b'{"command":"version"}\n' * 50)
    sock.close()  # RST
    time.sleep(0.05)
    assert connect(emulator).call("version") == "5.0.0"


def test_many_connections_at_once(emulator):
    clients = [LineClient(emulator.address) for _ in range(50)]
    try:
        for client in clients:
            client.send("version")
        assert all(client.reply() == {"return": "5.0.0"} for client in clients)
    finally:
        for client in clients:
            client.close()
