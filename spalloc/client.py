"""``ProtocolClient``: one connection to a spalloc v1 server, shared by any number of threads.

Design (after python-websockets' ``sync`` client): one socket and one reader thread per
connection. Callers write their request under a lock and wait on their own slot in a FIFO;
the reader thread hands each reply to the oldest waiting slot, queues notifications for
:meth:`ProtocolClient.wait_for_notification` and passes them to listeners, which run on a
separate dispatcher thread so that they may call back into the client. A caller that times
out leaves its slot in the FIFO, so the late reply lands there (and is dropped) instead of
being given to the next caller.

Example::

    with ProtocolClient("spalloc.example.org") as c:
        print(c.version())
"""

from __future__ import annotations

import collections
import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

from spalloc._connection import Connection, PendingReply
from spalloc._deadline import deadline_of, remaining
from spalloc._dispatch import Dispatcher
from spalloc._protocol import (
    check_server_version,
    checked_port,
    encode_request,
    parse_server_version,
)
from spalloc._unset import UNSET as _UNSET
from spalloc.exceptions import ProtocolError, ProtocolTimeoutError, ServerConnectionError
from spalloc.models import (
    JobDescription,
    JobMachineInfo,
    JobStateInfo,
    MachineDescription,
    WhereIs,
    parse_jobs,
    parse_machines,
)

__all__ = [
    "DEFAULT_PORT",
    "PendingReply",
    "ProtocolClient",
    "check_server_version",
    "parse_server_version",
]

log = logging.getLogger(__name__)

DEFAULT_PORT = 22244

#: Notifications kept for :meth:`ProtocolClient.wait_for_notification`; older ones are dropped
#: when nobody reads them (listeners still see every one).
MAX_QUEUED_NOTIFICATIONS = 4096


# --- the public client ---------------------------------------------------------------------

#: Server commands with no method below, the Java server's extras (PROTOCOL.md §8).
_EXTRA_COMMANDS = frozenset({"report_problem", "login"})


class ProtocolClient:
    """A blocking client of the spalloc v1 protocol, safe to share between threads.

    Does not connect until :meth:`connect` is called (or the ``with`` block starts).
    Every server command is a method (``c.version()``; :meth:`call` sends any name).
    Replies that are objects come back as records from :mod:`spalloc.models`: the server's
    object itself, read-only (``state["reason"]``, ``dict(state)``, ``json.dumps(state)``
    and ``state == reply`` work as with the official client), with typed attributes
    (``state.state`` is a :class:`~spalloc.states.JobState`). A name that is not a command
    is an ``AttributeError``.

    Args:
        hostname: the server's name or address.
        port: its TCP port.
        timeout: default seconds to wait for the connection and for each reply
            (``None`` waits forever); ``call(..., timeout=...)`` overrides it.
    """

    def __init__(
        self, hostname: str, port: int | str = DEFAULT_PORT, timeout: float | None = None
    ) -> None:
        self._hostname = hostname
        self._port = checked_port(port)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._closed_error: ProtocolError | None = None
        self._notifications: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=MAX_QUEUED_NOTIFICATIONS
        )
        self._note_cond = threading.Condition(self._lock)
        self._listeners: list[tuple[Callable[[dict[str, Any]], None], bool]] = []
        self._disconnect_listeners: list[tuple[Callable[[ProtocolError], None], bool]] = []
        self._dispatcher = Dispatcher(f"spalloc-client-listeners-{hostname}:{self._port}")

    # -- connection ---------------------------------------------------------------------

    @property
    def hostname(self) -> str:
        """The server's hostname."""
        return self._hostname

    @property
    def port(self) -> int:
        """The server's port."""
        return self._port

    @property
    def timeout(self) -> float | None:
        """The default timeout of calls."""
        return self._timeout

    @property
    def connected(self) -> bool:
        """True while a connection is open and usable."""
        conn = self._conn
        return conn is not None and conn.alive

    def connect(self, timeout: float | None = _UNSET) -> None:
        """(Re)connect to the server, dropping any current connection.

        Raises:
            ServerConnectionError: the connection could not be made; also an ``OSError``, as
                the official client documents (the socket's error is its ``__cause__``).
        """
        if timeout is _UNSET:
            timeout = self._timeout
        self._drop_connection()
        host, port = self._hostname, self._port
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            reason = str(exc) or ("timed out" if isinstance(exc, TimeoutError) else repr(exc))
            raise ServerConnectionError(
                f"cannot connect to {host}:{port}: {reason}", host=host, port=port
            ) from exc
        try:
            sock.settimeout(None)  # the reader blocks; callers bound their own waits
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            sock.close()
            raise ServerConnectionError(
                f"cannot set up the connection to {host}:{port}: {exc}", host=host, port=port
            ) from exc
        conn = Connection(
            sock,
            f"spalloc-client-reader-{host}:{port}",
            on_notification=self._notification,
            on_failure=self._connection_failed,
            peer=(host, port),
        )
        with self._lock:
            self._conn = conn
            self._closed_error = None
            self._note_cond.notify_all()
        # The reader thread starts with the first request (or wait for a notification).

    def close(self) -> None:
        """Disconnect from the server (idempotent); waiting callers get ``ProtocolError``.

        Also ends the listener thread once it has delivered what it holds.
        """
        self._drop_connection()
        self._dispatcher.stop()

    def disconnect(self) -> None:
        """Drop the connection but keep listeners, e.g. to abandon a connection that hangs.

        Waiting callers get ``ProtocolError``; :meth:`connect` makes a new connection.
        """
        self._drop_connection()

    def _drop_connection(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> ProtocolClient:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        return f"<ProtocolClient {self._hostname}:{self._port} {state}>"

    # -- calls --------------------------------------------------------------------------

    def submit(
        self, name: str, *args: Any, timeout: float | None = _UNSET, **kwargs: Any
    ) -> PendingReply:
        """Send a command without waiting for its reply; ``.result(timeout)`` collects it.

        Several submitted commands travel back to back, so their replies cost one round trip.
        *timeout* bounds the send (defaults to the client's ``timeout``).

        Raises:
            ProtocolTimeoutError: the server did not take the request in time.
            ProtocolError: not connected, or the send failed.
        """
        if timeout is _UNSET:
            timeout = self._timeout
        return self.submit_by(deadline_of(timeout), name, *args, **kwargs)

    def submit_by(
        self, deadline: float | None, name: str, *args: Any, **kwargs: Any
    ) -> PendingReply:
        """:meth:`submit` with a ``time.monotonic()`` deadline shared with other steps."""
        line = encode_request(name, args, kwargs)
        conn = self._conn
        if conn is None:
            raise ProtocolError("not connected")
        return conn.submit(name, line, deadline)

    def submit_many_by(
        self,
        deadline: float | None,
        requests: Sequence[tuple[str, tuple[Any, ...], dict[str, Any]]],
    ) -> list[PendingReply]:
        """Send the ``(command, args, kwargs)`` *requests* in one write, by *deadline*.

        Their replies come back in one round trip; one :class:`PendingReply` per request.
        """
        lines = [(name, encode_request(name, args, kwargs)) for name, args, kwargs in requests]
        conn = self._conn
        if conn is None:
            raise ProtocolError("not connected")
        return conn.submit_many(lines, deadline)

    def call(self, name: str, *args: Any, timeout: float | None = _UNSET, **kwargs: Any) -> Any:
        """Send a command and return the server's raw reply value.

        Args:
            name: the command.
            timeout: seconds to wait for the reply; ``None`` waits forever. Defaults to the
                client's ``timeout``.

        Raises:
            ProtocolTimeoutError: no reply in time.
            ProtocolError: not connected, or the connection failed or carried garbage.
            SpallocServerException: the server answered with an exception.
        """
        if timeout is _UNSET:
            timeout = self._timeout
        # One deadline for the whole call: sending the request and waiting for its reply.
        deadline = deadline_of(timeout)
        pending = self.submit_by(deadline, name, *args, **kwargs)
        return pending.result_by(deadline, timeout)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        # Only commands without a method of their own; any other name is no attribute, so
        # that hasattr() and typos behave as on any object (and as the official client).
        if name not in _EXTRA_COMMANDS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

        def command(*args: Any, timeout: float | None = _UNSET, **kwargs: Any) -> Any:
            return self.call(name, *args, timeout=timeout, **kwargs)

        command.__name__ = name
        return command

    # -- notifications ------------------------------------------------------------------

    def wait_for_notification(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Return the next notification, e.g. ``{"jobs_changed": [1, 3]}``.

        Args:
            timeout: seconds to wait; ``None`` waits forever. A negative timeout only
                returns an already-received notification, or ``None`` if there is none.

        Raises:
            ProtocolTimeoutError: nothing arrived in time.
            ProtocolError: not connected, or the connection failed while waiting.
        """
        deadline = deadline_of(timeout)
        conn = self._conn
        if conn is not None and (timeout is None or timeout >= 0):
            conn.start()
        with self._lock:
            while True:
                if self._notifications:
                    return self._notifications.popleft()
                if timeout is not None and timeout < 0:
                    return None
                conn = self._conn
                if conn is None or not conn.alive:
                    error = self._closed_error or (conn.error if conn else None)
                    raise ProtocolError(str(error) if error else "not connected")
                left = remaining(deadline)
                if left is not None and left <= 0:
                    raise ProtocolTimeoutError(
                        f"no notification within {timeout} s", timeout=timeout
                    )
                self._note_cond.wait(left)

    def add_notification_listener(
        self, fn: Callable[[dict[str, Any]], None], *, immediate: bool = False
    ) -> Callable[[], None]:
        """Call ``fn(notification)`` for every notification; returns a function removing it.

        By default ``fn`` runs on a dispatcher thread and may call back into this client.
        With ``immediate=True`` it runs on the reader thread as the notification arrives:
        it must then return at once and must not call the client (use it to wake a thread).
        """
        entry = (fn, immediate)
        with self._lock:
            self._listeners.append(entry)

        def remove() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(entry)

        return remove

    def add_disconnect_listener(
        self, fn: Callable[[ProtocolError], None], *, immediate: bool = False
    ) -> Callable[[], None]:
        """Call ``fn(error)`` whenever the connection is lost; returns a function removing it.

        Not called for :meth:`close`, :meth:`disconnect` or :meth:`connect` replacing a
        connection. Runs on the dispatcher thread, or with ``immediate=True`` on whichever
        thread noticed the loss (same rules as for immediate notification listeners).
        """
        entry = (fn, immediate)
        with self._lock:
            self._disconnect_listeners.append(entry)

        def remove() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._disconnect_listeners.remove(entry)

        return remove

    def _notification(self, payload: dict[str, Any]) -> None:
        # Runs on the reader thread: queue, and hand to listeners; only "immediate" ones
        # (which promise to be quick and not to call us) run here.
        with self._lock:
            self._notifications.append(payload)
            self._note_cond.notify_all()
            listeners = list(self._listeners)
        self._deliver(listeners, payload)

    def _connection_failed(self, conn: Connection, error: ProtocolError) -> None:
        with self._lock:
            current = conn is self._conn
            if current:
                self._closed_error = error
            self._note_cond.notify_all()
            listeners = list(self._disconnect_listeners) if current else []
        self._deliver(listeners, error)

    def _deliver(self, listeners: list[tuple[Callable[[Any], None], bool]], item: Any) -> None:
        for fn, immediate in listeners:
            if not immediate:
                self._dispatcher.submit(fn, item)
                continue
            try:
                fn(item)
            except Exception:  # a listener's bug must not kill the reader
                log.exception("spalloc listener %r failed", fn)

    # -- typed commands -----------------------------------------------------------------

    def version(self, timeout: float | None = _UNSET) -> str:
        """The server's version string."""
        return str(self.call("version", timeout=timeout))

    def check_version(self, timeout: float | None = _UNSET) -> str:
        """Ask the server's version and check it (see :func:`check_server_version`).

        Raises:
            IncompatibleServerError: the server is one we cannot work with.
        """
        text = self.version(timeout=timeout)
        check_server_version(text)
        return text

    def create_job(self, *args: Any, timeout: float | None = _UNSET, **kwargs: Any) -> int:
        """Create a job; returns its ID."""
        job_id = self.call("create_job", *args, timeout=timeout, **kwargs)
        if isinstance(job_id, bool) or not isinstance(job_id, int):
            raise ProtocolError(f"create_job returned {job_id!r}, not a job ID")
        return job_id

    def job_keepalive(self, job_id: int, timeout: float | None = _UNSET) -> None:
        """Reset the job's keepalive timer."""
        self.call("job_keepalive", job_id, timeout=timeout)

    def get_job_state(self, job_id: int, timeout: float | None = _UNSET) -> JobStateInfo:
        """The job's state, power, keepalive, reason, start time and keepalive host."""
        return JobStateInfo.from_wire(self.call("get_job_state", job_id, timeout=timeout))

    def get_job_machine_info(self, job_id: int, timeout: float | None = _UNSET) -> JobMachineInfo:
        """The job's size, Ethernet connections, machine and boards (all ``None`` if none)."""
        return JobMachineInfo.from_wire(self.call("get_job_machine_info", job_id, timeout=timeout))

    def power_on_job_boards(self, job_id: int, timeout: float | None = _UNSET) -> None:
        """Power on (or reset) the job's boards."""
        self.call("power_on_job_boards", job_id, timeout=timeout)

    def power_off_job_boards(self, job_id: int, timeout: float | None = _UNSET) -> None:
        """Power off the job's boards."""
        self.call("power_off_job_boards", job_id, timeout=timeout)

    def destroy_job(
        self, job_id: int, reason: str | None = None, timeout: float | None = _UNSET
    ) -> None:
        """Destroy the job; the reason goes as a keyword, which both Python and Java read."""
        self.call("destroy_job", job_id, reason=reason, timeout=timeout)

    def notify_job(self, job_id: int | None = None, timeout: float | None = _UNSET) -> None:
        """Subscribe this connection to changes of one job (or all, if ``None``)."""
        args = () if job_id is None else (job_id,)
        self.call("notify_job", *args, timeout=timeout)

    def no_notify_job(self, job_id: int | None = None, timeout: float | None = _UNSET) -> None:
        """Unsubscribe from one job (or all)."""
        args = () if job_id is None else (job_id,)
        self.call("no_notify_job", *args, timeout=timeout)

    def notify_machine(
        self, machine_name: str | None = None, timeout: float | None = _UNSET
    ) -> None:
        """Subscribe this connection to changes of one machine (or all)."""
        args = () if machine_name is None else (machine_name,)
        self.call("notify_machine", *args, timeout=timeout)

    def no_notify_machine(
        self, machine_name: str | None = None, timeout: float | None = _UNSET
    ) -> None:
        """Unsubscribe from one machine (or all)."""
        args = () if machine_name is None else (machine_name,)
        self.call("no_notify_machine", *args, timeout=timeout)

    def list_jobs(self, timeout: float | None = _UNSET) -> list[JobDescription]:
        """Every live job, oldest first."""
        return parse_jobs(self.call("list_jobs", timeout=timeout))

    def list_machines(self, timeout: float | None = _UNSET) -> list[MachineDescription]:
        """Every machine, in the server's order."""
        return parse_machines(self.call("list_machines", timeout=timeout))

    def get_board_position(
        self, machine_name: str, x: int, y: int, z: int, timeout: float | None = _UNSET
    ) -> list[int] | None:
        """Logical (x, y, z) → physical (cabinet, frame, board), or ``None``."""
        # Named arguments: the Java server reads these by name only.
        reply = self.call(
            "get_board_position", machine_name=machine_name, x=x, y=y, z=z, timeout=timeout
        )
        return _triple(reply, "get_board_position")

    def get_board_at_position(
        self, machine_name: str, x: int, y: int, z: int, timeout: float | None = _UNSET
    ) -> list[int] | None:
        """Physical (cabinet, frame, board), passed as x, y, z → logical (x, y, z), or ``None``."""
        reply = self.call(
            "get_board_at_position", machine_name=machine_name, x=x, y=y, z=z, timeout=timeout
        )
        return _triple(reply, "get_board_at_position")

    def where_is(self, timeout: float | None = _UNSET, **kwargs: Any) -> WhereIs | None:
        """Locate a board or chip: pass exactly one of the key sets ``machine, x, y, z``;
        ``machine, cabinet, frame, board``; ``machine, chip_x, chip_y``; ``job_id, chip_x,
        chip_y``. Returns ``None`` if nothing is there."""
        return WhereIs.from_wire(self.call("where_is", timeout=timeout, **kwargs))


def _triple(reply: Any, command: str) -> list[int] | None:
    # The server's list, as the official client returned it (so == [c, f, b] holds).
    if reply is None:
        return None
    if (
        not isinstance(reply, list)
        or len(reply) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in reply)
    ):
        raise ProtocolError(f"{command} returned {reply!r}")
    return reply
