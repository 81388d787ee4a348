"""The one-thread v1 implementation of :class:`~spalloc.service.base.Service`, for the admin
tools (``spalloc-ps``, ``-job``, ``-machine``, ``-where-is``).

Why a second v1 driver? Start-up time: these tools make a request or two and exit, and
``spalloc-ps`` is timed as a whole process. The threaded client (reader and dispatcher threads,
``socket``, ``logging``, ``typing``) costs more to import than the whole request, so this driver
keeps to the caller's thread over :mod:`spalloc.service._oneshot`. The meaning of each
operation is shared with the threaded driver (:class:`~spalloc.service._v1ops.V1Operations`),
and so is the wire handling (:class:`spalloc._protocol.ClientSession`).

Changes are delivered on the caller's thread: :meth:`V1LightService.wait_for_change` reads
the server and calls the ``on_job_changed`` and ``on_machine_changed`` listeners;
``on_connection_lost`` listeners are called when a request or a wait finds the connection
gone.
"""

from __future__ import annotations

from spalloc._deadline import remaining
from spalloc.exceptions import ProtocolError, ProtocolTimeoutError
from spalloc.service._v1ops import V1Operations

TYPE_CHECKING = False  # not typing's: that import costs start-up time (mypy sees True)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from spalloc.service._oneshot import Connection

__all__ = ["V1LightService"]


class V1LightService(V1Operations):
    """A spalloc v1 server at *hostname*:*port*, used from one thread.

    Args:
        hostname: the server's name or address.
        port: its TCP port.
        timeout: seconds for the connection (and quoted in timeout errors).
        check_version: check the server's version when connecting.
    """

    def __init__(
        self, hostname: str, port: int, *, timeout: float | None = None, check_version: bool = True
    ) -> None:
        self._host, self._port = hostname, port
        self._timeout = timeout
        self._check_version = check_version
        self._conn: Connection | None = None
        self._changed: list[Callable[[Sequence[int]], None]] = []
        self._machines_changed: list[Callable[[Sequence[str]], None]] = []
        self._lost: list[Callable[[ProtocolError], None]] = []

    def __repr__(self) -> str:
        return f"<V1LightService {self.address}>"

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn._sock is not None

    @property
    def address(self) -> str:
        return f"{self._host}:{self._port}"

    def sibling(self) -> V1LightService:
        """A new, unconnected service to the same server (its follows are its own)."""
        return V1LightService(
            self._host, self._port, timeout=self._timeout, check_version=self._check_version
        )

    def connect(self, deadline: float | None) -> None:
        from spalloc._protocol import check_server_version
        from spalloc.service._oneshot import Connection

        self.close()
        conn = Connection(self._host, self._port, remaining(deadline))
        self._conn = conn
        try:
            version = self._one(deadline, "version")
            if self._check_version:
                check_server_version(version)
        except BaseException:
            self.close()
            raise

    def disconnect(self) -> None:
        self.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _require(self) -> Connection:
        if self._conn is None or self._conn._sock is None:
            raise ProtocolError("not connected")
        return self._conn

    def _send(
        self, requests: list[tuple[str, tuple[Any, ...], dict[str, Any]]], deadline: float | None
    ) -> Callable[[], list[Any]]:
        try:
            outcomes = self._require().exchange(requests, deadline)
        except ProtocolError as exc:
            self._connection_failed(exc)
            raise
        return lambda: outcomes

    def _connection_failed(self, error: ProtocolError) -> None:
        if isinstance(error, ProtocolTimeoutError) and self.connected:
            return  # the connection is still up: only this request was late
        for fn in list(self._lost):
            fn(error)

    # -- changes -----------------------------------------------------------------------------

    def wait_for_change(self, timeout: float | None) -> bool:
        conn = self._require()
        try:
            first = conn.wait_for_notification(timeout)
        except ProtocolTimeoutError:
            return False
        except ProtocolError as exc:
            self._connection_failed(exc)
            raise
        burst = [first]
        while (more := conn.wait_for_notification(-1)) is not None:
            burst.append(more)  # a burst counts once
        for payload in burst:
            if payload is None:
                continue
            jobs, machines = payload.get("jobs_changed"), payload.get("machines_changed")
            if isinstance(jobs, list):
                for fn in list(self._changed):
                    fn(jobs)
            if isinstance(machines, list):
                for on_machines in list(self._machines_changed):
                    on_machines(machines)
        return True

    def on_job_changed(self, fn: Callable[[Sequence[int]], None]) -> Callable[[], None]:
        self._changed.append(fn)
        return lambda: self._changed.remove(fn) if fn in self._changed else None

    def on_machine_changed(self, fn: Callable[[Sequence[str]], None]) -> Callable[[], None]:
        self._machines_changed.append(fn)
        return lambda: self._machines_changed.remove(fn) if fn in self._machines_changed else None

    def on_connection_lost(self, fn: Callable[[ProtocolError], None]) -> Callable[[], None]:
        self._lost.append(fn)
        return lambda: self._lost.remove(fn) if fn in self._lost else None
