"""The v2 websocket proxy and the emulated boards' SCP answers, with aiohttp's client."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import aiohttp
import pytest

from spalloc.emulator._boards import SCP_PORT, version_reply
from tests._v2 import Http, V2Server
from tests.test_emulator_v2 import alice, create, wait_state

OPEN, CLOSE, MESSAGE, OPEN_UNCONNECTED, MESSAGE_TO, ERROR = range(6)
TIMEOUT = 10.0

_T = TypeVar("_T")


def run_async(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run *coroutine* to its end on a loop of its own, in a thread of its own: the browser
    tests' Playwright keeps an event loop running on the main thread for the whole session."""
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="proxy-test") as pool:
        return pool.submit(asyncio.run, coroutine).result()


def scp_version_request(seq: int, x: int = 0, y: int = 0) -> bytes:
    """CMD_VER to chip (x, y), CPU 0, as SpiNNMan frames it (2 pad bytes first)."""
    sdp = struct.pack("<2x8B", 0x87, 0xFF, 0, (7 << 5) | 31, y, x, 0, 0)
    return sdp + struct.pack("<HH3I", 0, seq, 0, 0, 0)


def check_version_reply(reply: bytes, seq: int, x: int = 0, y: int = 0) -> None:
    """The reply swaps SDP source and destination and describes chip (x, y)."""
    header = struct.unpack_from("<2x8B", reply)
    assert header == (0x07, 0xFF, (7 << 5) | 31, 0, 0, 0, y, x)
    rc, got_seq = struct.unpack_from("<HH", reply, 10)
    assert (rc, got_seq) == (0x80, seq)
    block = struct.unpack_from("<BBBBHHI", reply, 14)
    assert block[:6] == (0, 0, y, x, 0, 0xFFFF)
    strings = reply[26:]
    assert strings.endswith(b"\0")
    name, _, number = strings[:-1].partition(b"\0")
    assert name == b"SC&MP/SpiNNaker" and number == b"4.0.0"


def test_version_reply_and_unknown_command() -> None:
    reply = version_reply(scp_version_request(7))
    assert reply is not None
    check_version_reply(reply, 7)
    other = bytearray(scp_version_request(9))
    other[10:12] = struct.pack("<H", 3)  # CMD_READ
    answer = version_reply(bytes(other))
    assert answer is not None and struct.unpack_from("<HH", answer, 10) == (0x83, 9)
    assert version_reply(b"\0" * 5) is None


def ready_job(server: V2Server, boards: int = 1) -> tuple[Http, int, dict[str, Any]]:
    http = alice(server)
    job_id = create(http, **{"num-boards": boards})
    wait_state(http, job_id, "READY")
    return http, job_id, http.get(f"srv/spalloc/jobs/{job_id}/machine").json()


def udp_round_trip(address: str, request: bytes, timeout: float = TIMEOUT) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(request, (address, SCP_PORT))
        try:
            return sock.recv(4096)
        except (TimeoutError, ConnectionRefusedError):
            return None


def test_allocated_powered_boards_answer_and_freed_ones_do_not(v2_server: V2Server) -> None:
    http, job_id, machine = ready_job(v2_server)
    address = machine["connections"][0][1]
    reply = udp_round_trip(address, scp_version_request(1))
    assert reply is not None
    check_version_reply(reply, 1)
    http.request("POST", f"srv/spalloc/jobs/{job_id}/machine/power", json_body={"power": "OFF"})
    wait_state(http, job_id, "READY")
    assert udp_round_trip(address, scp_version_request(2), timeout=0.3) is None
    http.request("DELETE", f"srv/spalloc/jobs/{job_id}")
    assert udp_round_trip(address, scp_version_request(3), timeout=0.3) is None


def run_ws(
    server: V2Server,
    http: Http,
    job_id: int,
    body: Callable[[aiohttp.ClientWebSocketResponse], Awaitable[Any]],
    *,
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Any:
    """Open the job's proxy websocket with the session's cookie and CSRF token; run *body*
    (for at most *timeout* seconds)."""
    context = ssl.create_default_context(cafile=str(server.ca_path))
    url = server.base_url.replace("https://", "wss://") + f"proxy/{job_id}"
    sent = {"Cookie": f"JSESSIONID={http.cookie}", "Origin": "127.0.0.1"}
    if http.csrf:
        sent["X-CSRF-TOKEN"] = http.csrf
    sent.update(headers or {})

    async def main() -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                url,
                headers=sent,
                ssl=context,
                timeout=aiohttp.ClientWSTimeout(ws_close=5),
                autoping=True,
            ) as ws,
        ):
            return await asyncio.wait_for(body(ws), timeout)

    return run_async(main())


async def receive(ws: aiohttp.ClientWebSocketResponse) -> bytes:
    msg = await ws.receive()
    assert msg.type == aiohttp.WSMsgType.BINARY, msg
    data: bytes = msg.data
    return data


def words(data: bytes, n: int) -> tuple[int, ...]:
    return struct.unpack_from(f"<{n}I", data)


def test_proxied_scp_round_trip_and_close(v2_server: V2Server) -> None:
    http, job_id, _ = ready_job(v2_server, boards=3)

    async def body(ws: aiohttp.ClientWebSocketResponse) -> None:
        await ws.send_bytes(struct.pack("<5I", OPEN, 11, 0, 0, SCP_PORT))
        op, corr, channel = words(await receive(ws), 3)
        assert (op, corr) == (OPEN, 11) and channel != 0
        for seq in range(3):
            await ws.send_bytes(struct.pack("<2I", MESSAGE, channel) + scp_version_request(seq))
            reply = await receive(ws)
            assert words(reply, 2) == (MESSAGE, channel)
            check_version_reply(reply[8:], seq)
        await ws.send_bytes(struct.pack("<3I", CLOSE, 12, channel))
        assert words(await receive(ws), 3) == (CLOSE, 12, channel)
        await ws.send_bytes(struct.pack("<3I", CLOSE, 13, channel))
        assert words(await receive(ws), 3) == (CLOSE, 13, 0)
        # A message on the closed channel is ignored; the socket stays usable.
        await ws.send_bytes(struct.pack("<2I", MESSAGE, channel) + b"x")
        await ws.send_bytes(struct.pack("<5I", OPEN, 14, 9, 9, SCP_PORT))
        reply = await receive(ws)
        assert words(reply, 2) == (ERROR, 14) and reply[8:] == b"unrecognised ethernet chip"
        await ws.send_bytes(struct.pack("<5I", OPEN, 15, 0, 0, 0))
        reply = await receive(ws)
        assert words(reply, 2) == (ERROR, 15) and reply[8:] == b"bad port number"

    run_ws(v2_server, http, job_id, body)


def test_unconnected_channel_sends_to_boards_and_hears_only_them(v2_server: V2Server) -> None:
    http, job_id, machine = ready_job(v2_server, boards=3)
    address = machine["connections"][0][1]

    async def body(ws: aiohttp.ClientWebSocketResponse) -> None:
        await ws.send_bytes(struct.pack("<2I", OPEN_UNCONNECTED, 21))
        reply = await receive(ws)
        op, corr, channel = words(reply, 3)
        assert (op, corr) == (OPEN_UNCONNECTED, 21)
        ip = socket.inet_ntoa(reply[12:16])
        (port,) = struct.unpack_from("<I", reply, 16)
        assert ip == "127.0.0.1" and port > 0
        # A board's SCP answer to a MESSAGE_TO comes back on the channel.
        x, y = machine["connections"][1][0]
        await ws.send_bytes(
            struct.pack("<5I", MESSAGE_TO, channel, x, y, SCP_PORT) + scp_version_request(5, x, y)
        )
        answer = await receive(ws)
        assert words(answer, 2) == (MESSAGE, channel)
        check_version_reply(answer[8:], 5, x, y)
        # Someone who is not a board of the job is not heard...
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.bind(("127.0.0.1", 0))
            stranger.sendto(b"intruder", (ip, port))
        # ...but the board's own address is (sent from it, as a board would).
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as board:
            board.bind((address, 0))
            board.sendto(b"from the board", (ip, port))
        heard = await receive(ws)
        assert heard[8:] == b"from the board"
        # MESSAGE_TO on a connected channel breaks the protocol: 1007.
        await ws.send_bytes(struct.pack("<5I", OPEN, 22, 0, 0, SCP_PORT))
        _, _, connected = words(await receive(ws), 3)
        await ws.send_bytes(struct.pack("<5I", MESSAGE_TO, connected, 0, 0, SCP_PORT) + b"x")
        msg = await ws.receive()
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1007

    run_ws(v2_server, http, job_id, body)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x01\x02", 1007),  # short
        (struct.pack("<I", 9), 1007),  # unknown opcode
        (struct.pack("<I", ERROR) + b"\0" * 4, 1007),  # client may not send ERROR
        (struct.pack("<6I", OPEN, 1, 0, 0, 17893, 0), 1007),  # extra words
        (struct.pack("<3I", OPEN, 1, 0), 1007),  # missing words
        (struct.pack("<5I", MESSAGE_TO, 1, 9, 9, 17893), 1007),  # bad chip
        (b"\xff" * 3000, 1007),
    ],
)
def test_garbage_frames_close_with_1007_and_others_are_unaffected(
    v2_server: V2Server, frame: bytes, code: int
) -> None:
    http, job_id, _ = ready_job(v2_server)

    async def body(ws: aiohttp.ClientWebSocketResponse) -> None:
        await ws.send_bytes(frame)
        msg = await ws.receive()
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == code

    run_ws(v2_server, http, job_id, body)

    async def still_fine(ws: aiohttp.ClientWebSocketResponse) -> None:
        await ws.send_bytes(struct.pack("<5I", OPEN, 1, 0, 0, SCP_PORT))
        assert words(await receive(ws), 2) == (OPEN, 1)

    run_ws(v2_server, http, job_id, still_fine)
    assert http.get(f"srv/spalloc/jobs/{job_id}").json()["state"] == "READY"


def test_text_frames_are_refused(v2_server: V2Server) -> None:
    http, job_id, _ = ready_job(v2_server)

    async def body(ws: aiohttp.ClientWebSocketResponse) -> None:
        await ws.send_str("hello")
        await ws.receive()
        assert ws.close_code == 1003

    run_ws(v2_server, http, job_id, body)


def test_proxy_upgrade_checks(v2_server: V2Server) -> None:
    http, job_id, _ = ready_job(v2_server)
    context = ssl.create_default_context(cafile=str(v2_server.ca_path))
    url = v2_server.base_url.replace("https://", "wss://") + f"proxy/{job_id}"

    async def status(headers: dict[str, str], target: str = url) -> int:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(target, headers=headers, ssl=context):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    cookie = {"Cookie": f"JSESSIONID={http.cookie}"}
    assert http.csrf is not None
    assert run_async(status(cookie)) == 403  # no CSRF
    assert run_async(status({"X-CSRF-TOKEN": http.csrf})) == 403  # no session
    assert run_async(status({"Authorization": "Bearer alice-token"})) == 101
    assert (
        run_async(status({"Authorization": "Bearer alice-token"}, url.rsplit("/", 1)[0] + "/999"))
        == 404
    )
    assert run_async(status(dict(cookie, **{"X-CSRF-TOKEN": http.csrf}))) == 101


def test_destroying_the_job_closes_its_proxy(v2_server: V2Server) -> None:
    http, job_id, _ = ready_job(v2_server)
    other = alice(v2_server)

    async def body(ws: aiohttp.ClientWebSocketResponse) -> None:
        await ws.send_bytes(struct.pack("<5I", OPEN, 1, 0, 0, SCP_PORT))
        await receive(ws)
        await asyncio.to_thread(other.request, "DELETE", f"srv/spalloc/jobs/{job_id}")
        msg = await ws.receive()
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)

    run_ws(v2_server, http, job_id, body)


def test_queued_job_proxy_closes_with_1011(v2_server: V2Server) -> None:
    http = alice(v2_server)
    whole = create(http, dimensions={"width": 2, "height": 1})
    queued = create(http, dimensions={"width": 2, "height": 1})
    assert http.get(f"srv/spalloc/jobs/{queued}").json()["state"] == "QUEUED"

    async def body(ws: aiohttp.ClientWebSocketResponse) -> None:
        await ws.receive()
        assert ws.close_code == 1011

    run_ws(v2_server, http, queued, body)
    http.request("DELETE", f"srv/spalloc/jobs/{whole}")


def test_channels_per_websocket_are_bounded(v2_server: V2Server) -> None:
    from spalloc.emulator._proxy import MAX_CHANNELS

    http, job_id, _ = ready_job(v2_server)

    async def body(ws: aiohttp.ClientWebSocketResponse) -> None:
        channels = []
        for corr in range(MAX_CHANNELS):
            await ws.send_bytes(struct.pack("<2I", OPEN_UNCONNECTED, corr))
            op, got, channel = words(await receive(ws), 3)
            assert (op, got) == (OPEN_UNCONNECTED, corr)
            channels.append(channel)
        await ws.send_bytes(struct.pack("<5I", OPEN, 999, 0, 0, SCP_PORT))
        reply = await receive(ws)
        assert words(reply, 2) == (ERROR, 999) and b"too many open channels" in reply
        await ws.send_bytes(struct.pack("<3I", CLOSE, 1000, channels[0]))
        assert words(await receive(ws), 3) == (CLOSE, 1000, channels[0])
        await ws.send_bytes(struct.pack("<5I", OPEN, 1001, 0, 0, SCP_PORT))
        assert words(await receive(ws), 2) == (OPEN, 1001)

    run_ws(v2_server, http, job_id, body)


# --- bursts: the emulator must not be where datagrams are lost -----------------------------

BURST = 2000
BOOT_PORT = 54321
#: A bound, not a speed requirement: a loaded machine may take its time.
BURST_TIMEOUT = 120.0


async def receive_messages(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[bytes]:
    """The payloads of *count* MESSAGE frames (each awaited for at most TIMEOUT)."""
    payloads: list[bytes] = []
    while len(payloads) < count:
        frame = await asyncio.wait_for(receive(ws), TIMEOUT)
        assert words(frame, 1) == (MESSAGE,)
        payloads.append(frame[8:])
    return payloads


def test_a_burst_from_a_board_arrives_whole(v2_server: V2Server) -> None:
    """2,000 datagrams sent back-to-back from a board's address to a channel all reach the
    websocket: the channel's socket buffer and queue hold a burst (they used to lose most)."""
    http, job_id, machine = ready_job(v2_server)
    address = machine["connections"][0][1]

    async def body(ws: aiohttp.ClientWebSocketResponse) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as board:
            board.bind((address, BOOT_PORT))  # stands for the board's boot port
            board.settimeout(TIMEOUT)
            await ws.send_bytes(struct.pack("<5I", OPEN, 1, 0, 0, BOOT_PORT))
            _, _, channel = words(await receive(ws), 3)
            await ws.send_bytes(struct.pack("<2I", MESSAGE, channel) + b"hello")
            hello, proxy_side = await asyncio.to_thread(board.recvfrom, 100)
            assert hello == b"hello"
            for seq in range(BURST):  # as fast as one socket sends, without yielding
                board.sendto(struct.pack("<I", seq) + b"\0" * 60, proxy_side)
            payloads = await receive_messages(ws, BURST)
        assert [struct.unpack_from("<I", p)[0] for p in payloads] == list(range(BURST))

    run_ws(v2_server, http, job_id, body, timeout=BURST_TIMEOUT)


def test_a_burst_of_scp_requests_is_answered_whole(v2_server: V2Server) -> None:
    """2,000 CMD_VER requests in one go through the proxy: the board's socket holds them
    all and every answer comes back."""
    http, job_id, _ = ready_job(v2_server)

    async def body(ws: aiohttp.ClientWebSocketResponse) -> None:
        await ws.send_bytes(struct.pack("<5I", OPEN, 1, 0, 0, SCP_PORT))
        _, _, channel = words(await receive(ws), 3)
        head = struct.pack("<2I", MESSAGE, channel)
        for seq in range(BURST):
            await ws.send_bytes(head + scp_version_request(seq))
        replies = await receive_messages(ws, BURST)
        assert sorted(struct.unpack_from("<H", r, 12)[0] for r in replies) == list(range(BURST))
        check_version_reply(replies[-1], struct.unpack_from("<H", replies[-1], 12)[0])

    run_ws(v2_server, http, job_id, body, timeout=BURST_TIMEOUT)


def test_a_client_that_falls_behind_loses_nothing_of_a_burst(
    v2_server: V2Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A board sends while the client reads nothing: once the connection's buffers are full
    the proxy's queue fills (its limits lowered here: TCP buffers hold megabytes), the channel
    stops reading its socket and the writer waits for the websocket to drain; when the client
    reads again, every datagram arrives, in order."""
    from spalloc.emulator import _proxy

    monkeypatch.setattr(_proxy, "_HIGH", 256 << 10)
    monkeypatch.setattr(_proxy, "_LOW", 64 << 10)
    pauses: list[int] = []
    pause = _proxy._Channel.pause

    def counted(channel: _proxy._Channel) -> None:
        pauses.append(channel.channel_id)
        pause(channel)

    monkeypatch.setattr(_proxy._Channel, "pause", counted)
    http, job_id, machine = ready_job(v2_server)
    address = machine["connections"][0][1]
    size, most = 1000, 30_000

    async def body(ws: aiohttp.ClientWebSocketResponse) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as board:
            board.bind((address, BOOT_PORT))
            board.settimeout(TIMEOUT)
            await ws.send_bytes(struct.pack("<5I", OPEN, 1, 0, 0, BOOT_PORT))
            _, _, channel = words(await receive(ws), 3)
            await ws.send_bytes(struct.pack("<2I", MESSAGE, channel) + b"hello")
            _, proxy_side = await asyncio.to_thread(board.recvfrom, 100)
            # Nothing is read from the websocket while this loop runs (it never yields). It
            # sends 50 kB every 5 ms (a board on the network does not compete with the
            # emulator for the interpreter as this loop does) until the proxy has paused,
            # then 500 more: they wait in the channel's socket buffer.
            sent, stop_at = 0, most
            while sent < stop_at:
                for _ in range(50):
                    board.sendto(struct.pack("<I", sent) + b"\0" * (size - 4), proxy_side)
                    sent += 1
                time.sleep(0.005)
                if pauses and stop_at == most:
                    stop_at = sent + 500
            payloads = await receive_messages(ws, sent)
        assert [struct.unpack_from("<I", p)[0] for p in payloads] == list(range(len(payloads)))

    run_ws(v2_server, http, job_id, body, timeout=BURST_TIMEOUT)
    assert pauses  # the queue did push back
