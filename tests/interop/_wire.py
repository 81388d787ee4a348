"""A deliberately small raw-socket protocol helper, independent of the code under test.

It writes one JSON line per request with :mod:`json` and reads lines back itself, so a
differential run talks to the reference server and to the emulator in exactly the same bytes.
Every wait is bounded by the ``timeout`` given at construction.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

__all__ = ["Closed", "Wire"]


class Closed(ConnectionError):
    """The server closed the connection (or it broke) before answering."""


class Wire:
    """One connection; :meth:`call` returns ``("return", value)`` or ``("exception", text)``."""

    def __init__(self, address: tuple[str, int], *, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.sock = socket.create_connection(address, timeout=timeout)
        self._buffer = b""
        #: Notifications seen while waiting for replies, in arrival order.
        self.notifications: list[dict[str, Any]] = []

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_line(self, line: bytes) -> None:
        """Send raw bytes (the caller adds the newline)."""
        self.sock.sendall(line)

    def read_message(self) -> dict[str, Any]:
        """Return the next JSON line from the server.

        Raises:
            Closed: the connection ended first.
            TimeoutError: nothing complete arrived within the timeout.
        """
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no complete line from the server")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError as exc:
                raise Closed("connection reset") from exc
            except TimeoutError as exc:
                raise TimeoutError("no complete line from the server") from exc
            if not chunk:
                raise Closed("connection closed by the server")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message = json.loads(line)
        assert isinstance(message, dict), line
        return message

    def read_reply(self) -> tuple[str, Any]:
        """Skip (and keep) notifications until a ``return`` or ``exception`` arrives."""
        for _ in range(100_000):
            message = self.read_message()
            if "return" in message:
                return ("return", message["return"])
            if "exception" in message:
                return ("exception", message["exception"])
            self.notifications.append(message)
        raise AssertionError("too many notifications without a reply")

    def call(self, command: str, *args: Any, **kwargs: Any) -> tuple[str, Any]:
        """Send one request and return its reply as ``(kind, value)``."""
        request = {"command": command, "args": list(args), "kwargs": kwargs}
        self.send_line(json.dumps(request).encode() + b"\n")
        return self.read_reply()

    def call_many(self, *requests: tuple[str, list[Any], dict[str, Any]]) -> list[tuple[str, Any]]:
        """Send several ``(command, args, kwargs)`` requests in one write (pipelined), so the
        server handles them back to back; return their replies in order."""
        self.send_line(
            b"".join(
                json.dumps({"command": c, "args": a, "kwargs": k}).encode() + b"\n"
                for c, a, k in requests
            )
        )
        return [self.read_reply() for _ in requests]

    def ret(self, command: str, *args: Any, **kwargs: Any) -> Any:
        """Like :meth:`call`, but the reply must be a ``return``; give its value."""
        kind, value = self.call(command, *args, **kwargs)
        assert kind == "return", f"{command}{args}{kwargs} -> {kind}: {value!r}"
        return value

    def drain(self, *, quiet: float = 0.3, limit: int = 10_000) -> list[dict[str, Any]]:
        """Read until nothing arrives for *quiet* seconds; return and forget the notifications."""
        timeout, self.timeout = self.timeout, quiet
        try:
            for _ in range(limit):
                try:
                    self.notifications.append(self.read_message())
                except TimeoutError:
                    break
        finally:
            self.timeout = timeout
        seen, self.notifications = self.notifications, []
        return seen

    def outcome_of_line(self, line: bytes) -> tuple[str, Any]:
        """Send a raw line; return its reply, or ``("closed", None)`` if the server hangs up."""
        try:
            self.send_line(line)
            return self.read_reply()
        except (Closed, BrokenPipeError):
            return ("closed", None)
