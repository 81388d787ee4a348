"""The board map's link to its server: a :class:`~spalloc.service.Service` of its own,
followed by one :class:`spalloc.follow.Follower` thread (reconnection, resubscription,
coalesced refreshes, stop), and one worker thread that answers where-is questions.

Both threads only assign the map's traits. Only the follower thread re-reads the server into
the traits (a refresh asked for from the kernel is handed to it and waited for), so no lock
is held across a network wait and refreshes never race each other.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from spalloc._deadline import deadline_of
from spalloc.exceptions import ProtocolError, ProtocolTimeoutError, SpallocError
from spalloc.follow import Follower
from spalloc.geometry import Board, Machine, ethernet_chip
from spalloc_nb.widgets._maptraits import (
    board_records,
    job_ips,
    job_records,
    requested_machine,
    where_is_answer,
)

if TYPE_CHECKING:
    from spalloc.models import MachineDescription
    from spalloc.service import Service

__all__ = ["MapFollower"]

_STOP = object()


class MapFollower:
    """Keeps one map's traits true to its server until :meth:`stop`.

    Args:
        widget: the map whose traits are assigned.
        service: a service of the map's own, not yet connected (its subscriptions are the
            map's, and reconnecting it disturbs nobody else).
        machine_name: the machine to draw; ``None``: the machine of *job* once it has one.
        job: the ``spalloc.Job`` whose boards are outlined and whose IPs are known, or ``None``.
        geometry: the machine's description, for locations and IPs without asking the server.
        known: machines described locally (e.g. by an in-process emulator).
        timeout: seconds for each exchange (connecting with the first picture, a refresh, a
            question); ``None``: no limit.
        reconnect_delay: seconds between failed reconnection attempts.
    """

    def __init__(
        self,
        widget: Any,
        service: Service,
        machine_name: str | None,
        *,
        job: Any = None,
        geometry: Machine | None,
        known: list[Machine],
        timeout: float | None,
        reconnect_delay: float,
    ) -> None:
        self._widget = widget
        self._service = service
        self._machine_name = machine_name
        #: the followed job, if any
        self.job = job
        self._job_id: int | None = None if job is None else int(job.id)
        self._geometry = geometry
        self._known = known
        self._timeout = timeout
        self._reconnect_delay = reconnect_delay
        self._stopping = threading.Event()
        # Set while connected and subscribed: questions wait for it (released by stop()).
        self._connected = threading.Event()
        self._lost: BaseException | None = None  # why the connection went, for the status
        self._assign_lock = threading.Lock()
        # Refreshes begun and ended, so that request_refresh can wait for a fresh one.
        self._done = threading.Condition()
        self._begun = 0
        self._ended = 0
        self._queries: queue.Queue[Any] = queue.Queue()
        # Board locations change only with the machine's configuration: kept per machine.
        self._locations_key: tuple[Any, ...] | None = None
        self._locations: Mapping[Board, tuple[int, int, int]] = {}
        #: how many times the traits were recomputed from the server (for tests)
        self.refreshes = 0
        self._watching: str | None = None  # the machine a queued job waits for
        self._removers: list[Callable[[], None]] = []
        where = service.address
        self._follower = Follower(
            f"spalloc-boardmap-follow-{where}",
            None,
            reconnect_delay,
            beat=lambda: None,
            refresh=self._refresh_from_thread,
            reconnect=self._reconnect,
            is_connected=lambda: service.connected,
        )
        self._query_thread = threading.Thread(
            target=self._query_loop, name=f"spalloc-boardmap-query-{where}", daemon=True
        )

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect and draw the first picture in the caller's thread, then follow.

        Raises:
            spalloc.ProtocolError: the server cannot be reached (also an ``OSError``).
            LookupError: the server has no such machine.
        """
        service = self._service
        self._removers = [
            service.on_machine_changed(self._machines_changed),
            service.on_job_changed(self._jobs_changed),
            service.on_connection_lost(self._connection_lost),
        ]
        deadline = deadline_of(self._timeout)  # one for connecting and the first picture
        try:
            self._subscribe(deadline)
            if not self._refresh(deadline) and self._job_id is None:
                raise LookupError(f"no machine named {self._machine_name!r} on {service.address}")
        except BaseException:
            self._close()
            raise
        self._connected.set()
        self._follower.start()
        self._query_thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """End both threads and the connection; the traits keep what they show."""
        self._stopping.set()
        self._connected.set()  # releases a question waiting for a connection
        with self._done:
            self._done.notify_all()
        self._queries.put(_STOP)
        self._follower.stop(timeout=0)  # asks the thread to end, without waiting yet
        self._service.close()  # ends any wait of the follower thread on the server
        self._follower.stop(timeout)
        if self._query_thread.is_alive() and self._query_thread is not threading.current_thread():
            self._query_thread.join(timeout)
        self._close()  # again: the follower may have reconnected between the two
        self._set(status="stopped")

    @property
    def alive(self) -> bool:
        """True while either thread runs."""
        return self._follower.alive or self._query_thread.is_alive()

    def _close(self) -> None:
        removers, self._removers = self._removers, []
        for remove in removers:
            remove()
        self._service.close()

    def _subscribe(self, deadline: float | None) -> None:
        """(Re)connect and subscribe: the machine (all of them while a job's is unknown),
        the machine a queued job waits for, and the job."""
        service = self._service
        service.connect(deadline)
        service.follow_machines(deadline, self._machine_name)
        if self._watching is not None and self._watching != self._machine_name:
            service.follow_machines(deadline, self._watching)
        if self._job_id is not None:
            service.follow_jobs(deadline, self._job_id)

    # --- the follower thread's work ------------------------------------------------------------

    def _reconnect(self) -> None:
        address = self._service.address
        lost, self._lost = self._lost, None
        if lost is not None:
            self._set(status=f"disconnected from {address} ({lost}); reconnecting")
        if self._stopping.is_set():
            return
        deadline = deadline_of(self._timeout)
        try:
            self._subscribe(deadline)
            self._refresh(deadline)  # says "live", or why not
        except BaseException as exc:
            self._service.disconnect()  # half set up is not connected: try again later
            if not self._stopping.is_set():
                self._set(
                    status=f"cannot reach {address} ({exc}); reconnecting every "
                    f"{self._reconnect_delay:g} s"
                )
            raise
        self._connected.set()

    def _refresh_from_thread(self) -> None:
        try:
            self._refresh(deadline_of(self._timeout))
        except ProtocolError as exc:
            # Lost, or a server gone silent: start again from a fresh connection (the
            # follower reconnects as soon as it sees the service is not connected).
            self._lost = exc
            self._connected.clear()
            self._service.disconnect()
        except SpallocError as exc:
            self._set(status=f"refresh failed: {exc}")

    # --- listeners: on the thread that reads the server, so they only wake the follower -------

    def _machines_changed(self, names: Sequence[str]) -> None:
        if names:
            self._follower.changed()

    def _jobs_changed(self, job_ids: Sequence[int]) -> None:
        if self._job_id is not None and self._job_id in job_ids:
            self._follower.changed()

    def _connection_lost(self, error: ProtocolError) -> None:
        self._lost = error
        self._connected.clear()
        with self._done:
            self._done.notify_all()  # a refresh being waited for will not come now
        self._follower.wake()

    # --- requests from the widget (kernel thread) ---------------------------------------------

    def request_refresh(self) -> None:
        """Have the follower thread re-read the server, and wait until it has (at most a
        timeout; not at all while disconnected: reconnecting re-reads anyway)."""
        if self._stopping.is_set() or not self._connected.is_set():
            return
        with self._done:
            wanted = self._begun + 1  # one that begins after this request
        self._follower.changed()
        with self._done:
            self._done.wait_for(
                lambda: (
                    self._ended >= wanted or self._stopping.is_set() or not self._connected.is_set()
                ),
                self._timeout,
            )

    def _ask(self, label: str, kwargs: dict[str, Any], chip_form: bool) -> None:
        self._set(answer={"query": label, "pending": True})
        self._queries.put((label, kwargs, chip_form))

    def ask_board(self, board: Board) -> None:
        """Ask where a board is (the answer arrives in the ``answer`` trait)."""
        x, y, z = board
        self._ask(
            f"board ({x}, {y}, {z})",
            {"machine": self._widget.machine, "x": x, "y": y, "z": z},
            False,
        )

    def ask_board_chip(self, board: Board, chip: tuple[int, int]) -> None:
        """Ask where a chip of a board (board-local coordinates) is."""
        widget = self._widget
        ex, ey = ethernet_chip(board)
        cx = (ex + chip[0]) % max(12 * widget.width, 1)
        cy = (ey + chip[1]) % max(12 * widget.height, 1)
        self._ask(
            f"chip ({cx}, {cy})", {"machine": widget.machine, "chip_x": cx, "chip_y": cy}, True
        )

    def ask_job_chip(self, job_id: int, chip: tuple[int, int]) -> None:
        """Ask where a chip of a job (job-relative coordinates) is."""
        x, y = chip
        self._ask(
            f"chip ({x}, {y}) of job {job_id}", {"job_id": job_id, "chip_x": x, "chip_y": y}, True
        )

    def _query_loop(self) -> None:
        while True:
            item = self._queries.get()
            if item is _STOP:
                return
            # Only the newest click matters when several queued up.
            with contextlib.suppress(queue.Empty):
                while True:
                    newer = self._queries.get_nowait()
                    if newer is _STOP:
                        return
                    item = newer
            label, kwargs, chip_form = item
            if not self._connected.wait(self._timeout) or self._stopping.is_set():
                if not self._stopping.is_set():
                    self._set(answer={"query": label, "error": "not connected to the server"})
                continue
            try:
                reply = self._service.where_is(deadline_of(self._timeout), **kwargs)
            except SpallocError as exc:
                self._set(answer={"query": label, "error": str(exc)})
                if isinstance(exc, ProtocolError) and not isinstance(exc, ProtocolTimeoutError):
                    self._follower.wake()  # it finds the connection gone and reconnects
                continue
            self._set(answer=where_is_answer(label, reply, chip_form=chip_form))

    # --- building the traits ------------------------------------------------------------------

    def _refresh(self, deadline: float | None) -> bool:
        """Re-read the machine and its jobs into the traits; False if there is no map yet."""
        with self._done:
            self._begun += 1
            ticket = self._begun
        try:
            return self._read(deadline)
        finally:
            with self._done:
                self._ended = ticket
                self._done.notify_all()

    def _read(self, deadline: float | None) -> bool:
        service = self._service
        machines = service.list_machines(deadline)
        jobs = service.list_jobs(deadline)
        self.refreshes += 1
        name = self._machine_name
        queued_for: str | None = None
        if name is None and self._job_id is not None:
            # A queued job: its machine is known once it is allocated.
            mine = next((j for j in jobs if j.job_id == self._job_id), None)
            name = None if mine is None else mine.allocated_machine_name
            if name is None:
                # Meanwhile, show the machine it waits for and what holds that machine.
                queued_for = requested_machine(mine, machines)
                if queued_for is None:
                    self._set(status=f"job {self._job_id} is not allocated yet")
                    return False
                if queued_for != self._watching:
                    service.follow_machines(deadline, queued_for)
                    self._watching = queued_for
                name = queued_for
            else:
                self._machine_name = name
                service.follow_machines(deadline, name)
        entry = next((m for m in machines if m.name == name), None)
        if entry is None:
            self._set(status=f"no machine named {name!r} on the server", jobs=[])
            return False
        boards = self._board_records(entry, deadline)
        status = "live"
        if queued_for is not None:
            status = (
                f"live; job {self._job_id} is queued for {queued_for}: "
                "the jobs shown hold its boards"
            )
        extra: dict[str, Any] = {}
        if (
            self._job_id is not None
            and queued_for is None
            and not any(j.job_id == self._job_id for j in jobs)
        ):
            # The followed job ended: say so, and forget answers that still name it.
            status = f"live; job {self._job_id} has ended and holds no boards"
            if self._widget.answer.get("job_id") == self._job_id:
                extra["answer"] = {}
            if self._widget.highlight_job == self._job_id:
                extra["highlight_job"] = None
        self._set(
            machine=name,
            width=entry.width,
            height=entry.height,
            tags=list(entry.tags),
            boards=boards,
            dead_links=[list(lk) for lk in sorted(entry.dead_links)],
            jobs=job_records(entry.name, jobs, self._widget.my_owner),
            status=status,
            **extra,
        )
        return True

    def _board_records(
        self, entry: MachineDescription, deadline: float | None
    ) -> list[dict[str, Any]]:
        key = (entry.name, entry.width, entry.height, frozenset(entry.dead_boards))
        geometry = self._geometry or next((m for m in self._known if m.name == entry.name), None)
        if geometry is not None and (geometry.name, geometry.width, geometry.height) != key[:3]:
            geometry = None  # the server's machine is not the one we were told about
        if key != self._locations_key:
            self._locations = (
                dict(geometry.board_locations)
                if geometry is not None
                else self._service.board_locations(entry.name, deadline)
            )
            self._locations_key = key
        ips = dict(geometry.board_ips) if geometry is not None else {}
        ips.update(job_ips(self.job))  # the job's own connections: no extra server call
        return board_records(entry, self._locations, ips)

    def _set(self, **values: Any) -> None:
        # The only way traits change from our threads; unchanged values send nothing.
        widget = self._widget
        with self._assign_lock, widget.hold_sync():
            for name, value in values.items():
                if getattr(widget, name) != value:
                    setattr(widget, name, value)
