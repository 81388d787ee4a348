"""Reading a line protocol off a raw socket, for the scripted servers in tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from socket import socket


def lines_from(conn: socket, stop: threading.Event, *, bound: float = 120.0) -> Iterator[bytes]:
    """The lines *conn* sends (without ``\\n``), until it hangs up, *stop* is set or *bound*
    seconds have passed, whatever the client does. Polls *stop* every 0.2 s."""
    try:
        conn.settimeout(0.2)
    except OSError:  # closed (by the test) before the serving thread got going
        return
    deadline = time.monotonic() + bound
    buffer = b""
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            data = conn.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return
        if not data:
            return
        buffer += data
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            yield line
