"""The operations every tool needs from a spalloc server, whichever protocol it speaks.

:class:`Service` is what :class:`~spalloc.job.Job` talks to; the v1 TCP implementation is
:class:`spalloc.service.v1.V1Service`. A second protocol is one more implementation of it,
nothing in the tools. Every method takes one ``time.monotonic()`` *deadline* (``None``: no
deadline) shared by all the steps it takes, and raises only errors of
:mod:`spalloc.exceptions`. Replies are the records of :mod:`spalloc.models`, with the values a
v1 reference server gives for the same allocation.

Sending and waiting are split where a tool needs it: :meth:`Service.send_fetch` and
:meth:`Service.send_destroy` send at once and return a :class:`Pending` whose ``wait()``
collects the answer, so a caller can order its requests under a lock it never holds across a
wait, and a server that pipelines (v1) answers several requests in one round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

from spalloc.exceptions import ProtocolError
from spalloc.models import (
    JobDescription,
    JobMachineInfo,
    JobStateInfo,
    MachineDescription,
    WhereIs,
)

__all__ = ["JobRequest", "JobStatus", "Pending", "Service"]

T_co = TypeVar("T_co", covariant=True)


class JobRequest(NamedTuple):
    """What to allocate: the seed's ``create_job`` arguments, already checked."""

    args: tuple[int, ...]
    owner: str
    keepalive: float | None
    machine: str | None
    tags: tuple[str, ...] | None
    min_ratio: float
    max_dead_boards: int | None
    max_dead_links: int | None
    require_torus: bool


class JobStatus(NamedTuple):
    """A job's state and, once it has boards, its machine information."""

    state: JobStateInfo
    info: JobMachineInfo | None


class Pending(Protocol[T_co]):
    """An answer on its way: ``wait()`` blocks until the request's deadline at most."""

    def wait(self) -> T_co:
        """The answer.

        Raises:
            ProtocolTimeoutError: it did not come by the deadline.
            ProtocolError: the connection failed first.
            SpallocServerException: the server refused the request.
        """
        ...


class Service(Protocol):
    """A connection (or session) to one spalloc server, safe to share between threads."""

    @property
    def connected(self) -> bool:
        """True while the connection is up."""
        ...

    @property
    def address(self) -> str:
        """Where the server is, for messages (``host:port`` or a URL)."""
        ...

    def sibling(self) -> Service:
        """A new, unconnected service to the same server with the same login: for a second
        follower (e.g. a board map beside a ``Job``) whose follows and reconnections must not
        disturb this one's."""
        ...

    def connect(self, deadline: float | None) -> None:
        """(Re)connect, dropping any current connection, and check the server's version
        unless told not to.

        Raises:
            ServerConnectionError: the server cannot be reached.
            IncompatibleServerError: the server's version is not one we can work with.
        """
        ...

    def disconnect(self) -> None:
        """Abandon the connection (e.g. a stalled one), keeping listeners; waiters fail."""
        ...

    def close(self) -> None:
        """Disconnect for good and end any listener thread (idempotent)."""
        ...

    # -- jobs --------------------------------------------------------------------------------

    def create_job(
        self,
        request: JobRequest,
        deadline: float | None,
        meanwhile: Callable[[], None] | None = None,
    ) -> int:
        """Ask for boards; the new job's ID. *meanwhile* is called once while the request is
        with the server (``Job`` starts its keepalive thread there)."""
        ...

    def resume_job(self, job_id: int, deadline: float | None) -> float | None:
        """Check that a live job exists; its keepalive interval (``None``: never expires).

        Raises:
            JobDestroyedError: the job is unknown or already destroyed.
        """
        ...

    def send_fetch(
        self, job_id: int, deadline: float | None, *, keepalive: bool = False, follow: bool = False
    ) -> Pending[JobStatus]:
        """Ask for the job's state and machine information; with *keepalive* also refresh its
        keepalive, with *follow* also subscribe to its changes (see :meth:`on_job_changed`).
        """
        ...

    def set_power(self, job_id: int, on: bool, deadline: float | None) -> None:
        """Power the job's boards on (resetting them if on already) or off."""
        ...

    def send_destroy(
        self, job_id: int, reason: str | None, deadline: float | None
    ) -> Pending[JobStateInfo]:
        """Destroy the job; the pending answer is its state afterwards."""
        ...

    def job_state(self, job_id: int, deadline: float | None) -> JobStateInfo:
        """The job's state alone (state ``unknown`` for a job the server does not know)."""
        ...

    def job_machine_info(self, job_id: int, deadline: float | None) -> JobMachineInfo | None:
        """The job's machine information; ``None`` while it has no boards."""
        ...

    def where_is(self, deadline: float | None, **query: Any) -> WhereIs | None:
        """Locate a board or chip (the v1 ``where_is`` key sets); ``None`` if nothing is there."""
        ...

    def list_jobs(self, deadline: float | None) -> Sequence[JobDescription]:
        """Every live job, oldest first."""
        ...

    def list_machines(self, deadline: float | None) -> Sequence[MachineDescription]:
        """Every machine, in the server's order."""
        ...

    def board_locations(
        self, machine: str, deadline: float | None
    ) -> Mapping[tuple[int, int, int], tuple[int, int, int]]:
        """Where each board of *machine* is: its physical ``(cabinet, frame, board)`` by its
        logical ``(x, y, z)``.

        Boards the server cannot place (dead ones) are left out; a machine the server does
        not know has no boards. The answer changes only with the machine's configuration,
        so callers may keep it while the machine's size and dead boards stay the same.
        """
        ...

    # -- changes -----------------------------------------------------------------------------

    def follow_jobs(self, deadline: float | None, job_id: int | None = None) -> None:
        """Report changes of job *job_id* (of every job if ``None``) from now on.

        Over v2 (a long-poll per thing followed, which hears of the changes made after it
        reaches the server) a change landing before that is reported when the long-poll is
        answered, within the server's longest wait (30 s), if it shows in the followed
        document; power changes made through this service are reported at once.
        """
        ...

    def follow_machines(self, deadline: float | None, machine: str | None = None) -> None:
        """Report changes of machine *machine* (of every machine if ``None``) from now on.

        Over v2 the machine's document does not show its allocations: one made before its
        long-poll reaches the server is reported with the next change only.
        """
        ...

    def wait_for_change(self, timeout: float | None) -> bool:
        """Block until something followed changes (a burst counts once); False on timeout.

        Raises:
            ProtocolError: the connection was lost.
        """
        ...

    def on_job_changed(self, fn: Callable[[Sequence[int]], None]) -> Callable[[], None]:
        """Call ``fn(job_ids)`` when followed jobs change; returns a function removing it.

        ``fn`` runs on the thread that reads the server (the connection's own, or the caller's
        inside a wait): it must return at once and must not call the service (wake a thread of
        your own instead).
        """
        ...

    def on_machine_changed(self, fn: Callable[[Sequence[str]], None]) -> Callable[[], None]:
        """Call ``fn(machine_names)`` when followed machines change (boards taken or freed,
        dead boards or links); returns a function removing it. Same rules as
        :meth:`on_job_changed`."""
        ...

    def on_connection_lost(self, fn: Callable[[ProtocolError], None]) -> Callable[[], None]:
        """Call ``fn(error)`` when the connection is lost (not on :meth:`close` or
        :meth:`disconnect`); same rules as :meth:`on_job_changed`."""
        ...
