"""The v2 transport's streams are closed only once no thread uses them: a socket closed under
a thread that is reading it frees its descriptor for the next socket opened, which that
thread's TLS layer then reads from (a new login failed with ``UNEXPECTED_MESSAGE``)."""

from __future__ import annotations

import threading
from typing import Any

import httpcore
import pytest

from spalloc.service._v2transport import _Backend, _Stream

WAIT = 5.0


class _Inner(httpcore.NetworkStream):
    """A stream whose read blocks until released, recording what was done to it."""

    def __init__(self) -> None:
        self.reading = threading.Event()
        self.release = threading.Event()
        self.closed = threading.Event()
        self.closed_while_reading = False
        self.shut_down = 0

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.reading.set()
        self.release.wait(WAIT)
        if self.closed.is_set():
            self.closed_while_reading = True
        return b""

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        pass

    def close(self) -> None:
        self.closed.set()

    def get_extra_info(self, info: str) -> Any:
        return self if info == "socket" else None

    def shutdown(self, how: int) -> None:  # what the stream calls on its "socket"
        self.shut_down += 1


def test_a_close_from_another_thread_waits_for_the_reader() -> None:
    inner = _Inner()
    stream = _Backend().track(inner)
    reader = threading.Thread(target=stream.read, args=(100,), daemon=True)
    reader.start()
    assert inner.reading.wait(WAIT)
    stream.close()  # another thread closes the connection (httpx's client.close())
    assert not inner.closed.is_set()
    inner.release.set()
    reader.join(WAIT)
    assert inner.closed.is_set() and not inner.closed_while_reading


def test_a_closed_stream_refuses_use_and_is_never_shut_down_again() -> None:
    inner = _Inner()
    stream = _Stream(inner, _Backend())
    stream.shutdown()
    assert inner.shut_down == 1
    stream.close()
    assert inner.closed.is_set()
    stream.shutdown()  # its descriptor may belong to another socket by now
    assert inner.shut_down == 1
    with pytest.raises(httpcore.ReadError):
        stream.read(10)
    with pytest.raises(httpcore.WriteError):
        stream.write(b"x")


def test_abort_shuts_down_streams_in_use_and_they_close_when_done() -> None:
    backend = _Backend()
    inner = _Inner()
    stream = backend.track(inner)
    reader = threading.Thread(target=stream.read, args=(100,), daemon=True)
    reader.start()
    assert inner.reading.wait(WAIT)
    backend.abort()
    stream.close()
    assert inner.shut_down == 1 and not inner.closed.is_set()
    inner.release.set()
    reader.join(WAIT)
    assert inner.closed.is_set()
