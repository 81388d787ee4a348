"""``ProtocolClient``: one connection to a spalloc v1 server, shared by any number of threads.

Design (after python-websockets' ``sync`` client): one socket and one reader thread per
connection. Callers write their request under a lock and wait on their own slot in a FIFO;
the reader thread hands each reply to the oldest waiting slot, queues notifications for
:meth:`ProtocolClient.wait_for_notification` and passes them to listeners, which run on a
separate dispatcher thread so that they may call back into the client. A caller that times
out leaves its slot behind marked abandoned, so the late reply is dropped instead of being
given to the next caller.

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
import time
from collections.abc import Callable
from typing import Any

from spalloc._protocol import (
    BadMessage,
    LineSplitter,
    Notification,
    Reply,
    ServerError,
    check_server_version,
    classify,
    decode_line,
    encode_request,
    parse_server_version,
)
from spalloc.exceptions import (
    ProtocolError,
    ProtocolTimeoutError,
    SpallocServerException,
)
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

class _Default:
    """Marks an argument left out, so that ``None`` can keep meaning "wait forever"."""

    def __repr__(self) -> str:
        return "<default>"


#: "Not given": use the client's (or the config's) value.
_UNSET: Any = _Default()

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)

# --- versions ---------------------------------------------------------------------------

# --- a small owned dispatcher thread ------------------------------------------------------

class _Dispatcher:
    """Runs callbacks in order on one named daemon thread, started on first use."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._items: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            collections.deque())
        self._ready = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._stopping = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            self._items.append((fn, args))
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._ready.notify()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Run what is queued, then end the thread (not joined from itself)."""
        with self._lock:
            self._stopping = True
            self._ready.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._items and not self._stopping:
                    self._ready.wait()
                if not self._items:
                    self._thread = None
                    return
                fn, args = self._items.popleft()
            try:
                fn(*args)
            except Exception:  # a listener's bug must not kill the others
                log.exception("spalloc listener %r failed", fn)


# --- one reply slot ------------------------------------------------------------------------

class PendingReply:
    """The reply a caller waits for (returned by :meth:`ProtocolClient.submit`)."""

    __slots__ = ("_done", "_error", "_finished", "_value", "abandoned", "command")

    def __init__(self, command: str) -> None:
        self.command = command
        # A bare lock, held until the reply lands: cheaper to wait on than an Event.
        self._done = threading.Lock()
        self._done.acquire()
        self._finished = False
        self._value: Any = None
        self._error: BaseException | None = None
        self.abandoned = False

    def _resolve(self, value: Any = None, error: BaseException | None = None) -> None:
        if self._finished:
            return
        self._value = value
        self._error = error
        self._finished = True
        self._done.release()

    def done(self) -> bool:
        """True once the reply (or an error) has arrived."""
        return self._finished

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the reply and return its value.

        Raises:
            ProtocolTimeoutError: no reply in time; the reply will be discarded when it comes.
            ProtocolError: the connection failed first.
            SpallocServerException: the server answered with an exception.
        """
        if not self._finished:
            if self._done.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
                self._done.release()  # let any other waiter (or a second result()) through
            else:
                self.abandoned = True
                # The reply may have landed between the wait and the flag.
                if not self._finished:
                    raise ProtocolTimeoutError(
                        f"no reply to {self.command} within {timeout} s",
                        command=self.command, timeout=timeout)
        if self._error is not None:
            raise self._error
        return self._value


# --- one connection ------------------------------------------------------------------------

class _Connection:
    """A socket, its reader thread and the FIFO of callers waiting on it."""

    def __init__(self, sock: socket.socket, client: ProtocolClient, name: str) -> None:
        self.sock = sock
        self._client = client
        self._write_lock = threading.Lock()
        self._pending: collections.deque[PendingReply] = collections.deque()
        self._state_lock = threading.Lock()
        self.error: ProtocolError | None = None
        self._reader = threading.Thread(target=self._read_loop, name=name, daemon=True)
        self._reader_started = False

    def start(self) -> None:
        """Start the reader thread (idempotent)."""
        with self._state_lock:
            if self._reader_started:
                return
            self._reader_started = True
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self.error is None

    def submit(self, command: str, line: bytes) -> PendingReply:
        pending = PendingReply(command)
        with self._write_lock:
            # Queue before sending, so the reader can never see a reply with no slot.
            with self._state_lock:
                if self.error is not None:
                    raise ProtocolError(str(self.error))
                self._pending.append(pending)
            try:
                self.sock.sendall(line)
            except OSError as exc:
                self.fail(ProtocolError(f"connection lost while sending {command}: {exc}"))
                raise ProtocolError(f"could not send {command}: {exc}") from exc
        if not self._reader_started:
            # Started after the first send, so that its start-up overlaps the server's work.
            self.start()
        return pending

    def fail(self, error: ProtocolError) -> None:
        """Mark the connection dead, wake every waiting caller with *error*, close the socket."""
        with self._state_lock:
            if self.error is not None:
                return
            self.error = error
            pending = list(self._pending)
            self._pending.clear()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        # Listeners first, so that a caller woken by the error already sees the loss noted.
        self._client._connection_failed(self, error)
        for slot in pending:
            slot._resolve(error=ProtocolError(str(error)))

    def close(self) -> None:
        self.fail(ProtocolError("connection closed by the client"))
        if self._reader is not threading.current_thread() and self._reader.is_alive():
            self._reader.join(5.0)

    def _read_loop(self) -> None:
        splitter = LineSplitter()
        try:
            while self.error is None:
                try:
                    data = self.sock.recv(65536)
                    if _QUICKACK is not None:
                        # Servers that write each reply separately without TCP_NODELAY (the
                        # reference) hold the 2nd reply to pipelined requests until we ACK
                        # the 1st; Linux delays that ACK ~40 ms unless asked, after each recv.
                        self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                except OSError as exc:
                    raise ProtocolError(f"connection lost: {exc}") from exc
                if not data:
                    raise ProtocolError("connection closed by the server")
                for line in splitter.feed(data):
                    if line.strip():  # Java ends lines in CRLF; tolerate blank lines
                        self._dispatch(classify(decode_line(line)))
        except BadMessage as exc:
            self.fail(ProtocolError(f"malformed message from server: {exc}"))
        except ProtocolError as exc:
            self.fail(exc)
        except Exception as exc:  # never leave callers waiting on a dead reader
            self.fail(ProtocolError(f"reader failed: {exc!r}"))

    def _dispatch(self, message: Reply | ServerError | Notification) -> None:
        if isinstance(message, Notification):
            self._client._notification(message.payload)
            return
        with self._state_lock:
            slot = self._pending.popleft() if self._pending else None
        if slot is None:
            raise ProtocolError(f"server sent a reply nobody asked for: {message!r}")
        if isinstance(message, ServerError):
            slot._resolve(error=SpallocServerException(message.text, command=slot.command))
        else:
            slot._resolve(message.value)


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

    def __init__(self, hostname: str, port: int | str = DEFAULT_PORT,
                 timeout: float | None = None) -> None:
        self._hostname = hostname
        self._port = int(port)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._conn: _Connection | None = None
        self._closed_error: ProtocolError | None = None
        self._notifications: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=MAX_QUEUED_NOTIFICATIONS)
        self._note_cond = threading.Condition(self._lock)
        self._listeners: list[tuple[Callable[[dict[str, Any]], None], bool]] = []
        self._disconnect_listeners: list[tuple[Callable[[ProtocolError], None], bool]] = []
        self._dispatcher = _Dispatcher(f"spalloc-client-listeners-{hostname}:{self._port}")

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
            OSError: the connection could not be made (as the official client documents).
        """
        if timeout is _UNSET:
            timeout = self._timeout
        self._drop_connection()
        sock = socket.create_connection((self._hostname, self._port), timeout=timeout)
        try:
            sock.settimeout(None)  # the reader blocks; callers bound their own waits
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            sock.close()
            raise
        conn = _Connection(sock, self, f"spalloc-client-reader-{self._hostname}:{self._port}")
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

    def submit(self, name: str, *args: Any, **kwargs: Any) -> PendingReply:
        """Send a command without waiting; ``.result(timeout)`` collects the reply.

        Several submitted commands travel back to back, so their replies cost one round trip.

        Raises:
            ProtocolError: not connected, or the send failed.
        """
        line = encode_request(name, args, kwargs)
        conn = self._conn
        if conn is None:
            raise ProtocolError("not connected")
        return conn.submit(name, line)

    def call(self, name: str, *args: Any, timeout: float | None = _UNSET,
             **kwargs: Any) -> Any:
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
        return self.submit(name, *args, **kwargs).result(timeout)

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
        deadline = None if timeout is None else time.monotonic() + timeout
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
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise ProtocolTimeoutError(
                        f"no notification within {timeout} s", timeout=timeout)
                self._note_cond.wait(remaining)

    def add_notification_listener(self, fn: Callable[[dict[str, Any]], None], *,
                                  immediate: bool = False) -> Callable[[], None]:
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

    def add_disconnect_listener(self, fn: Callable[[ProtocolError], None], *,
                                immediate: bool = False) -> Callable[[], None]:
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

    def _connection_failed(self, conn: _Connection, error: ProtocolError) -> None:
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

    def get_job_machine_info(self, job_id: int,
                             timeout: float | None = _UNSET) -> JobMachineInfo:
        """The job's size, Ethernet connections, machine and boards (all ``None`` if none)."""
        return JobMachineInfo.from_wire(
            self.call("get_job_machine_info", job_id, timeout=timeout))

    def power_on_job_boards(self, job_id: int, timeout: float | None = _UNSET) -> None:
        """Power on (or reset) the job's boards."""
        self.call("power_on_job_boards", job_id, timeout=timeout)

    def power_off_job_boards(self, job_id: int, timeout: float | None = _UNSET) -> None:
        """Power off the job's boards."""
        self.call("power_off_job_boards", job_id, timeout=timeout)

    def destroy_job(self, job_id: int, reason: str | None = None,
                    timeout: float | None = _UNSET) -> None:
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

    def notify_machine(self, machine_name: str | None = None,
                       timeout: float | None = _UNSET) -> None:
        """Subscribe this connection to changes of one machine (or all)."""
        args = () if machine_name is None else (machine_name,)
        self.call("notify_machine", *args, timeout=timeout)

    def no_notify_machine(self, machine_name: str | None = None,
                          timeout: float | None = _UNSET) -> None:
        """Unsubscribe from one machine (or all)."""
        args = () if machine_name is None else (machine_name,)
        self.call("no_notify_machine", *args, timeout=timeout)

    def list_jobs(self, timeout: float | None = _UNSET) -> list[JobDescription]:
        """Every live job, oldest first."""
        return parse_jobs(self.call("list_jobs", timeout=timeout))

    def list_machines(self, timeout: float | None = _UNSET) -> list[MachineDescription]:
        """Every machine, in the server's order."""
        return parse_machines(self.call("list_machines", timeout=timeout))

    def get_board_position(self, machine_name: str, x: int, y: int, z: int,
                           timeout: float | None = _UNSET) -> list[int] | None:
        """Logical (x, y, z) → physical (cabinet, frame, board), or ``None``."""
        # Named arguments: the Java server reads these by name only.
        reply = self.call("get_board_position", machine_name=machine_name, x=x, y=y, z=z,
                          timeout=timeout)
        return _triple(reply, "get_board_position")

    def get_board_at_position(self, machine_name: str, x: int, y: int, z: int,
                              timeout: float | None = _UNSET) -> list[int] | None:
        """Physical (cabinet, frame, board), passed as x, y, z → logical (x, y, z), or ``None``."""
        reply = self.call("get_board_at_position", machine_name=machine_name, x=x, y=y, z=z,
                          timeout=timeout)
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
    if (not isinstance(reply, list) or len(reply) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in reply)):
        raise ProtocolError(f"{command} returned {reply!r}")
    return reply
