"""``Job``: request SpiNNaker boards, keep them alive, follow their state, give them back.

A Job owns one :class:`~spalloc.client.ProtocolClient` connection. It subscribes to its
job's ``jobs_changed`` notifications and keeps a cached :class:`~spalloc.models.JobSnapshot`
current from them, so waits wake on server events rather than polling. A background thread
(:mod:`spalloc._keepalive`) sends ``job_keepalive`` every keepalive/2 seconds and, when the
connection drops or the server restarts, reconnects every ``reconnect_delay`` seconds and
re-subscribes; waits carry on meanwhile. ``destroy()`` never raises for an unreachable server.

::

    from spalloc import Job
    with Job(3) as j:
        my_boot(j.hostname, j.width, j.height)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from spalloc._keepalive import KeepaliveThread
from spalloc.client import _UNSET, PendingReply, ProtocolClient, _Dispatcher
from spalloc.config import SpallocConfig, load_config, search_path
from spalloc.exceptions import (
    ConfigError,
    JobDestroyedError,
    ProtocolError,
    ProtocolTimeoutError,
    SpallocError,
    SpallocServerException,
    StateChangeTimeoutError,
)
from spalloc.models import JobMachineInfo, JobSnapshot, JobStateInfo
from spalloc.states import JobState

__all__ = ["DESTROY_TIMEOUT", "Job"]

log = logging.getLogger(__name__)

#: Longest ``destroy()`` waits for the server when the Job's ``timeout`` is ``None``.
DESTROY_TIMEOUT = 10.0
# Bound on background calls (keepalive, refresh) when neither timeout nor keepalive bounds them.
_BACKGROUND_TIMEOUT = 30.0


def _bounded(timeout: float | None, cap: float | None) -> float | None:
    if cap is None:
        return timeout
    return cap if timeout is None else min(timeout, cap)


def _no_hostname_message(config: SpallocConfig, config_filenames: Any) -> str:
    if config_filenames is None:
        try:
            where = search_path()[1]
        except Exception:  # platformdirs trouble must not hide the real message
            where = "~/.config/spalloc"
        place = f"in a config file such as {where} (see: python -m spalloc.config)"
    else:
        place = "in one of the config files given"
    return ("No spalloc server hostname is configured. Pass hostname=..., set the "
            f"SPALLOC_HOSTNAME environment variable, or put 'hostname = <server>' under "
            f"[spalloc] {place}. Use hostname 'local' to run against the built-in emulator.")


class Job:
    """A request for SpiNNaker boards, kept alive until destroyed.

    Positional arguments choose what to allocate: ``Job()`` or ``Job(1)`` one board,
    ``Job(n)`` at least *n* boards, ``Job(w, h)`` a *w* by *h* rectangle of triads,
    ``Job(x, y, z)`` one specific board. ``Job(resume_job_id=N)`` takes over job *N*.
    Every keyword not given comes from the config (:mod:`spalloc.config`); the seed's
    keywords keep their documented meaning. ``hostname="local"`` uses the built-in
    emulator; ``ignore_version=True`` skips the server version check.

    Beyond the seed: :attr:`snapshot` (everything known, as one frozen value),
    :meth:`add_state_listener`, :meth:`refresh` and :attr:`client`.

    Raises:
        TypeError: an unknown keyword or more than three positional arguments.
        ValueError: an invalid combination (e.g. both ``machine`` and ``tags``), no owner;
            :class:`~spalloc.exceptions.ConfigError` (a ``ValueError``) for no hostname.
        OSError: the server cannot be reached.
        IncompatibleServerError: the server's version is not supported.
        JobDestroyedError: the job to resume does not exist any more.
        SpallocServerException: the server refused the request.
    """

    def __init__(self, *args: int,
                 hostname: str | None = _UNSET,
                 port: int | None = _UNSET,
                 reconnect_delay: float | None = _UNSET,
                 timeout: float | None = _UNSET,
                 config_filenames: Iterable[str] | None = None,
                 resume_job_id: int | None = None,
                 owner: str | None = _UNSET,
                 keepalive: float | None = _UNSET,
                 machine: str | None = _UNSET,
                 tags: Iterable[str] | None = _UNSET,
                 min_ratio: float = _UNSET,
                 max_dead_boards: int | None = _UNSET,
                 max_dead_links: int | None = _UNSET,
                 require_torus: bool = _UNSET,
                 ignore_version: bool = _UNSET) -> None:
        # Attributes read by close()/destroy()/__repr__ even if construction fails.
        self._id: int | None = None
        self._client: ProtocolClient | None = None
        self._keeper: KeepaliveThread | None = None
        self._finished: str | None = None
        self._keepalive: float | None = None
        self._cond = threading.Condition()
        self._refresh_lock = threading.Lock()
        self._lifecycle_lock = threading.Lock()
        self._state_listeners: list[Callable[[Job], None]] = []
        self._removers: list[Callable[[], None]] = []
        self._snapshot = JobSnapshot(job_id=None)
        self._events = _Dispatcher("spalloc-job-listeners")

        if len(args) > 3:
            raise TypeError(f"Job() takes at most 3 positional arguments ({len(args)} given)")
        for arg in args:
            if isinstance(arg, bool) or not isinstance(arg, int):
                raise TypeError(f"Job() positional arguments must be ints, not {arg!r}")
        if resume_job_id is not None and (
                isinstance(resume_job_id, bool) or not isinstance(resume_job_id, int)):
            raise TypeError(f"resume_job_id must be an int, not {resume_job_id!r}")

        config = load_config(None if config_filenames is None else list(config_filenames))

        def pick(name: str, value: Any) -> Any:
            return getattr(config, name) if value is _UNSET else value

        hostname = pick("hostname", hostname)
        port = pick("port", port)
        reconnect_delay = pick("reconnect_delay", reconnect_delay)
        timeout = pick("timeout", timeout)
        ignore_version = bool(pick("ignore_version", ignore_version))
        if not hostname:
            raise ConfigError(_no_hostname_message(config, config_filenames), key="hostname")
        if port is None:
            raise ValueError("A port must be specified.")
        if reconnect_delay is None or reconnect_delay < 0:
            raise ValueError("reconnect_delay must be a number of seconds >= 0")
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be None or a number of seconds >= 0")

        from spalloc._local import default_owner, is_local, local_emulator
        owner = default_owner(hostname, pick("owner", owner))
        if is_local(hostname):
            emulator = local_emulator(stacklevel=2)
            hostname, port = emulator.host, emulator.port

        self._hostname_server = str(hostname)
        self._timeout: float | None = timeout
        self._reconnect_delay = float(reconnect_delay)
        self._ignore_version = ignore_version

        create_kwargs: dict[str, Any] = {}
        if resume_job_id is None:
            create_kwargs = self._create_kwargs(config, owner, keepalive, machine, tags,
                                                min_ratio, max_dead_boards, max_dead_links,
                                                require_torus)

        client = ProtocolClient(self._hostname_server, port, timeout=timeout)
        self._client = client
        client.connect(timeout)
        try:
            if not ignore_version:
                client.check_version()
            if resume_job_id is None:
                self._id = client.create_job(*args, **create_kwargs)
                self._keepalive = create_kwargs["keepalive"]
                log.info("Created spalloc job %d", self._id)
            else:
                state = client.get_job_state(resume_job_id)
                if state.state in (JobState.unknown, JobState.destroyed):
                    why = state.reason if state.state is JobState.destroyed else None
                    raise JobDestroyedError(
                        resume_job_id,
                        f"job {resume_job_id} does not exist: {state.state.name}"
                        + (f": {why}" if why else ""))
                self._id = resume_job_id
                self._keepalive = state.keepalive
                log.info("Resumed spalloc job %d", self._id)
            self._snapshot = JobSnapshot(
                job_id=self._id, owner=create_kwargs.get("owner"), keepalive=self._keepalive,
                connected=True)
            self._events = _Dispatcher(f"spalloc-job-{self._id}-listeners")
            self._removers = [
                # Both run on the socket reader and only wake the keepalive thread.
                client.add_notification_listener(self._on_notification, immediate=True),
                client.add_disconnect_listener(self._on_disconnect, immediate=True),
            ]
            self._keeper = KeepaliveThread(
                f"spalloc-job-{self._id}-keepalive",
                None if self._keepalive is None else self._keepalive / 2,
                self._reconnect_delay, self._beat, self._refresh_quietly, self._reconnect,
                lambda: client.connected)
            # The keepalive thread starts while the server answers (its first beat is
            # keepalive/2 away, so it cannot race the subscription).
            self._subscribe_and_refresh(meanwhile=self._keeper.start)
        except BaseException:
            # Never leave a job (or a socket) behind because construction failed (B24),
            # nor a resumed job destroyed because we could not follow it.
            if self._id is not None and resume_job_id is None:
                self.destroy("construction of the Job failed")
            else:
                self.close()
            raise

    @staticmethod
    def _create_kwargs(config: SpallocConfig, owner: Any, keepalive: Any, machine: Any,
                       tags: Any, min_ratio: Any, max_dead_boards: Any, max_dead_links: Any,
                       require_torus: Any) -> dict[str, Any]:
        def pick(name: str, value: Any) -> Any:
            return getattr(config, name) if value is _UNSET else value

        owner = pick("owner", owner)
        if owner is None:
            raise ValueError("An owner must be specified: pass owner=..., set SPALLOC_OWNER "
                             "or put 'owner = <your email>' in the config file.")
        keepalive = pick("keepalive", keepalive)
        if keepalive is not None and (isinstance(keepalive, bool) or keepalive <= 0):
            raise ValueError("keepalive must be None or a number of seconds > 0")
        if isinstance(tags, str):
            tags = [tags]
        if machine is not _UNSET and tags is not _UNSET:
            if machine is not None and tags is not None:
                raise ValueError("Only one of tags and machine may be specified.")
        elif machine is not _UNSET:
            tags = None if machine is not None else pick("tags", tags)
        elif tags is not _UNSET:
            machine = None if tags is not None else config.machine
        else:
            machine = config.machine
            # A machine named in the config wins over the default tag set.
            tags = None if machine is not None else config.tags
            if (machine is not None and "tags" in config.explicit
                    and config.tags is not None):
                raise ConfigError("the config sets both machine and tags; only one of them "
                                  "may be specified", key="tags", value=config.tags)
        return {
            "owner": str(owner),
            "keepalive": None if keepalive is None else float(keepalive),
            "machine": machine,
            "tags": None if tags is None else [str(t) for t in tags],
            "min_ratio": float(pick("min_ratio", min_ratio)),
            "max_dead_boards": pick("max_dead_boards", max_dead_boards),
            "max_dead_links": pick("max_dead_links", max_dead_links),
            "require_torus": bool(pick("require_torus", require_torus)),
        }

    # --- keeping the snapshot current ------------------------------------------------------

    def _update(self, **changes: Any) -> None:
        with self._cond:
            new = self._snapshot._replace(**changes)
            if new == self._snapshot:
                return
            self._snapshot = new
            self._cond.notify_all()
            listeners = list(self._state_listeners)
        for fn in listeners:
            self._events.submit(fn, self)

    def _apply(self, state: JobStateInfo, info: JobMachineInfo | None) -> None:
        # The Java server says power False / reason "" where the Python one says None.
        power = None if state.state is JobState.queued else state.power
        reason = state.reason or None if state.state.is_live else state.reason
        changes: dict[str, Any] = {
            "state": state.state, "power": power, "reason": reason,
            "start_time": state.start_time, "keepalivehost": state.keepalivehost,
        }
        if state.state.is_live:
            changes["keepalive"] = state.keepalive
        if info is not None and (state.state.is_live or info.machine_name is not None):
            # Once the job is gone the server forgets its boards; keep the last ones known.
            changes.update(machine_name=info.machine_name, boards=info.boards,
                           width=info.width, height=info.height, connections=info.connections)
        self._update(**changes)
        if not state.state.is_live and self._keeper is not None:
            # The server has let the job go: nothing is left to keep alive or to follow.
            self._keeper.stop(timeout=0)

    def _fetch(self, timeout: float | None, *, keepalive: bool = False,
               subscribe: bool = False, meanwhile: Callable[[], None] | None = None) -> None:
        """Ask for state and machine info in one round trip (plus a keepalive or a
        subscription if asked), running *meanwhile* while the server works."""
        client = self._require_client()
        job_id = self._require_id()
        with self._refresh_lock:
            extra = None
            if subscribe:
                extra = client.submit("notify_job", job_id)
            elif keepalive:
                extra = client.submit("job_keepalive", job_id)
            p_state = client.submit("get_job_state", job_id)
            p_info = client.submit("get_job_machine_info", job_id)
            if meanwhile is not None:
                meanwhile()
            if extra is not None:
                extra.result(timeout)
            state = JobStateInfo.from_wire(p_state.result(timeout))
            try:
                info: JobMachineInfo | None = JobMachineInfo.from_wire(p_info.result(timeout))
            except SpallocServerException:
                info = None  # the Java server raises "boards not allocated" instead of nulls
            self._apply(state, info)

    def _subscribe_and_refresh(self, meanwhile: Callable[[], None] | None = None) -> None:
        self._fetch(self._timeout, subscribe=True, meanwhile=meanwhile)
        if self._keepalive is not None:
            # get_job_state refreshes the job's keepalive timer on the server too.
            self._update(last_keepalive_ok=time.time(), keepalive_error=None)

    def _on_notification(self, payload: dict[str, Any]) -> None:
        changed = payload.get("jobs_changed")
        if not isinstance(changed, list) or self._id not in changed or self._finished:
            return
        if self._keeper is not None:
            self._keeper.request_refresh()

    def _refresh_quietly(self) -> None:
        try:
            self._fetch(_bounded(self._timeout, _BACKGROUND_TIMEOUT))
        except SpallocError as exc:
            log.debug("refresh of job %s after a notification failed: %s", self._id, exc)

    def _on_disconnect(self, error: ProtocolError) -> None:
        if self._finished:
            return
        log.warning("lost connection to spalloc server for job %s: %s", self._id, error)
        self._update(connected=False, keepalive_error=f"connection lost: {error}")
        if self._keeper is not None:
            self._keeper.wake()

    def _beat(self) -> None:
        client = self._require_client()
        half = None if self._keepalive is None else self._keepalive / 2
        timeout = _bounded(_bounded(self._timeout, half), _BACKGROUND_TIMEOUT)
        try:
            self._fetch(timeout, keepalive=self._keepalive is not None)
        except ProtocolTimeoutError as exc:
            # A connection that stops answering is as good as lost: start again.
            self._update(keepalive_error=str(exc), connected=False)
            client.disconnect()
            raise
        except SpallocError as exc:
            self._update(keepalive_error=str(exc))
            raise
        if self._keepalive is not None:
            self._update(last_keepalive_ok=time.time(), keepalive_error=None)

    def _reconnect(self) -> None:
        client = self._require_client()
        try:
            client.connect(self._timeout)
            if not self._ignore_version:
                client.check_version()
            self._subscribe_and_refresh()
        except BaseException as exc:
            client.disconnect()
            self._update(connected=False, keepalive_error=f"reconnection failed: {exc}")
            raise
        log.info("reconnected to spalloc server for job %s", self._id)
        self._update(connected=True)

    def _require_client(self) -> ProtocolClient:
        if self._client is None:
            raise ProtocolError("not connected")
        return self._client

    def _require_id(self) -> int:
        if self._id is None:
            raise ProtocolError("no job")
        return self._id

    # --- public: listeners and snapshot ------------------------------------------------------

    def add_state_listener(self, fn: Callable[[Job], None]) -> Callable[[], None]:
        """Call ``fn(job)`` whenever the cached snapshot changes.

        ``fn`` runs on a background thread of this Job (never the socket reader), so it may
        call the Job's methods. Returns a function that removes the listener.
        """
        with self._cond:
            self._state_listeners.append(fn)

        def remove() -> None:
            with self._cond:
                if fn in self._state_listeners:
                    self._state_listeners.remove(fn)
        return remove

    @property
    def snapshot(self) -> JobSnapshot:
        """Everything known about the job now, as one frozen value (no server call)."""
        return self._snapshot

    @property
    def client(self) -> ProtocolClient | None:
        """The :class:`~spalloc.client.ProtocolClient` this Job talks through."""
        return self._client

    def refresh(self, timeout: float | None = _UNSET) -> JobSnapshot:
        """Fetch the job's state and machine information now; returns the new snapshot.

        Raises:
            ProtocolError: not connected (or the connection failed).
            ProtocolTimeoutError: no reply in time.
        """
        self._fetch(self._timeout if timeout is _UNSET else timeout)
        return self._snapshot

    # --- public: the seed's attributes ---------------------------------------------------------

    @property
    def id(self) -> int | None:
        """The job ID allocated by the server."""
        return self._id

    def _live_refresh(self) -> None:
        # The seed's state/power/reason reflect the server now; fall back to the cache
        # when we cannot ask (closed, destroyed or disconnected).
        client = self._client
        if self._finished or client is None or not client.connected:
            return
        try:
            self._fetch(self._timeout)
        except SpallocError as exc:
            log.debug("could not refresh job %s: %s", self._id, exc)

    @property
    def state(self) -> JobState:
        """The current state of the job."""
        self._live_refresh()
        return self._snapshot.state

    @property
    def power(self) -> bool | None:
        """Are the boards powered/powering on (True) or off (False); None without boards."""
        self._live_refresh()
        return self._snapshot.power

    @property
    def reason(self) -> str | None:
        """For what reason was the job destroyed (if any and if destroyed)."""
        self._live_refresh()
        return self._snapshot.reason

    @property
    def connections(self) -> dict[tuple[int, int], str] | None:
        """``{(x, y): hostname}`` of every Ethernet-connected chip, or None if not allocated."""
        conns = self._snapshot.connections
        return None if conns is None else dict(conns)

    @property
    def hostname(self) -> str | None:
        """The hostname of chip 0, 0 (or None if not allocated yet)."""
        return self._snapshot.hostname

    @property
    def width(self) -> int | None:
        """The width of the allocated machine in chips (or None)."""
        return self._snapshot.width

    @property
    def height(self) -> int | None:
        """The height of the allocated machine in chips (or None)."""
        return self._snapshot.height

    @property
    def machine_name(self) -> str | None:
        """The name of the machine the job is allocated on (or None)."""
        return self._snapshot.machine_name

    @property
    def boards(self) -> list[list[int]] | None:
        """The logical coordinates ``[[x, y, z], ...]`` of the job's boards (or None)."""
        boards = self._snapshot.boards
        return None if boards is None else [list(b) for b in boards]

    @property
    def owner(self) -> str | None:
        """The owner given when the job was created (None for a resumed job)."""
        return self._snapshot.owner

    @property
    def keepalive(self) -> float | None:
        """The job's keepalive interval in seconds (None: never expires)."""
        return self._keepalive if self._id is not None else None

    # --- public: actions -----------------------------------------------------------------------

    def set_power(self, power: bool) -> None:
        """Turn the boards on (True; resets boards already on) or off (False); non-blocking.

        Does nothing if no boards are allocated. ``wait_until_ready()`` waits for the
        power change to finish.

        Raises:
            ProtocolError: not connected.
        """
        client = self._require_client()
        command = "power_on_job_boards" if power else "power_off_job_boards"
        with self._refresh_lock:
            pending = client.submit(command, self._require_id())
        pending.result(self._timeout)
        # Read the state back now, so a wait that follows sees "power", not the old "ready".
        self._fetch(self._timeout)

    def reset(self) -> None:
        """Reset (power-cycle) the boards; does nothing if the job has no boards."""
        self.set_power(True)

    def where_is_machine(self, chip_x: int, chip_y: int) -> tuple[int, int, int]:
        """Return (cabinet, frame, board) of the board holding chip (chip_x, chip_y) of this job.

        Raises:
            ValueError: the chip is not in this job's machine.
        """
        found = self._require_client().where_is(job_id=self._require_id(), chip_x=chip_x,
                                                chip_y=chip_y, timeout=self._timeout)
        if found is None:
            raise ValueError(f"chip ({chip_x}, {chip_y}) is not in job {self._id}'s machine")
        return found.physical

    def wait_for_state_change(self, old_state: JobState,
                              timeout: float | None = None) -> JobState:
        """Block until the job's state differs from *old_state*; return the new state.

        Returns *old_state* if *timeout* seconds pass first (``None`` waits forever), or at
        once if the Job was closed or destroyed and so can see no further change.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                state = self._snapshot.state
                if state != old_state or self._finished:
                    return state
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return old_state
                self._cond.wait(remaining)

    def wait_until_ready(self, timeout: float | None = None) -> None:
        """Block until the job is allocated and its boards are powered.

        Raises:
            StateChangeTimeoutError: *timeout* seconds passed first.
            JobDestroyedError: the job was destroyed (``reason`` is the server's).
            ProtocolError: the Job was closed, so it can no longer follow the job.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        state = self._snapshot.state
        while True:
            if state is JobState.ready:
                return
            if state is JobState.destroyed:
                raise JobDestroyedError(self._id, self._snapshot.reason)
            if state is JobState.unknown:
                raise JobDestroyedError(self._id, "the server no longer recognises this job")
            if self._finished:
                raise ProtocolError(f"job {self._id}: the Job was closed")
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise StateChangeTimeoutError(
                    f"job {self._id} was not ready within {timeout} s (state: {state.name})",
                    job_id=self._id, timeout=timeout)
            state = self.wait_for_state_change(state, remaining)

    def destroy(self, reason: str | None = None) -> None:
        """Destroy the job and disconnect; never raises because the server is unreachable.

        Waits at most the Job's ``timeout`` (or :data:`DESTROY_TIMEOUT` if that is None)
        for the server. Afterwards ``state`` is ``destroyed`` and ``reason`` the reason.
        Calling it again does nothing.
        """
        with self._lifecycle_lock:
            if self._finished == "destroyed":
                return
            self._finished = "destroyed"
        client = self._client
        confirmed: str | None = None
        if client is None or self._id is None:
            self._stop_background()
        else:
            timeout = _bounded(self._timeout, DESTROY_TIMEOUT)
            try:
                sent = self._send_destroy(client, reason) if client.connected else None
                # Stopping the keepalive thread overlaps the server's work when we sent already.
                self._stop_background()
                if sent is None:
                    client.connect(timeout)
                    sent = self._send_destroy(client, reason)
                if sent is None:
                    raise ProtocolError("the connection failed while sending destroy_job")
                p_destroy, p_state = sent
                p_destroy.result(timeout)
                state = JobStateInfo.from_wire(p_state.result(timeout))
                self._apply(state, None)
                log.info("Destroyed spalloc job %d", self._id)
            except (SpallocError, OSError) as exc:
                confirmed = f"destroy not confirmed by the server: {exc}"
                log.warning("job %s: %s", self._id, confirmed)
            finally:
                client.close()
        changes: dict[str, Any] = {"connected": False}
        if self._snapshot.state is not JobState.destroyed:
            changes.update(state=JobState.destroyed, reason=reason)
        if confirmed:
            changes["keepalive_error"] = confirmed
        self._update(**changes)
        self._events.stop()

    def _send_destroy(self, client: ProtocolClient,
                      reason: str | None) -> tuple[PendingReply, PendingReply] | None:
        try:
            with self._refresh_lock:
                return (client.submit("destroy_job", self._require_id(), reason=reason),
                        client.submit("get_job_state", self._require_id()))
        except ProtocolError:
            return None

    def close(self) -> None:
        """Disconnect and stop keeping the job alive, without destroying it.

        The job stays allocated until its keepalive runs out (never, if keepalive is None).
        """
        with self._lifecycle_lock:
            if self._finished:
                return
            self._finished = "closed"
        self._stop_background()
        if self._client is not None:
            self._client.close()
        self._update(connected=False)
        self._events.stop()

    def _stop_background(self) -> None:
        for remove in self._removers:
            remove()
        self._removers = []
        if self._keeper is not None:
            self._keeper.stop()
        with self._cond:
            self._cond.notify_all()  # waits see _finished and return

    # --- context manager -------------------------------------------------------------------------

    def __enter__(self) -> Job:
        """Wait until the job is ready; destroy it if that fails, Ctrl-C included."""
        try:
            self.wait_until_ready()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()

    def __repr__(self) -> str:
        snap = self._snapshot
        where = f" on {snap.machine_name}" if snap.machine_name else ""
        return f"<Job {self._id} {snap.state.name}{where}>"
