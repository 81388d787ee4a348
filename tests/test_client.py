"""ProtocolClient against the emulator and against small raw-socket servers (real sockets)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from spalloc import (
    IncompatibleServerError,
    ProtocolClient,
    ProtocolError,
    ProtocolTimeoutError,
    SpallocServerException,
)
from spalloc.client import check_server_version, parse_server_version
from spalloc.models import JobMachineInfo, JobStateInfo, WhereIs
from spalloc.states import JobState

WAIT = 5.0


# --- a scripted raw server ------------------------------------------------------------------


class RawServer:
    """Accepts connections on 127.0.0.1:0 and runs ``handler(conn, self)`` for each one."""

    def __init__(self, handler: Callable[[socket.socket, RawServer], None]) -> None:
        self.handler = handler
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.received = bytearray()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(WAIT)
            self.accepted += 1
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handler(conn, self)
        except (OSError, StopIteration):
            pass  # the client went away

    def read_lines(self, conn: socket.socket, buffer: bytearray) -> Iterator[bytes]:
        """Yield request lines as they arrive, until the peer closes (bounded by timeouts)."""
        for _ in range(100_000):
            while b"\n" in buffer:
                line, _, rest = bytes(buffer).partition(b"\n")
                buffer[:] = rest
                yield line
            data = conn.recv(65536)
            if not data:
                return
            self.received += data
            buffer += data

    def close(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        for conn in self._conns:
            conn.close()
        self.sock.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def make(handler: Callable[[socket.socket, RawServer], None]) -> RawServer:
        server = RawServer(handler)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def echo_handler(conn: socket.socket, server: RawServer) -> None:
    """Answer every request with its own args, so a reply proves which request it belongs to."""
    for line in server.read_lines(conn, bytearray()):
        request = json.loads(line)
        conn.sendall(json.dumps({"return": request["args"]}).encode() + b"\n")


@pytest.fixture
def client(emulator: Any) -> Iterator[ProtocolClient]:
    with ProtocolClient(emulator.host, emulator.port, timeout=WAIT) as c:
        yield c


# --- basics against the emulator ------------------------------------------------------------


def test_constructor_does_not_connect(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(echo_handler)
    c = ProtocolClient("127.0.0.1", server.port)
    time.sleep(0.2)
    assert server.accepted == 0
    assert not c.connected
    with pytest.raises(ProtocolError, match="not connected"):
        c.call("version")
    c.connect()
    assert c.connected
    c.close()


def test_connect_failure_is_oserror() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = ProtocolClient("127.0.0.1", port)
    with pytest.raises(OSError):
        c.connect(timeout=WAIT)


def test_seed_example(emulator: Any) -> None:
    # The seed's ProtocolClient example, with a wait on a job notification.
    with ProtocolClient(emulator.host, emulator.port) as c:
        assert c.call("version") == c.version()
        assert isinstance(c.version(), str)
        c.notify_job()
        job_id = c.create_job(owner="me", keepalive=None)
        note = c.wait_for_notification(timeout=WAIT)
        assert note is not None and job_id in note["jobs_changed"]
        c.destroy_job(job_id)


def test_typed_and_raw_calls(client: ProtocolClient) -> None:
    job_id = client.create_job(1, owner="me", keepalive=None)
    state = client.get_job_state(job_id)
    assert isinstance(state, JobStateInfo)
    assert state.state in (JobState.power, JobState.ready)
    assert state["state"] == int(state.state)  # dict-style access for old code
    raw = client.call("get_job_state", job_id)
    assert isinstance(raw, dict) and raw["state"] == int(state.state)
    info = client.get_job_machine_info(job_id)
    assert isinstance(info, JobMachineInfo)
    assert info.width == 8 and info.height == 8 and info.connections
    where = client.where_is(job_id=job_id, chip_x=0, chip_y=0)
    assert isinstance(where, WhereIs) and where.job_id == job_id
    board = next(iter(info.boards or []))
    physical = client.get_board_position(info.machine_name or "", *board)
    assert physical is not None
    assert client.get_board_at_position(info.machine_name or "", *physical) == list(board)
    assert [j.job_id for j in client.list_jobs()] == [job_id]
    assert client.list_machines()[0].name
    client.destroy_job(job_id, reason="done")
    assert client.get_job_state(job_id).reason == "done"


def test_server_exception_keeps_connection(client: ProtocolClient) -> None:
    with pytest.raises(SpallocServerException) as info:
        client.call("version", 1, 2)
    assert info.value.command == "version"
    assert client.version()  # still usable


def test_wait_for_notification_timeouts(client: ProtocolClient) -> None:
    assert client.wait_for_notification(timeout=-1) is None
    with pytest.raises(ProtocolTimeoutError):
        client.wait_for_notification(timeout=0.05)
    client.notify_job()
    job_id = client.create_job(owner="me", keepalive=None)
    for _ in range(100):  # bounded: the notification comes within one server turn
        note = client.wait_for_notification(timeout=-1)
        if note is not None:
            break
        time.sleep(0.02)
    assert note == {"jobs_changed": [job_id]} or job_id in (note or {}).get("jobs_changed", [])


def test_wait_for_notification_not_connected() -> None:
    c = ProtocolClient("127.0.0.1", 9)
    assert c.wait_for_notification(-1) is None
    with pytest.raises(ProtocolError):
        c.wait_for_notification(0.1)


# --- threads ------------------------------------------------------------------------------


def test_eight_threads_share_one_connection(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(echo_handler)
    errors: list[str] = []
    with ProtocolClient("127.0.0.1", server.port, timeout=WAIT) as c:

        def worker(n: int) -> None:
            for i in range(200):
                got = c.call("echo", n, i)
                if got != [n, i]:
                    errors.append(f"thread {n} call {i} got {got}")

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert not errors
    assert server.accepted == 1


def test_eight_threads_against_emulator(client: ProtocolClient) -> None:
    job_ids = [client.create_job(owner=f"owner{n}", keepalive=None) for n in range(8)]
    expected = {j: client.call("get_job_state", j)["start_time"] for j in job_ids}
    errors: list[str] = []

    def worker(job_id: int) -> None:
        for _ in range(50):
            state = client.get_job_state(job_id)
            if state.start_time != expected[job_id]:
                errors.append(f"job {job_id}: got {state}")

    threads = [threading.Thread(target=worker, args=(j,)) for j in job_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors


def test_listener_runs_off_the_reader_and_may_call_back(emulator: Any) -> None:
    seen: list[tuple[str, str]] = []
    done = threading.Event()
    with ProtocolClient(emulator.host, emulator.port, timeout=WAIT) as c:

        def listener(note: dict[str, Any]) -> None:
            seen.append((threading.current_thread().name, c.version()))
            done.set()

        remove = c.add_notification_listener(listener)
        c.notify_job()
        c.create_job(owner="me", keepalive=None)
        assert done.wait(WAIT)
        remove()
        # Listeners and the queue both see notifications.
        assert c.wait_for_notification(timeout=WAIT) is not None
    name, version = seen[0]
    assert "reader" not in name and version


# --- timeouts and broken peers --------------------------------------------------------------


def test_timeout_does_not_desynchronise(raw_server: Callable[..., RawServer]) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        lines = server.read_lines(conn, bytearray())
        first = json.loads(next(lines))
        second = json.loads(next(lines))  # hold the first reply until the second request
        conn.sendall(json.dumps({"return": first["command"]}).encode() + b"\n")
        conn.sendall(json.dumps({"return": second["command"]}).encode() + b"\n")
        for _ in lines:
            pass

    server = raw_server(handler)
    with ProtocolClient("127.0.0.1", server.port) as c:
        with pytest.raises(ProtocolTimeoutError) as info:
            c.call("first", timeout=0.2)
        assert isinstance(info.value, TimeoutError)
        assert c.call("second", timeout=WAIT) == "second"


def test_garbage_gives_protocol_error_and_loses_nothing(
    raw_server: Callable[..., RawServer],
) -> None:
    release = threading.Event()

    def handler(conn: socket.socket, server: RawServer) -> None:
        lines = server.read_lines(conn, bytearray())
        for _ in range(3):
            next(lines)
        conn.sendall(b'{"jobs_changed": [7]}\n')
        release.wait(WAIT)
        conn.sendall(b"this is not json\n")
        for _ in lines:
            pass

    server = raw_server(handler)
    results: list[BaseException | Any] = []
    with ProtocolClient("127.0.0.1", server.port, timeout=WAIT) as c:

        def worker() -> None:
            try:
                results.append(c.call("anything"))
            except BaseException as exc:
                results.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for t in threads:
            t.start()
        note = c.wait_for_notification(timeout=WAIT)
        release.set()
        for t in threads:
            t.join(WAIT)
        assert note == {"jobs_changed": [7]}
        assert len(results) == 3
        assert all(isinstance(r, ProtocolError) for r in results), results
        assert not c.connected
        # The client is reusable: connect again and talk.
        c.connect()
        assert c.connected


def test_disconnect_fails_waiting_callers(raw_server: Callable[..., RawServer]) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        next(server.read_lines(conn, bytearray()))
        conn.close()

    server = raw_server(handler)
    lost = threading.Event()
    with ProtocolClient("127.0.0.1", server.port) as c:
        c.add_disconnect_listener(lambda error: lost.set())
        with pytest.raises(ProtocolError) as info:
            c.call("version", timeout=WAIT)
        assert not isinstance(info.value, ProtocolTimeoutError)
        assert lost.wait(WAIT)
        with pytest.raises(ProtocolError):
            c.wait_for_notification(timeout=WAIT)


def test_unsolicited_reply_is_a_protocol_error(raw_server: Callable[..., RawServer]) -> None:
    # Without request IDs a reply nobody asked for means the stream can no longer be trusted.
    def handler(conn: socket.socket, server: RawServer) -> None:
        lines = server.read_lines(conn, bytearray())
        next(lines)
        conn.sendall(b'{"return": 1}\n{"return": 2}\n')
        for _ in lines:
            pass

    server = raw_server(handler)
    with ProtocolClient("127.0.0.1", server.port) as c:
        assert c.call("version", timeout=WAIT) == 1
        for _ in range(100):
            if not c.connected:
                break
            time.sleep(0.02)
        assert not c.connected
        with pytest.raises(ProtocolError):
            c.call("version", timeout=WAIT)


def test_close_wakes_a_waiting_caller(raw_server: Callable[..., RawServer]) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        for _ in server.read_lines(conn, bytearray()):
            pass  # never answers

    server = raw_server(handler)
    c = ProtocolClient("127.0.0.1", server.port)
    c.connect()
    pending = c.submit("version")
    closer = threading.Timer(0.1, c.close)
    closer.start()
    with pytest.raises(ProtocolError):
        pending.result(WAIT)
    closer.join()


# --- Java-server compatibility (PROTOCOL.md §8) -----------------------------------------------


def test_java_style_replies(raw_server: Callable[..., RawServer]) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        for line in server.read_lines(conn, bytearray()):
            request = json.loads(line)
            if request["command"] == "version":
                conn.sendall(b'{"return":"5.0.0"}\r\n')
            else:
                conn.sendall(
                    b'{"exception":"unknown command: ' + request["command"].encode() + b'"}\r\n'
                )

    server = raw_server(handler)
    with ProtocolClient("127.0.0.1", server.port, timeout=WAIT) as c:
        assert c.check_version() == "5.0.0"
        with pytest.raises(SpallocServerException, match="unknown command: nope"):
            c.call("nope")
        assert c.version() == "5.0.0"  # the connection survives


def test_requests_are_well_formed_and_named(raw_server: Callable[..., RawServer]) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        for _ in server.read_lines(conn, bytearray()):
            conn.sendall(b'{"return": null}\n')

    server = raw_server(handler)
    with ProtocolClient("127.0.0.1", server.port, timeout=WAIT) as c:
        c.get_board_position("m", 1, 2, 0)
        c.get_board_at_position("m", 0, 0, 3)
        c.destroy_job(4, reason="bye")
        c.where_is(job_id=4, chip_x=1, chip_y=2)
        c.notify_job(4)
    data = bytes(server.received)
    assert data.endswith(b"\n")
    lines = data.split(b"\n")[:-1]
    assert all(line.strip() for line in lines), "never send a blank line"
    requests = [json.loads(line) for line in lines]
    assert requests[0] == {
        "command": "get_board_position",
        "args": [],
        "kwargs": {"machine_name": "m", "x": 1, "y": 2, "z": 0},
    }
    assert requests[1]["kwargs"] == {"machine_name": "m", "x": 0, "y": 0, "z": 3}
    assert requests[2] == {"command": "destroy_job", "args": [4], "kwargs": {"reason": "bye"}}
    assert requests[3]["kwargs"] == {"job_id": 4, "chip_x": 1, "chip_y": 2}
    assert requests[4] == {"command": "notify_job", "args": [4], "kwargs": {}}


# --- versions (B1) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,release",
    [
        ("1!7.0.0", (7, 0, 0)),
        ("5.0.0", (5, 0, 0)),
        ("4.0.0.post1", (4, 0, 0, 0)),
        ("0.1.0", (0, 1, 0)),
        ("7.1.0rc1", (7, 1, 0)),
        ("6", (6, 0, 0)),
        (" 5.0.0", (5, 0, 0)),
        ("5.0", (5, 0, 0)),
        ("v5.0.0", (5, 0, 0)),
        ("5.0.0-rc1", (5, 0, 0)),
        ("7.9.9", (7, 9, 9)),
        ("5.0.", (5, 0, 0)),
        ("5!x", (5, 0, 0)),
        ("1!5!0", (5, 0, 0)),
    ],
)
def test_b1_real_server_versions_accepted(text: str, release: tuple[int, ...]) -> None:
    assert parse_server_version(text)[:3] == release[:3]
    check_server_version(text)


@pytest.mark.parametrize(
    "text", ["0.0.9", "8.0.0", "10.0.0", "2!9.1", "garbage", "abc", "", "x!5.0.0", ".5.0"]
)
def test_incompatible_versions_name_the_version(text: str) -> None:
    with pytest.raises(IncompatibleServerError) as info:
        check_server_version(text)
    assert info.value.version == text
    assert repr(text) in str(info.value)


def test_b1_client_checks_reference_version(raw_server: Callable[..., RawServer]) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        for _ in server.read_lines(conn, bytearray()):
            conn.sendall(b'{"return": "1!7.0.0"}\n')

    server = raw_server(handler)
    with ProtocolClient("127.0.0.1", server.port, timeout=WAIT) as c:
        assert c.check_version() == "1!7.0.0"


def test_immediate_listeners_run_on_the_reader(raw_server: Callable[..., RawServer]) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        lines = server.read_lines(conn, bytearray())
        next(lines)
        conn.sendall(b'{"jobs_changed": [1]}\n{"return": null}\n')
        next(lines)
        conn.close()

    server = raw_server(handler)
    seen: list[str] = []
    lost: list[str] = []
    with ProtocolClient("127.0.0.1", server.port, timeout=WAIT) as c:
        c.add_notification_listener(
            lambda n: seen.append(threading.current_thread().name), immediate=True
        )
        c.add_disconnect_listener(
            lambda e: lost.append(threading.current_thread().name), immediate=True
        )
        c.call("subscribe")
        assert seen and "reader" in seen[0]  # delivered before the reply that followed it
        with pytest.raises(ProtocolError):
            c.call("again")
        assert lost and "reader" in lost[0]


def test_submit_many_goes_in_one_write_and_answers_in_order(
    raw_server: Callable[..., RawServer],
) -> None:
    """A batch is one write (the server's first read holds every line) and each slot gets
    its own request's reply; a server that writes its replies one by one still fills them."""
    first_reads: list[bytes] = []

    def handler(conn: socket.socket, server: RawServer) -> None:
        data = conn.recv(65536)
        first_reads.append(data)
        buffer = bytearray(data)
        lines = server.read_lines(conn, buffer)
        for line in lines:
            request = json.loads(line)
            conn.sendall(json.dumps({"return": request["args"]}).encode() + b"\n")

    server = raw_server(handler)
    with ProtocolClient("127.0.0.1", server.port, timeout=WAIT) as c:
        deadline = time.monotonic() + WAIT
        requests: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
            (f"cmd{i}", (i,), {}) for i in range(5)
        ]
        pending = c.submit_many_by(deadline, requests)
        assert [slot.result_by(deadline) for slot in pending] == [[i] for i in range(5)]
    assert first_reads and first_reads[0].count(b"\n") == 5


def test_submit_many_when_not_connected() -> None:
    c = ProtocolClient("127.0.0.1", 1, timeout=WAIT)
    with pytest.raises(ProtocolError, match="not connected"):
        c.submit_many_by(None, [("version", (), {}), ("list_jobs", (), {})])
