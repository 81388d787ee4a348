"""``Job``: request SpiNNaker boards, keep them alive, follow their state, give them back.

A Job talks to its server through one :class:`~spalloc.service.Service` (the v1 protocol's
is :class:`~spalloc.service.v1.V1Service`). It follows its job's changes (v1: ``jobs_changed``
notifications) and keeps a cached :class:`~spalloc.models.JobSnapshot` current from them
(:mod:`spalloc._jobsync`), so waits wake on server events rather than polling. A background thread
(a :class:`~spalloc.follow.Follower`) sends ``job_keepalive`` every keepalive/2 seconds and,
when the connection drops, stalls or the server restarts, reconnects (at once, then every
``reconnect_delay`` seconds) and re-subscribes; waits carry on meanwhile. ``destroy()`` never
raises for an unreachable server.

::

    from spalloc import Job
    with Job(3) as j:
        my_boot(j.hostname, j.width, j.height)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from spalloc._deadline import deadline_of, remaining
from spalloc._dispatch import Dispatcher
from spalloc._jobsetup import job_setup
from spalloc._jobsync import JobSync, bounded
from spalloc._unset import UNSET as _UNSET
from spalloc.exceptions import JobDestroyedError, ProtocolError, StateChangeTimeoutError
from spalloc.follow import Follower
from spalloc.models import JobSnapshot
from spalloc.service import Service
from spalloc.states import JobState

if TYPE_CHECKING:
    from spalloc.client import ProtocolClient
    from spalloc.service.bridge import Bridge

__all__ = ["DESTROY_TIMEOUT", "Job"]

log = logging.getLogger(__name__)

#: Longest ``destroy()`` waits for the server when the Job's ``timeout`` is ``None``.
DESTROY_TIMEOUT = 10.0


class Job(JobSync):
    """A request for SpiNNaker boards, kept alive until destroyed.

    Positional arguments choose what to allocate: ``Job()`` or ``Job(1)`` one board,
    ``Job(n)`` at least *n* boards, ``Job(w, h)`` a *w* by *h* rectangle of triads,
    ``Job(x, y, z)`` one specific board. ``Job(resume_job_id=N)`` takes over job *N*.
    Every keyword not given comes from the config (:mod:`spalloc.config`); the seed's
    keywords keep their documented meaning. ``hostname="local"`` uses the built-in
    emulator; ``ignore_version=True`` skips the server version check.

    A *hostname* that is a URL, ``https://host/spalloc/``, selects a spalloc v2 server (``port``
    is then ignored and ``owner`` not needed: the login owns the job). Its credentials come
    from ``user=`` and ``password=`` (or ``token=``, a bearer token), else the URL's user
    info, else ``SPALLOC_USER``/``SPALLOC_PASSWORD``, else a JupyterHub's token service,
    else ``OIDC_BEARER_TOKEN``; ``group=`` (or ``collab=``) says whom to charge; its
    ``keepalive`` must be 30-300 s.

    ``proxy`` (v2 only; config key ``proxy``) says whether to reach the boards through the
    job's websocket proxy: ``"auto"`` (the default) when they do not answer directly (see
    :mod:`spalloc.service._reach`), ``"always"`` or ``"never"``. Bridged, the boards appear
    on loopback addresses of this machine (:mod:`spalloc.service.bridge`): ``connections``
    and ``hostname`` are those, so any UDP tool works; :attr:`bridge` gives channels to
    Python code. The bridge starts as the job becomes ready and closes with the Job.

    Beyond the seed: :attr:`snapshot` (everything known, as one frozen value),
    :meth:`add_state_listener`, :meth:`refresh` and :attr:`client`.

    Raises:
        TypeError: an unknown keyword or more than three positional arguments.
        ValueError: an invalid combination (e.g. both ``machine`` and ``tags``), no owner;
            :class:`~spalloc.exceptions.ConfigError` (a ``ValueError``) for no hostname.
        ServerConnectionError: the server cannot be reached (also an ``OSError``).
        IncompatibleServerError: the server's version is not supported.
        JobDestroyedError: the job to resume does not exist any more.
        SpallocServerException: the server refused the request.
    """

    def __init__(
        self,
        *args: int,
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
        ignore_version: bool = _UNSET,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        group: str | None = None,
        collab: str | None = None,
        proxy: str = _UNSET,
    ) -> None:
        # Attributes read by close()/destroy()/__repr__ even if construction fails.
        self._proxy = "never"
        self._bridge: Bridge | None = None
        self._bridge_lock = threading.Lock()
        self._direct: bool | None = None
        self._id: int | None = None
        self._service: Service | None = None
        self._keeper: Follower | None = None
        self._finished: str | None = None
        self._keepalive: float | None = None
        self._cond = threading.Condition()
        self._refresh_lock = threading.Lock()
        self._fetches = 0  # requests sent by _fetch, numbered under _refresh_lock
        self._applied = 0  # the newest fetch whose replies are in the snapshot
        self._lifecycle_lock = threading.Lock()
        self._state_listeners: list[Callable[[Job], None]] = []
        self._removers: list[Callable[[], None]] = []
        self._snapshot = JobSnapshot(job_id=None)
        self._events = Dispatcher("spalloc-job-listeners")

        setup = job_setup(
            args,
            hostname=hostname,
            port=port,
            reconnect_delay=reconnect_delay,
            timeout=timeout,
            config_filenames=config_filenames,
            resume_job_id=resume_job_id,
            owner=owner,
            keepalive=keepalive,
            machine=machine,
            tags=tags,
            min_ratio=min_ratio,
            max_dead_boards=max_dead_boards,
            max_dead_links=max_dead_links,
            require_torus=require_torus,
            ignore_version=ignore_version,
            proxy=proxy,
            user=user,
            password=password,
            token=token,
            group=group,
            collab=collab,
        )
        service, request = setup.service, setup.request
        self._proxy = setup.proxy
        self._timeout: float | None = setup.timeout
        self._reconnect_delay = setup.reconnect_delay
        self._service = service
        # One deadline for construction: connect, version, create (or resume), first fetch.
        deadline = deadline_of(self._timeout)
        service.connect(deadline)
        try:
            if request is not None:
                # The keepalive thread starts while the server creates the job (a thread's
                # start costs the caller its wait); until the job exists it has nothing to
                # do: its first beat is keepalive/2 away and nothing wakes it before then.
                keeper = self._make_keeper(service, request.keepalive)
                self._id = service.create_job(request, deadline, meanwhile=keeper.start)
                self._keepalive = request.keepalive
                log.info("Created spalloc job %d", self._id)
            else:
                assert resume_job_id is not None
                self._keepalive = service.resume_job(resume_job_id, deadline)
                self._id = resume_job_id
                log.info("Resumed spalloc job %d", self._id)
            self._snapshot = JobSnapshot(
                job_id=self._id,
                owner=None if request is None else request.owner or None,
                keepalive=self._keepalive,
                connected=True,
            )
            self._events = Dispatcher(f"spalloc-job-{self._id}-listeners")
            self._start_following(service, deadline)
        except BaseException:
            # Never leave a job (or a socket) behind because construction failed (B24),
            # nor a resumed job destroyed because we could not follow it.
            if self._id is not None and resume_job_id is None:
                self.destroy("construction of the Job failed")
            else:
                self.close()
            raise

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
        """The :class:`~spalloc.client.ProtocolClient` this Job talks through (v1 servers)."""
        return getattr(self._service, "client", None)

    @property
    def bridge(self) -> Bridge | None:
        """The proxy bridge carrying this job's boards (``None`` when not bridged)."""
        return self._bridge

    @property
    def service(self) -> Service | None:
        """The :class:`~spalloc.service.Service` this Job talks through."""
        return self._service

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
        service = self._require_service()
        deadline = deadline_of(self._timeout)  # one for both steps
        service.set_power(self._require_id(), bool(power), deadline)
        # Read the state back now, so a wait that follows sees "power", not the old "ready".
        self._fetch(remaining(deadline))

    def reset(self) -> None:
        """Reset (power-cycle) the boards; does nothing if the job has no boards."""
        self.set_power(True)

    def where_is_machine(self, chip_x: int, chip_y: int) -> tuple[int, int, int]:
        """Return (cabinet, frame, board) of the board holding chip (chip_x, chip_y) of this job.

        Raises:
            ValueError: the chip is not in this job's machine.
        """
        found = self._require_service().where_is(
            deadline_of(self._timeout), job_id=self._require_id(), chip_x=chip_x, chip_y=chip_y
        )
        if found is None:
            raise ValueError(f"chip ({chip_x}, {chip_y}) is not in job {self._id}'s machine")
        return found.physical

    def wait_for_state_change(self, old_state: JobState, timeout: float | None = None) -> JobState:
        """Block until the job's state differs from *old_state*; return the new state.

        Returns *old_state* if *timeout* seconds pass first (``None`` waits forever), or at
        once if the Job was closed or destroyed and so can see no further change.
        """
        deadline = deadline_of(timeout)
        with self._cond:
            while True:
                state = self._snapshot.state
                if state != old_state or self._finished:
                    return state
                left = remaining(deadline)
                if left is not None and left <= 0:
                    return old_state
                self._cond.wait(left)

    def wait_until_ready(self, timeout: float | None = None) -> None:
        """Block until the job is allocated and its boards are powered.

        Raises:
            StateChangeTimeoutError: *timeout* seconds passed first.
            JobDestroyedError: the job was destroyed (``reason`` is the server's).
            ProtocolError: the Job was closed, so it can no longer follow the job.
        """
        deadline = deadline_of(timeout)
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
            left = remaining(deadline)
            if left is not None and left <= 0:
                raise StateChangeTimeoutError(
                    f"job {self._id} was not ready within {timeout} s (state: {state.name})",
                    job_id=self._id,
                    timeout=timeout,
                )
            state = self.wait_for_state_change(state, left)

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
        service = self._service
        confirmed: str | None = None
        # One deadline for every step: sending, reconnecting if need be, the replies, and
        # waiting for the keepalive thread to end.
        timeout = bounded(self._timeout, DESTROY_TIMEOUT)
        deadline = deadline_of(timeout)
        self._signal_background()
        self._close_bridge()  # before the server closes its websocket under it
        if service is not None and self._id is not None:
            confirmed = self._destroy_on_server(service, reason, deadline)
        self._join_background(remaining(deadline))
        changes: dict[str, Any] = {"connected": False}
        if self._snapshot.state is not JobState.destroyed:
            changes.update(state=JobState.destroyed, reason=reason)
        if confirmed:
            changes["keepalive_error"] = confirmed
        self._update(**changes)
        self._events.stop()

    def close(self) -> None:
        """Disconnect and stop keeping the job alive, without destroying it.

        The job stays allocated until its keepalive runs out (never, if keepalive is None).
        """
        with self._lifecycle_lock:
            if self._finished:
                return
            self._finished = "closed"
        self._signal_background()
        self._close_bridge()
        if self._service is not None:
            self._service.close()  # wakes the keepalive thread if it waits for a reply
        self._join_background(DESTROY_TIMEOUT)
        self._update(connected=False)
        self._events.stop()

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
