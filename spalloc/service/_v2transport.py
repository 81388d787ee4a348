"""An httpx transport whose open sockets can be shut down from another thread.

A v2 long-poll blocks its thread in a socket read for up to the server's wait (30 s). Closing
the client closes the socket, but on Linux closing does not wake a thread blocked reading it;
``shutdown(SHUT_RDWR)`` does. So :class:`Transport` is httpx's own transport over httpcore's
own sync backend, wrapped to remember each stream it opens, and :meth:`Transport.abort` shuts
them all down: ``V2Service.close()`` then ends its poll threads at once.

A stream is never closed while another thread reads, writes or shakes hands on it: closing
the client closes connections other threads are still using, and a socket closed under a
thread frees its file descriptor for the next socket opened, often at once the next session's,
while the first thread's TLS layer still reads or writes that number (a new login then failed
with ``UNEXPECTED_MESSAGE`` or ``bad record mac`` now and then). Such a close is put off until
the last user of the stream is done, which, after :meth:`Transport.abort`, is at once.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

__all__ = ["Transport"]


class _Stream(httpcore.NetworkStream):
    """One of httpcore's streams, known to the backend that opened it, closed only once no
    thread is using it."""

    def __init__(self, inner: httpcore.NetworkStream, owner: _Backend) -> None:
        self._inner = inner
        self._owner = owner
        self._guard = threading.Lock()
        self._busy = 0  # threads inside read, write or start_tls
        self._closing = False  # close() was called
        self._closed = False  # the inner stream was closed

    @contextlib.contextmanager
    def _using(self, error: type[Exception]) -> Iterator[None]:
        with self._guard:
            if self._closing:
                raise error("the connection was closed")
            self._busy += 1
        try:
            yield
        finally:
            with self._guard:
                self._busy -= 1
                close_now = self._closing and self._busy == 0 and not self._closed
                if close_now:
                    self._closed = True
            if close_now:
                self._inner.close()

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with self._using(httpcore.ReadError):
            return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        with self._using(httpcore.WriteError):
            self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._owner.forget(self)
        with self._guard:
            self._closing = True
            close_now = self._busy == 0 and not self._closed
            if close_now:
                self._closed = True
        if close_now:
            self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        with self._using(httpcore.ConnectError):
            inner = self._inner.start_tls(ssl_context, server_hostname, timeout)
        self._owner.forget(self)
        return self._owner.track(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    def shutdown(self) -> None:
        """Make reads and writes in progress fail now (the socket stays open until closed)."""
        with self._guard:  # never on a closed socket: its number may be another's by now
            if self._closed:
                return
            sock = self._inner.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError, ValueError):
                    sock.shutdown(socket.SHUT_RDWR)


class _Backend(httpcore.NetworkBackend):
    """httpcore's sync backend, remembering the streams it has open."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()
        self._lock = threading.Lock()
        self._streams: weakref.WeakSet[_Stream] = weakref.WeakSet()
        self._aborted = False

    def track(self, inner: httpcore.NetworkStream) -> _Stream:
        stream = _Stream(inner, self)
        with self._lock:
            aborted = self._aborted
            if not aborted:
                self._streams.add(stream)
        if aborted:  # opened while the transport was being aborted
            stream.shutdown()
        return stream

    def forget(self, stream: _Stream) -> None:
        with self._lock:
            self._streams.discard(stream)

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            streams = list(self._streams)
        for stream in streams:
            stream.shutdown()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return self.track(
            self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return self.track(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class Transport(httpx.HTTPTransport):
    """httpx's transport (no proxy), over a backend :meth:`abort` can shut down.

    Args:
        ssl_context: the TLS settings (verification always on).
    """

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        self._backend = _Backend()
        # httpx takes no network backend, so its pool is made again with ours (httpx's
        # defaults otherwise); handle_request and close use it unchanged.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=self._backend,
        )

    def abort(self) -> None:
        """Shut down every open socket: requests in flight, long-polls included, fail now."""
        self._backend.abort()
