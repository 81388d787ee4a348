"""The v2 implementation of :class:`~spalloc.service.base.Service`: spalloc's REST API over
HTTP(S) with :mod:`httpx` (V2_PROTOCOL.md §1).

Replies carry the values a v1 server gives for the same allocation (see
:mod:`spalloc.service._v2wire`). A job's keepalive is ``PUT …/keepalive``; following a job is a
``GET …/jobs/N?wait=true`` long-poll on a thread of this service (one per followed job; named,
daemon, ended by :meth:`V2Service.close`), which calls the :meth:`~V2Service.on_job_changed`
listeners when the job's state document changes. (A change landing between one poll's answer
and the next poll reaches the server unseen by that poll; the refresh the listeners make after
the first change, and ``Job``'s keepalive beats, read it.) :meth:`~V2Service.send_fetch` and
:meth:`~V2Service.send_destroy` run on a small pool of this service's threads, so the caller
(``Job``, under its ordering lock) never waits for the network there.

The long-polls are in :mod:`spalloc.service._v2follow`, the look-ups that belong to no one job
(machines, the job list, where-is) in :mod:`spalloc.service._v2lookups`, the login and requests
in :mod:`spalloc.service._v2session`; :class:`V2Service` puts them together.

Importing this module imports httpx: :func:`spalloc.service.open_service` does so only for a
v2 URL.
"""

from __future__ import annotations

import concurrent.futures
import os
import ssl
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from spalloc._deadline import remaining
from spalloc.exceptions import (
    JobDestroyedError,
    ProtocolError,
    ProtocolTimeoutError,
    SpallocServerException,
)
from spalloc.models import JobMachineInfo, JobStateInfo
from spalloc.service import _v2wire as wire
from spalloc.service._v2credentials import Credentials, resolve_credentials, ssl_context
from spalloc.service._v2follow import V2Follow
from spalloc.service._v2lookups import V2Lookups
from spalloc.service._v2session import Session
from spalloc.service.base import JobRequest, JobStatus
from spalloc.states import JobState

__all__ = ["V2Service"]

_T = TypeVar("_T")
# Longest close() waits for a poll thread (it is woken at once; this only bounds a surprise).
_JOIN_TIMEOUT = 5.0


class _Future:
    """A :class:`~spalloc.service.base.Pending` answer computed on the service's pool."""

    __slots__ = ("_deadline", "_future", "_what")

    def __init__(
        self, future: concurrent.futures.Future[Any], deadline: float | None, what: str
    ) -> None:
        self._future, self._deadline, self._what = future, deadline, what

    def wait(self) -> Any:
        left = remaining(self._deadline)
        try:
            return self._future.result(left)
        except concurrent.futures.CancelledError:
            raise ProtocolError(f"{self._what}: the service was closed") from None
        except (TimeoutError, concurrent.futures.TimeoutError):  # one class from 3.11 on
            if self._future.done():
                raise  # the request's own timeout, with its own message
            raise ProtocolTimeoutError(
                f"no answer to {self._what} within {left} s", command=self._what, timeout=left
            ) from None


class V2Service(V2Follow, V2Lookups):
    """A spalloc v2 server at *url* (``https://host/spalloc/``).

    Args:
        url: the service's URL; user info in it is used as credentials (and never shown).
        user, password, token: credentials, which win over the URL's and the environment's
            (``SPALLOC_USER``/``SPALLOC_PASSWORD``, then a JupyterHub's token service, then
            ``OIDC_BEARER_TOKEN``).
        group: the accounting group to charge jobs to (needed when the user has several).
        collab: an EBRAINS collab to charge instead.
        timeout: accepted as by every Service (deadlines do the bounding; messages quote them).
        check_version: refuse a service root without a readable version.
        config: a :class:`~spalloc.config.SpallocConfig` whose login keys (``user``,
            ``password`` or ``token``) are used when nothing else gives one.

    Without *group* or *collab*, jobs run under ``NMPI_JOB_ID`` (and ``NMPI_USER``, their
    owner) are charged to that NMPI job, as SpiNNMan does; otherwise to the user's group.

    Raises:
        ValueError: not an http(s) URL, no credentials anywhere, or both group and collab.
    """

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        group: str | None = None,
        collab: str | None = None,
        timeout: float | None = None,
        check_version: bool = True,
        config: Any = None,
    ) -> None:
        configured = None
        if config is not None and (config.token is not None or config.password is not None):
            configured = Credentials(config.user, config.password, config.token)
        base, credentials = resolve_credentials(
            url, user=user, password=password, token=token, configured=configured
        )
        self._setup(
            base,
            credentials,
            wire.accounting(group, collab, os.environ),
            timeout=timeout,
            check_version=check_version,
        )

    def _setup(
        self,
        base: str,
        credentials: Credentials,
        accounting: dict[str, Any],
        *,
        timeout: float | None,
        check_version: bool,
    ) -> None:
        self._timeout = timeout
        self._check_version = check_version
        self._accounting = accounting
        self._credentials: Credentials = credentials
        self._session = Session(base, credentials, self._lost, check_version=check_version)
        self._lock = threading.Lock()
        self._connected = False
        self._generation = 0  # one per connection; a poll thread of an older one ends
        self._closed = threading.Event()
        # The long-polls' threads: ("job", "N"), ("machine", name), ("jobs", "") (the list).
        self._follows: dict[tuple[str, str], threading.Thread] = {}
        self._changes = threading.Condition(self._lock)
        self._changed = 0  # changes seen by the long-polls; wait_for_change() consumes them
        self._consumed = 0
        self._job_listeners: list[Callable[[Sequence[int]], None]] = []
        self._machine_listeners: list[Callable[[Sequence[str]], None]] = []
        self._lost_listeners: list[Callable[[ProtocolError], None]] = []
        self._machine_sizes: dict[str, tuple[int, int]] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix=f"spalloc-v2-{urlsplit(base).netloc}"
        )

    def __repr__(self) -> str:
        who = self._credentials.user or "bearer token"
        return f"<V2Service {self.address} as {who}>"

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def address(self) -> str:
        return self._session.base

    @property
    def user(self) -> str | None:
        """The user name logged in with (``None`` with a bearer token)."""
        return self._credentials.user

    def sibling(self) -> V2Service:
        """A new, unconnected service to the same server, with the same login and accounting
        (its follows and reconnections are its own)."""
        twin = V2Service.__new__(V2Service)
        twin._setup(
            self._session.base,
            self._credentials,
            dict(self._accounting),
            timeout=self._timeout,
            check_version=self._check_version,
        )
        return twin

    def connect(self, deadline: float | None) -> None:
        if self._closed.is_set():
            raise ProtocolError(f"the service for {self.address} was closed")
        self.disconnect()
        self._session.login(deadline)  # also checks the service root's version
        with self._lock:
            self._generation += 1
            self._connected = True

    def disconnect(self) -> None:
        with self._lock:
            self._end_follows()
        self._session.close()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            threads = list(self._follows.values())
        self.disconnect()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for thread in threads:
            if thread is not threading.current_thread():
                # disconnect() shut the sockets down: a poll blocked in a read ends now.
                thread.join(_JOIN_TIMEOUT)

    # --- jobs --------------------------------------------------------------------------------

    def _json(
        self, method: str, path: str, deadline: float | None, what: str, **kwargs: Any
    ) -> Any:
        reply = self._session.request(method, path, deadline, what, **kwargs)
        if reply.status_code == 204:
            return None
        try:
            return reply.json()
        except ValueError as exc:
            raise ProtocolError(f"{what}: malformed JSON from the v2 server") from exc

    def create_job(
        self,
        request: JobRequest,
        deadline: float | None,
        meanwhile: Callable[[], None] | None = None,
    ) -> int:
        body = wire.create_body(request)  # ValueError before anything is sent
        body.update(self._accounting)
        if meanwhile is not None:
            meanwhile()  # a request over httpx cannot be left with the server half-way
        doc = self._json("POST", "srv/spalloc/jobs", deadline, "create job", json=body)
        job_id = doc.get("job-id") if isinstance(doc, dict) else None
        if not isinstance(job_id, int):
            raise ProtocolError(f"create job: no job-id in the server's answer: {doc!r}")
        return job_id

    def _job_doc(
        self, job_id: int, deadline: float | None, *, wait: bool = False
    ) -> dict[str, Any] | None:
        """The job's state document; ``None`` for a job the server does not know."""
        try:
            doc = self._json(
                "GET",
                f"srv/spalloc/jobs/{job_id}",
                deadline,
                f"get state of job {job_id}",
                poll=wait,
                params={"wait": "true" if wait else "false"},
            )
        except SpallocServerException as exc:
            if exc.no_such_job:
                return None
            raise
        if not isinstance(doc, dict):
            raise ProtocolError(f"job {job_id}: malformed state from the v2 server: {doc!r}")
        return doc

    def resume_job(self, job_id: int, deadline: float | None) -> float | None:
        doc = self._job_doc(job_id, deadline)
        if doc is None:
            raise JobDestroyedError(job_id, f"job {job_id} does not exist: no such job")
        state = wire.state_of(doc)
        if state in (JobState.unknown, JobState.destroyed):
            why = doc.get("reason") if state is JobState.destroyed else None
            raise JobDestroyedError(
                job_id, f"job {job_id} does not exist: {state.name}" + (f": {why}" if why else "")
            )
        return wire.keepalive_of(doc)

    def _machine_size(self, name: str, deadline: float | None) -> tuple[int, int]:
        # Asked once per service: a machine's size does not change while a Job lives.
        sizes = self._machine_sizes
        size = sizes.get(name)
        if size is None:
            for machine in self.list_machines(deadline):
                sizes[machine.name] = (machine.width, machine.height)
            size = sizes.get(name)
            if size is None:
                raise ProtocolError(f"the v2 server lists no machine {name!r}")
        return size

    def _status(
        self, job_id: int, deadline: float | None, keepalive: bool, *, follow: bool = False
    ) -> JobStatus:
        if keepalive:
            try:
                self._session.request(
                    "PUT",
                    f"srv/spalloc/jobs/{job_id}/keepalive",
                    deadline,
                    f"keepalive of job {job_id}",
                    content=b"alive",
                    headers={"Content-Type": "text/plain"},
                )
            except SpallocServerException as exc:
                # A job the server has forgotten reads as unknown below, as in v1.
                if not exc.no_such_job:
                    raise
        doc = self._job_doc(job_id, deadline)
        if follow:
            # Its long-poll (which holds a connection of its own for up to 30 s) starts from
            # the document just read, while this thread reads the allocation.
            self._follow_job(job_id, doc)
        if doc is None:
            return JobStatus(JobStateInfo(JobState.unknown, None, None, None, None, None), None)
        info, power = self._allocation(job_id, wire.state_of(doc), deadline)
        return JobStatus(wire.job_state(doc, power), info)

    def _allocation(
        self, job_id: int, state: JobState, deadline: float | None
    ) -> tuple[JobMachineInfo | None, bool | None]:
        # GET …/machine also refreshes the job's keepalive on the server (V2_PROTOCOL §0),
        # as reading the state does in v1: ask even while the job is queued.
        if state is JobState.destroyed:
            return JobMachineInfo.empty(), None
        doc = self._json(
            "GET", f"srv/spalloc/jobs/{job_id}/machine", deadline, f"get machine of job {job_id}"
        )
        if doc is None:  # 204: not allocated yet
            return JobMachineInfo.empty(), None
        name = doc.get("machine-name") if isinstance(doc, dict) else None
        info = wire.machine_info(doc, self._machine_size(str(name), deadline))
        power_doc = self._json(
            "GET",
            f"srv/spalloc/jobs/{job_id}/machine/power",
            deadline,
            f"get power of job {job_id}",
        )
        power = None if not isinstance(power_doc, dict) else power_doc.get("power") == "ON"
        return info, power

    def _submit(self, what: str, deadline: float | None, fn: Callable[[], _T]) -> _Future:
        if not self._connected:
            raise ProtocolError(f"{what}: not connected to {self.address}")
        try:
            return _Future(self._pool.submit(fn), deadline, what)
        except RuntimeError as exc:
            if self._closed.is_set():  # the pool was shut down by close()
                raise ProtocolError(f"{what}: the service was closed") from exc
        # The interpreter is exiting (its thread pools take no more work), yet the kernel-exit
        # cleanup must still destroy its jobs: do the work here, in the caller's thread.
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            done.set_result(fn())
        except Exception as error:
            done.set_exception(error)
        return _Future(done, deadline, what)

    def send_fetch(
        self, job_id: int, deadline: float | None, *, keepalive: bool = False, follow: bool = False
    ) -> _Future:
        return self._submit(
            f"get state of job {job_id}",
            deadline,
            lambda: self._status(job_id, deadline, keepalive, follow=follow),
        )

    def set_power(self, job_id: int, on: bool, deadline: float | None) -> None:
        # 204 (no boards yet) is the "does nothing" of v1.
        self._session.request(
            "POST",
            f"srv/spalloc/jobs/{job_id}/machine/power",
            deadline,
            f"power {'on' if on else 'off'} job {job_id}",
            json={"power": "ON" if on else "OFF"},
        )
        self._changed_here(job_id)

    def _destroy(self, job_id: int, reason: str | None, deadline: float | None) -> JobStateInfo:
        params = {} if reason is None else {"reason": reason}
        try:
            self._session.request(
                "DELETE",
                f"srv/spalloc/jobs/{job_id}",
                deadline,
                f"destroy job {job_id}",
                params=params,
            )
        except SpallocServerException as exc:
            # Forgotten already (long destroyed): nothing to destroy, as in v1.
            if not exc.no_such_job:
                raise
        with self._lock:
            self._follows.pop(("job", str(job_id)), None)
        return self._status(job_id, deadline, keepalive=False).state

    def send_destroy(self, job_id: int, reason: str | None, deadline: float | None) -> _Future:
        return self._submit(
            f"destroy job {job_id}", deadline, lambda: self._destroy(job_id, reason, deadline)
        )

    def proxy_endpoint(
        self, job_id: int, deadline: float | None
    ) -> tuple[str, dict[str, str], ssl.SSLContext | None]:
        """Where and how to open job *job_id*'s websocket proxy (V2_PROTOCOL.md §1.9): its
        ``wss://`` URL (the state document's ``proxy-ref``), the login's headers and the TLS
        settings. Reading the state renews an expired login first.

        Raises:
            ProtocolError: the job has no proxy now (not powered or ready), or no login.
        """
        doc = self._job_doc(job_id, deadline)
        ref = None if doc is None else doc.get("proxy-ref")
        if not isinstance(ref, str) or not ref:
            raise ProtocolError(f"job {job_id} has no proxy now (it is not powered or ready)")
        scheme = urlsplit(ref).scheme.lower()
        if scheme in ("http", "https"):  # a server may name it by its HTTP URL
            ref = ("wss" if scheme == "https" else "ws") + ref[len(scheme) :]
        secure = urlsplit(ref).scheme.lower() == "wss"
        return ref, self._session.websocket_headers(), ssl_context() if secure else None

    def job_state(self, job_id: int, deadline: float | None) -> JobStateInfo:
        return self._status(job_id, deadline, keepalive=False).state

    def job_machine_info(self, job_id: int, deadline: float | None) -> JobMachineInfo | None:
        info = self._status(job_id, deadline, keepalive=False).info
        return None if info is None or info.connections is None else info
