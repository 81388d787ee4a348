"""The threaded v1 implementation of :class:`~spalloc.service.base.Service`: newline-delimited
JSON over TCP through one :class:`~spalloc.client.ProtocolClient` (what ``Job`` and the board
map use). The requests of one operation are pipelined (sent back to back, answered in one
round trip); what each operation means in v1 is :class:`~spalloc.service._v1ops.V1Operations`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from spalloc._deadline import remaining
from spalloc.client import ProtocolClient
from spalloc.exceptions import ProtocolError, ProtocolTimeoutError, SpallocServerException
from spalloc.service._v1ops import V1Operations

__all__ = ["V1Service"]

Request = tuple[str, tuple[Any, ...], dict[str, Any]]


class V1Service(V1Operations):
    """A spalloc v1 server at *hostname*:*port*, shared by any number of threads.

    Args:
        hostname: the server's name or address.
        port: its TCP port.
        timeout: quoted in timeout errors (deadlines do the bounding).
        check_version: check the server's version on every (re)connection.
    """

    def __init__(
        self, hostname: str, port: int, *, timeout: float | None = None, check_version: bool = True
    ) -> None:
        self.client = ProtocolClient(hostname, port, timeout=timeout)
        self._timeout = timeout
        self._check_version = check_version

    def __repr__(self) -> str:
        return f"<V1Service {self.address}>"

    @property
    def connected(self) -> bool:
        return self.client.connected

    @property
    def address(self) -> str:
        return f"{self.client.hostname}:{self.client.port}"

    def sibling(self) -> V1Service:
        """A new, unconnected service to the same server (its follows are its own)."""
        return V1Service(
            self.client.hostname,
            self.client.port,
            timeout=self._timeout,
            check_version=self._check_version,
        )

    def connect(self, deadline: float | None) -> None:
        self.client.connect(remaining(deadline))
        if self._check_version:
            self.client.check_version(timeout=remaining(deadline))

    def disconnect(self) -> None:
        self.client.disconnect()

    def close(self) -> None:
        self.client.close()

    def _send(self, requests: list[Request], deadline: float | None) -> Callable[[], list[Any]]:
        pending = self.client.submit_many_by(deadline, requests)

        def collect() -> list[Any]:
            outcomes: list[Any] = []
            for slot in pending:
                try:
                    outcomes.append(slot.result_by(deadline, self._timeout))
                except SpallocServerException as exc:
                    outcomes.append(exc)
            return outcomes

        return collect

    # -- changes -----------------------------------------------------------------------------

    def wait_for_change(self, timeout: float | None) -> bool:
        try:
            self.client.wait_for_notification(timeout)
        except ProtocolTimeoutError:
            return False
        while self.client.wait_for_notification(-1) is not None:
            pass  # a burst counts once
        return True

    def on_job_changed(self, fn: Callable[[Sequence[int]], None]) -> Callable[[], None]:
        return self._relay("jobs_changed", fn)

    def on_machine_changed(self, fn: Callable[[Sequence[str]], None]) -> Callable[[], None]:
        return self._relay("machines_changed", fn)

    def _relay(self, kind: str, fn: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``fn(items)`` for every *kind* notification (on the reader thread)."""

        def relay(payload: dict[str, Any]) -> None:
            changed = payload.get(kind)
            if isinstance(changed, list):
                fn(changed)

        return self.client.add_notification_listener(relay, immediate=True)

    def on_connection_lost(self, fn: Callable[[ProtocolError], None]) -> Callable[[], None]:
        return self.client.add_disconnect_listener(fn, immediate=True)
