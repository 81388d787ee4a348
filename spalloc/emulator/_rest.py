"""The REST half of the emulator's v2 service: the resources under ``/srv/spalloc``.

:class:`RestService` answers the service root, the machines, the jobs and their boards'
power and positions from the controller, and holds the long-polls (``wait=true``) until
the controller reports a change. :class:`~spalloc.emulator.http.HttpFrontDoor` builds on it
with the serving itself: routing, error replies, logins and the websocket proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import ssl
from typing import Any

from aiohttp import web

from spalloc.emulator._auth import CSRF_HEADER, Caller, HttpError, Logins, json_reply, text_reply
from spalloc.emulator._jobs import Job
from spalloc.emulator._v2json import (
    job_state,
    machine_detail,
    machine_summary,
    parse_create,
    sub_machine,
    where_is,
)
from spalloc.emulator._where import board_with_ip
from spalloc.emulator.controller import Controller
from spalloc.emulator.controller import Session as V1Session
from spalloc.emulator.users import Users
from spalloc.geometry import Machine
from spalloc.states import JobState

__all__ = ["SERVICE_VERSION", "WAIT_LIMIT", "RestService"]

#: What the service root reports (``major-version``, ``minor-version``, ``revision``).
SERVICE_VERSION = (7, 4, 2)
#: Longest long-poll, seconds (``spalloc.wait``).
WAIT_LIMIT = 30.0

_LIMIT_LIMIT = 200


def _bool(request: web.Request, name: str) -> bool:
    # JAX-RS reads a boolean as Boolean.valueOf does: "true" in any case, else false.
    return request.query.get(name, "false").strip().lower() == "true"


def _int(request: web.Request, name: str, default: int | None = None) -> int:
    text = request.query.get(name)
    if text is None:
        if default is None:
            raise HttpError(400, f"missing query parameter: {name}")
        return default
    try:
        return int(text.strip())
    except ValueError:
        raise HttpError(400, f"{name} must be a whole number") from None


class RestService:
    """The v2 REST resources on *controller*; every method runs in the loop's thread.

    Args:
        controller: the emulator's jobs and machines.
        users: who may log in.
        ssl_context: set when served over TLS (the references handed out say https/wss).
        keepalive_cap: tests only: shorten every v2 job's keepalive to at most this.
        wait_limit: longest long-poll, seconds.
        emergency_stop_code: the ``commandCode`` that stops everything (None: refused).
    """

    def __init__(
        self,
        controller: Controller,
        users: Users,
        *,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_cap: float | None = None,
        wait_limit: float = WAIT_LIMIT,
        emergency_stop_code: str | None = None,
    ) -> None:
        self._controller = controller
        self._ssl = ssl_context
        self._keepalive_cap = keepalive_cap
        self._wait_limit = wait_limit
        self._stop_code = emergency_stop_code
        self._auth = Logins(users, secure=ssl_context is not None)
        self._job_waiters: dict[int, list[asyncio.Future[None]]] = {}
        self._machine_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._list_waiters: list[asyncio.Future[None]] = []

    @property
    def scheme(self) -> str:
        """``https`` with a TLS context, else ``http``."""
        return "https" if self._ssl is not None else "http"

    # --- long-polls ---------------------------------------------------------------------------

    def _wake_polls(self, jobs: list[int], machines: list[str]) -> None:
        """End the long-polls that watch the changed *jobs* and *machines*."""
        for job_id in jobs:
            self._wake(self._job_waiters.pop(job_id, []))
        if jobs:
            self._wake(self._list_waiters)
            self._list_waiters = []
        for name in machines:
            self._wake(self._machine_waiters.pop(name, []))

    @staticmethod
    def _wake(futures: list[asyncio.Future[None]]) -> None:
        for future in futures:
            if not future.done():
                future.set_result(None)

    def _wake_all(self) -> None:
        for futures in [
            *self._job_waiters.values(),
            *self._machine_waiters.values(),
            self._list_waiters,
        ]:
            self._wake(futures)
        self._job_waiters.clear()
        self._machine_waiters.clear()
        self._list_waiters = []

    async def _wait(self, waiters: list[asyncio.Future[None]]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(future)
        try:
            await asyncio.wait_for(future, self._wait_limit)
        except asyncio.TimeoutError:
            pass
        finally:
            with contextlib.suppress(ValueError):
                waiters.remove(future)

    # --- the resources ------------------------------------------------------------------------

    def _base(self, request: web.Request) -> str:
        return f"{self.scheme}://{request.host}/spalloc/srv/spalloc/"

    def _proxy_base(self, request: web.Request) -> str:
        scheme = "wss" if self._ssl is not None else "ws"
        return f"{scheme}://{request.host}/spalloc/proxy/"

    async def _root(self, request: web.Request) -> web.StreamResponse:
        caller = self._auth.caller(request, csrf=False)
        session_id, session = caller.session_id, caller.session
        if session is None:
            session_id, session = self._auth.new_session(caller.user)
        base = self._base(request)
        major, minor, revision = SERVICE_VERSION
        response = json_reply(
            {
                "version": {"major-version": major, "minor-version": minor, "revision": revision},
                "jobs-ref": base + "jobs",
                "machines-ref": base + "machines",
                "csrf-header": CSRF_HEADER,
                "csrf-token": session.csrf,
            }
        )
        if session_id != caller.session_id and session_id is not None:
            self._auth.set_cookie(response, session_id)
        return response

    async def _emergency_stop(self, request: web.Request) -> web.StreamResponse:
        self._auth.caller(request, csrf=False)
        code = request.query.get("commandCode", "")
        if self._stop_code is None or not hmac.compare_digest(
            code.encode(), self._stop_code.encode()
        ):
            raise HttpError(403, "bad command code")
        for job_id in self._controller.job_ids():
            job = self._controller.find_job(job_id)
            if job is not None and job.state is not JobState.destroyed:
                self._controller.destroy_v2(job, "emergency stop")
        return text_reply(200, "")

    async def _machines(self, request: web.Request) -> web.StreamResponse:
        caller = self._auth.caller(request, csrf=False)
        base = self._base(request)
        return json_reply(
            {
                "machines": [
                    machine_summary(m, base, admin=caller.user.admin)
                    for m in self._controller.machines
                ]
            }
        )

    def _machine_named(self, name: str) -> Machine:
        machine = self._controller.machine(name)
        if machine is None:
            raise HttpError(404, "no such machine")
        return machine

    async def _machine(self, request: web.Request, name: str) -> web.StreamResponse:
        caller = self._auth.caller(request, csrf=False)
        machine = self._machine_named(name)
        if _bool(request, "wait"):
            await self._wait(self._machine_waiters.setdefault(name, []))
        return json_reply(machine_detail(machine, self._base(request), admin=caller.user.admin))

    async def _machine_where(
        self, request: web.Request, name: str, kind: str
    ) -> web.StreamResponse:
        self._auth.caller(request, csrf=False)
        machine = self._machine_named(name)
        controller = self._controller
        if kind == "logical-board":
            kwargs: dict[str, Any] = {
                "machine": name,
                "x": _int(request, "x"),
                "y": _int(request, "y"),
                "z": _int(request, "z", 0),
            }
        elif kind == "physical-board":
            kwargs = {
                "machine": name,
                "cabinet": _int(request, "cabinet", 0),
                "frame": _int(request, "frame", 0),
                "board": _int(request, "board"),
            }
        elif kind == "chip":
            kwargs = {"machine": name, "chip_x": _int(request, "x"), "chip_y": _int(request, "y")}
        else:
            address = request.query.get("address", "")
            board = board_with_ip(machine, address)
            if board is None:
                raise HttpError(404, "failed to locate board")
            kwargs = {"machine": name, "x": board[0], "y": board[1], "z": board[2]}
        found = controller.handle(V1Session(), "where_is", [], kwargs)
        if found is None:
            raise HttpError(404, "failed to locate board")
        return json_reply(where_is(found, self._base(request)))

    async def _list_jobs(self, request: web.Request) -> web.StreamResponse:
        self._auth.caller(request, csrf=False)
        limit = _int(request, "limit", 100)
        start = _int(request, "start", 0)
        if limit > _LIMIT_LIMIT or limit < 1:
            raise HttpError(400, f"limit must not be bigger than {_LIMIT_LIMIT}")
        if start < 0:
            raise HttpError(400, "start must not be less than 0")
        deleted = _bool(request, "deleted")
        if _bool(request, "wait"):
            await self._wait(self._list_waiters)
        self._controller.poll()
        ids = self._controller.job_ids(deleted=deleted)[start : start + limit]
        base = self._base(request)
        doc: dict[str, Any] = {"jobs": [f"{base}jobs/{job_id}" for job_id in ids]}
        links = {}
        query = {k: v for k, v in request.query.items()}
        query["wait"] = "false"
        if start > 0:
            links["prev"] = str(
                request.url.with_query(dict(query, start=str(max(start - limit, 0))))
            )
        if len(ids) == limit:
            links["next"] = str(request.url.with_query(dict(query, start=str(start + limit))))
        doc.update(links)
        headers = {"Link": ", ".join(f'<{url}>; rel="{rel}"' for rel, url in links.items())}
        return json_reply(doc, headers=headers if links else None)

    async def _readjson_reply(self, request: web.Request) -> Any:
        if request.content_type != "application/json":
            raise HttpError(415, "the request body must be application/json")
        raw = await request.read()
        try:
            return json.loads(
                raw.decode("utf-8"), parse_constant=lambda name: _refuse_constant(name)
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise HttpError(400, f"malformed JSON: {exc}") from None

    async def _create_job(self, request: web.Request) -> web.StreamResponse:
        caller = self._auth.caller(request, csrf=True)
        body = await self._readjson_reply(request)
        controller = self._controller
        parsed = parse_create(
            body,
            user=caller.user.name,
            groups=caller.user.groups,
            admin=caller.user.admin,
            machines=controller.machines,
            keepalive_cap=self._keepalive_cap,
        )
        session = V1Session(host=_remote(request))
        job_id = controller.create_job_v2(session, parsed.args, parsed.kwargs, parsed.original)
        ref = f"{self._base(request)}jobs/{job_id}"
        return json_reply({"job-id": job_id, "job-ref": ref}, 201, {"Location": ref})

    def _job_for(self, caller: Caller, job_id: str) -> Job:
        job = self._controller.find_job(int(job_id))
        if job is None:
            raise HttpError(404, "no such job")
        if not caller.user.admin and job.spec.owner != caller.user.name:
            raise HttpError(403, "access denied: not your job")
        return job

    def _live(self, job: Job) -> Job:
        """The allocated live job, or 204 (the Java server's "not allocated yet")."""
        if job.state is JobState.destroyed or job.allocation is None:
            raise HttpError(204)
        return job

    async def _job(self, request: web.Request, job_id: str) -> web.StreamResponse:
        caller = self._auth.caller(request, csrf=False)
        self._controller.poll()
        job = self._job_for(caller, job_id)
        if _bool(request, "wait") and job.state is not JobState.destroyed:
            await self._wait(self._job_waiters.setdefault(job.job_id, []))
            self._controller.poll()
            job = self._job_for(caller, job_id)
        return json_reply(job_state(job, self._base(request), proxy_base=self._proxy_base(request)))

    async def _delete_job(self, request: web.Request, job_id: str) -> web.StreamResponse:
        caller = self._auth.caller(request, csrf=True)
        job = self._job_for(caller, job_id)
        # The Java parameter has @DefaultValue(""), so its "unspecified" fallback never applies.
        reason = request.query.get("reason", "")
        if job.state is not JobState.destroyed:
            self._controller.destroy_v2(job, reason)
        return web.Response(status=204)

    def _touch(self, request: web.Request, job: Job) -> None:
        if job.state is not JobState.destroyed:
            self._controller.handle(
                V1Session(host=_remote(request)), "job_keepalive", [job.job_id], {}
            )

    async def _keepalive(self, request: web.Request, job_id: str) -> web.StreamResponse:
        caller = self._auth.caller(request, csrf=True)
        await request.read()  # any body is accepted (SpiNNMan sends "alive")
        self._touch(request, self._job_for(caller, job_id))
        return text_reply(200, "ok")

    async def _job_machine(self, request: web.Request, job_id: str) -> web.StreamResponse:
        caller = self._auth.caller(request, csrf=False)
        job = self._job_for(caller, job_id)
        self._touch(request, job)
        return json_reply(sub_machine(self._live(job), self._base(request)))

    async def _get_power(self, request: web.Request, job_id: str) -> web.StreamResponse:
        caller = self._auth.caller(request, csrf=False)
        job = self._job_for(caller, job_id)
        self._touch(request, job)
        return json_reply({"power": "ON" if self._live(job).power else "OFF"})

    async def _set_power(self, request: web.Request, job_id: str) -> web.StreamResponse:
        caller = self._auth.caller(request, csrf=True)
        body = await self._readjson_reply(request)
        if not isinstance(body, dict) or body.get("power") not in ("ON", "OFF"):
            raise HttpError(400, "bad power description")
        job = self._job_for(caller, job_id)
        self._touch(request, job)
        self._live(job)
        command = "power_on_job_boards" if body["power"] == "ON" else "power_off_job_boards"
        self._controller.handle(V1Session(host=_remote(request)), command, [job.job_id], {})
        return web.Response(status=202)

    async def _job_chip(self, request: web.Request, job_id: str) -> web.StreamResponse:
        caller = self._auth.caller(request, csrf=False)
        job = self._job_for(caller, job_id)
        x, y = _int(request, "x", 0), _int(request, "y", 0)
        self._touch(request, job)
        self._live(job)
        found = self._controller.handle(
            V1Session(), "where_is", [], {"job_id": job.job_id, "chip_x": x, "chip_y": y}
        )
        if found is None:
            raise HttpError(204)
        return json_reply(where_is(found, self._base(request)))

    async def _report_issue(self, request: web.Request, job_id: str) -> web.StreamResponse:
        caller = self._auth.caller(request, csrf=True)
        body = await self._readjson_reply(request)
        if not isinstance(body, dict) or not isinstance(body.get("issue"), str):
            raise HttpError(400, "bad issue description")
        self._job_for(caller, job_id)
        return json_reply({"action": "noted (the emulator takes no action on issue reports)"})

    async def _unsupported(
        self, request: web.Request, job_id: str, what: str
    ) -> web.StreamResponse:
        self._auth.caller(request, csrf=request.method != "GET")
        raise HttpError(501, f"{what} is not supported by the emulator")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _remote(request: web.Request) -> str:
    return request.remote or "127.0.0.1"
