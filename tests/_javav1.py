"""A scripted server that answers v1 like the Java server's compat service (V2_PROTOCOL.md §2).

Only what our tests rely on, each quirk as the Java server has it:

* replies end in CRLF; ``version`` is ``"5.0.0"``;
* ``get_job_state``'s ``keepalive`` is the *time of the last keepalive* (epoch seconds), not the
  interval; ``reason`` is ``""`` and ``power`` ``False`` when there is none;
* an unknown job ID gets ``{"exception": "no such job"}``, not state 0;
* ``get_job_machine_info`` before allocation gets ``{"exception": "boards not allocated"}``;
* ``list_jobs`` entries carry the keepalive *interval*, and ``reason`` is always ``""``;
* a job expires when no ``job_keepalive`` came within its interval (only ``job_keepalive``
  refreshes it here, the strictest reading);
* ``jobs_changed`` notifications go to connections that asked with ``notify_job``.

Jobs become ready ``ready_after`` seconds after creation (one board, 8 by 8 chips).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests._lines import lines_from

__all__ = ["JavaStyleServer"]


@dataclass
class _Job:
    job_id: int
    owner: str
    interval: float
    created: float
    last_keepalive: float
    state: int = 1  # queued
    reason: str = ""
    watchers: set[socket.socket] = field(default_factory=set)


class JavaStyleServer:
    """Serve on 127.0.0.1, an ephemeral port; ``with JavaStyleServer() as s: s.port``."""

    def __init__(self, *, ready_after: float = 0.2) -> None:
        self.ready_after = ready_after
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.1)
        self.host, self.port = self.listener.getsockname()
        self.received: list[dict[str, Any]] = []
        self._jobs: dict[int, _Job] = {}
        self._next_id = 7
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._accept, daemon=True),
            threading.Thread(target=self._tick, daemon=True),
        ]

    def __enter__(self) -> JavaStyleServer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5.0)
        self.listener.close()

    def job_state(self, job_id: int) -> int:
        """The job's state as the server sees it now (0 if unknown)."""
        with self._lock:
            self._expire(time.time())
            job = self._jobs.get(job_id)
            return 0 if job is None else job.state

    # --- serving ---------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _tick(self) -> None:
        while not self._stop.wait(0.05):
            with self._lock:
                changed = self._expire(time.time())
            self._notify(changed)

    def _expire(self, now: float) -> list[_Job]:
        changed = []
        for job in self._jobs.values():
            if job.state == 1 and now - job.created >= self.ready_after:
                job.state = 3
                changed.append(job)
            if job.state in (1, 3) and now - job.last_keepalive > job.interval:
                job.state, job.reason = 4, "keepalive expired"
                changed.append(job)
        return changed

    def _notify(self, jobs: list[_Job]) -> None:
        for job in jobs:
            for conn in list(job.watchers):
                with contextlib.suppress(OSError):
                    self._send(conn, {"jobs_changed": [job.job_id]})

    @staticmethod
    def _send(conn: socket.socket, message: dict[str, Any]) -> None:
        conn.sendall(json.dumps(message, separators=(",", ":")).encode() + b"\r\n")

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            for line in lines_from(conn, self._stop):
                if not line.strip():
                    return  # a blank line closes a Java connection
                request = json.loads(line)
                self.received.append(request)
                with self._lock:
                    reply = self._answer(conn, request)
                self._send(conn, reply)

    def _answer(self, conn: socket.socket, request: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        self._expire(now)
        command = request["command"]
        args, kwargs = request.get("args", []), request.get("kwargs", {})
        if command == "version":
            return {"return": "5.0.0"}
        if command == "create_job":
            keepalive = kwargs.get("keepalive")
            job = _Job(
                self._next_id,
                kwargs["owner"],
                60.0 if keepalive is None else float(keepalive),
                now,
                now,
            )
            self._next_id += 1
            self._jobs[job.job_id] = job
            return {"return": job.job_id}
        if command == "list_jobs":
            return {
                "return": [
                    {
                        "job_id": j.job_id,
                        "owner": j.owner,
                        "start_time": j.created,
                        "keepalive": j.interval,
                        "state": j.state,
                        "power": j.state == 3,
                        "args": [],
                        "kwargs": {},
                        "allocated_machine_name": "j" if j.state == 3 else None,
                        "boards": [[0, 0, 0]] if j.state == 3 else None,
                        "keepalivehost": "127.0.0.1",
                        "reason": "",
                    }
                    for j in self._jobs.values()
                    if j.state in (1, 3)
                ]
            }
        found = self._jobs.get(args[0]) if args else None
        if found is None:
            return {"exception": "no such job"}
        job = found
        if command == "job_keepalive":
            if job.state in (1, 3):
                job.last_keepalive = now
            return {"return": None}
        if command == "get_job_state":
            return {
                "return": {
                    "state": job.state,
                    "power": job.state == 3,
                    "keepalive": job.last_keepalive,
                    "reason": job.reason,
                    "start_time": job.created,
                    "keepalivehost": "127.0.0.1",
                }
            }
        if command == "get_job_machine_info":
            if job.state != 3:
                return {"exception": "boards not allocated"}
            return {
                "return": {
                    "width": 8,
                    "height": 8,
                    "connections": [[[0, 0], "127.0.0.1"]],
                    "machine_name": "j",
                    "boards": [[0, 0, 0]],
                }
            }
        if command == "notify_job":
            job.watchers.add(conn)
            return {"return": None}
        if command == "destroy_job":
            if job.state in (1, 3):
                job.state, job.reason = 4, kwargs.get("reason") or ""
            return {"return": None}
        return {"return": None}
