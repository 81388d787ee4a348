"""The look-ups of spalloc v2 that belong to no one job (a mixin of
:class:`~spalloc.service.v2.V2Service`, which provides the requests declared here): the
machines, the job list, and where a board or chip is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from spalloc.exceptions import ProtocolError, SpallocServerException
from spalloc.service import _v2wire as wire

if TYPE_CHECKING:
    from spalloc.models import JobDescription, JobMachineInfo, MachineDescription, WhereIs
    from spalloc.states import JobState

__all__ = ["V2Lookups"]

log = logging.getLogger("spalloc.service.v2")


class V2Lookups:
    """The machine, job-list and where-is part of :class:`~spalloc.service.v2.V2Service`."""

    if TYPE_CHECKING:  # what the service provides

        def _json(
            self, method: str, path: str, deadline: float | None, what: str, **kwargs: Any
        ) -> Any: ...
        def _job_doc(
            self, job_id: int, deadline: float | None, *, wait: bool = False
        ) -> dict[str, Any] | None: ...
        def _allocation(
            self, job_id: int, state: JobState, deadline: float | None
        ) -> tuple[JobMachineInfo | None, bool | None]: ...

    def board_locations(
        self, machine: str, deadline: float | None
    ) -> dict[tuple[int, int, int], tuple[int, int, int]]:
        # v2 places one board per logical-board look-up (its physical-board-coordinates).
        entry = next((m for m in self.list_machines(deadline) if m.name == machine), None)
        if entry is None:
            return {}
        found: dict[tuple[int, int, int], tuple[int, int, int]] = {}
        for x, y, z in entry.boards():
            where = self.where_is(deadline, machine=machine, x=x, y=y, z=z)
            if where is not None and where.physical is not None:
                found[(x, y, z)] = where.physical
        return found

    def where_is(self, deadline: float | None, **query: Any) -> WhereIs | None:
        keys = set(query)
        if keys == {"job_id", "chip_x", "chip_y"}:
            path = f"srv/spalloc/jobs/{int(query['job_id'])}/chip"
            params = {"x": query["chip_x"], "y": query["chip_y"]}
        elif keys == {"machine", "chip_x", "chip_y"}:
            path = f"srv/spalloc/machines/{query['machine']}/chip"
            params = {"x": query["chip_x"], "y": query["chip_y"]}
        elif keys == {"machine", "x", "y", "z"}:
            path = f"srv/spalloc/machines/{query['machine']}/logical-board"
            params = {"x": query["x"], "y": query["y"], "z": query["z"]}
        elif keys == {"machine", "cabinet", "frame", "board"}:
            path = f"srv/spalloc/machines/{query['machine']}/physical-board"
            params = {k: query[k] for k in ("cabinet", "frame", "board")}
        else:
            raise ValueError(
                f"where_is needs job_id, chip_x, chip_y or machine with chip_x, "
                f"chip_y / x, y, z / cabinet, frame, board; got {sorted(keys)}"
            )
        for value in params.values():
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"where_is coordinates must be ints: {query!r}")
        try:
            doc = self._json("GET", path, deadline, "where is", params=params)
        except SpallocServerException as exc:
            if "failed to locate" in str(exc).lower() or "no such" in str(exc).lower():
                return None
            raise
        return None if doc is None else wire.where_is(doc)

    def list_jobs(self, deadline: float | None) -> Sequence[JobDescription]:
        """Every live job this login may read (an ordinary user's own; an admin's all)."""
        ids: list[int] = []
        start = 0
        for _ in range(10_000):  # pages of 100; bounded however the server pages
            doc = self._json(
                "GET",
                "srv/spalloc/jobs",
                deadline,
                "list jobs",
                params={"wait": "false", "start": start, "limit": 100},
            )
            refs = doc.get("jobs") if isinstance(doc, dict) else None
            if not isinstance(refs, list):
                raise ProtocolError(f"list jobs: malformed answer from the v2 server: {doc!r}")
            ids.extend(wire.job_ids(refs))
            if not refs or not doc.get("next"):
                break
            start += len(refs)
        jobs = []
        for job_id in sorted(set(ids)):
            try:
                doc = self._job_doc(job_id, deadline)
            except SpallocServerException as exc:
                # Another user's job: an ordinary user may list it but not read it (403).
                log.debug("job %d is listed but cannot be read: %s", job_id, exc)
                continue
            if doc is None:
                continue
            state = wire.state_of(doc)
            info, power = self._allocation(job_id, state, deadline)
            if not state.is_live:
                continue
            allocated = None if info is None or info.machine_name is None else info
            jobs.append(wire.job_description(job_id, wire.job_state(doc, power), doc, allocated))
        return jobs

    def list_machines(self, deadline: float | None) -> Sequence[MachineDescription]:
        doc = self._json("GET", "srv/spalloc/machines", deadline, "list machines")
        machines = doc.get("machines") if isinstance(doc, dict) else None
        if not isinstance(machines, list):
            raise ProtocolError(f"list machines: malformed answer from the v2 server: {doc!r}")
        return [wire.machine_description(m) for m in machines]
