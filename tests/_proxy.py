"""A loopback TCP proxy for fault injection: connections through it can be frozen (no FIN,
no RST), hung up, or refused, while the server behind it carries on."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

__all__ = ["FreezingProxy"]


class FreezingProxy:
    """A TCP proxy to a server whose current connections can be frozen: from then on nothing
    is forwarded either way and nothing is closed, as when a NAT mapping silently times out.
    Connections made after a freeze work normally. They can also be hung up (closed, as a
    server that goes away closes them), and new ones refused (accepted, then closed at once)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.1)
        self.host, self.port = self.listener.getsockname()
        self._lock = threading.Lock()
        self._live: list[tuple[socket.socket, socket.socket, threading.Event]] = []
        self._frozen: list[tuple[socket.socket, socket.socket]] = []
        self._stop = threading.Event()
        self.accepted = 0
        self.refusing = False
        threading.Thread(target=self._accept, name="freezing-proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                down, _ = self.listener.accept()
            except OSError:
                continue
            if self.refusing:
                down.close()
                continue
            up = socket.create_connection(self.target, timeout=5.0)
            for sock in (up, down):
                sock.settimeout(0.05)
            frozen = threading.Event()
            with self._lock:
                self._live.append((down, up, frozen))
                self.accepted += 1
            for src, dst in ((down, up), (up, down)):
                threading.Thread(target=self._pump, args=(src, dst, frozen), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, frozen: threading.Event) -> None:
        deadline = time.monotonic() + 300  # bounded, whatever happens
        while not self._stop.is_set() and time.monotonic() < deadline:
            if frozen.is_set():
                time.sleep(0.05)  # hold the socket open and read nothing
                continue
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            if frozen.is_set():
                continue  # caught in flight by the freeze: dropped, as a dead path drops it
            try:
                dst.sendall(data)
            except OSError:
                break
        if not frozen.is_set():
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def freeze(self) -> None:
        """Freeze every connection open now."""
        with self._lock:
            live, self._live = self._live, []
        for down, up, frozen in live:
            frozen.set()
            self._frozen.append((down, up))

    def hang_up(self) -> None:
        """Close every connection open now, both ways (FIN to the client and the server)."""
        with self._lock:
            live, self._live = self._live, []
        for down, up, _ in live:
            for sock in (down, up):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self.freeze()
        for down, up in self._frozen:
            down.close()
            up.close()
        self.listener.close()
