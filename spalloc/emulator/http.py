"""The emulator's v2 front door: spalloc's REST service and websocket proxy, on aiohttp.

It serves the same :class:`~spalloc.emulator.controller.Controller` as the v1 TCP server, on
the same asyncio loop, so a job made over one protocol shows in the other. Paths, JSON and
status codes follow the Java server (V2_PROTOCOL.md §1); ``docs/emulator.md`` lists where it
deliberately differs. The REST resources themselves are in :mod:`spalloc.emulator._rest`;
this module binds the socket, routes requests, turns errors into replies, follows the
controller's changes and serves the websocket proxy. Importing this module imports aiohttp
(the ``server`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from spalloc._proxywire import SERVER_ERROR
from spalloc.emulator._auth import HttpError, text_reply
from spalloc.emulator._boards import BoardResponder
from spalloc.emulator._jobs import CommandError, Job
from spalloc.emulator._proxy import ProxySession
from spalloc.emulator._rest import SERVICE_VERSION, WAIT_LIMIT, RestService
from spalloc.emulator.server import EmulatorServer
from spalloc.emulator.users import Users
from spalloc.geometry import Board, Machine
from spalloc.states import JobState

__all__ = ["MAX_BODY", "SERVICE_VERSION", "WAIT_LIMIT", "HttpFrontDoor"]

#: Largest request body accepted (bigger gets 413).
MAX_BODY = 1 << 20


class HttpFrontDoor(RestService):
    """Serve v2 on *server*'s loop and controller; every method runs in the loop's thread.

    Args:
        server: the v1 server (its controller, timers and change listeners are shared).
        users: who may log in.
        ssl_context: serve HTTPS and WSS with it; plain HTTP and WS without.
        keepalive_cap: tests only: shorten every v2 job's keepalive to at most this.
        wait_limit: longest long-poll, seconds.
        emergency_stop_code: the ``commandCode`` that stops everything (None: refused).
        claimed: board sockets already bound (by IP), see
            :func:`~spalloc.emulator._boards.claim_boards`; closed when the door stops.
    """

    def __init__(
        self,
        server: EmulatorServer,
        users: Users,
        *,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_cap: float | None = None,
        wait_limit: float = WAIT_LIMIT,
        emergency_stop_code: str | None = None,
        claimed: dict[str, socket.socket] | None = None,
    ) -> None:
        super().__init__(
            server.controller,
            users,
            ssl_context=ssl_context,
            keepalive_cap=keepalive_cap,
            wait_limit=wait_limit,
            emergency_stop_code=emergency_stop_code,
        )
        self._server = server
        self._proxies: dict[int, set[ProxySession]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._boards: BoardResponder | None = None
        self._claimed = claimed
        self._bound: tuple[str, int] | None = None
        self._routes = self._route_table()

    # --- life cycle ---------------------------------------------------------------------

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Bind and serve; returns the bound (host, port)."""
        # The boards of jobs kept across a restart listen before anything is served, and
        # before this coroutine first yields (the v1 server is already accepting).
        self._boards = BoardResponder(self._board_answers, self._board_allocated, self._claimed)
        self._claimed = None  # the responder's now
        self._server.listeners.append(self._on_changes)
        for job_id in self._controller.job_ids():
            self._sync_boards(job_id)
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._errors])
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        try:
            await runner.setup()
            site = web.TCPSite(runner, host, port, ssl_context=self._ssl, reuse_address=True)
            await site.start()
        except BaseException:  # e.g. the port is taken: leave no board socket behind
            with contextlib.suppress(ValueError):
                self._server.listeners.remove(self._on_changes)
            self._boards.close()
            await runner.cleanup()
            raise
        self._runner = runner
        name = runner.addresses[0]
        self._bound = (str(name[0]), int(name[1]))
        await self._boards.settled()  # and are read from the moment start() returns
        return self._bound

    async def stop(self) -> None:
        """Close every websocket, wake every long-poll, stop serving."""
        with contextlib.suppress(ValueError):
            self._server.listeners.remove(self._on_changes)
        for sessions in list(self._proxies.values()):
            for proxy in list(sessions):
                proxy.close_channels()
                with contextlib.suppress(Exception):
                    await proxy.ws.close(code=1001, message=b"server stopping")
        self._wake_all()
        if self._boards is not None:
            self._boards.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- changes from the controller ------------------------------------------------------

    def _on_changes(self, jobs: list[int], machines: list[str]) -> None:
        self._wake_polls(jobs, machines)
        for job_id in jobs:
            job = self._sync_boards(job_id)
            if (job is None or job.state is JobState.destroyed) and job_id in self._proxies:
                for proxy in self._proxies.pop(job_id):
                    proxy.close_channels()
                    task = asyncio.get_running_loop().create_task(
                        proxy.ws.close(code=1000, message=b"job destroyed")
                    )
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    def _sync_boards(self, job_id: int) -> Job | None:
        job = self._controller.find_job(job_id)
        if (
            job is not None
            and job.allocation is not None
            and job.machine is not None
            and self._boards is not None
        ):
            self._boards.sync(job.machine, job.allocation.boards)
        return job

    def _board_answers(self, machine: Machine, board: Board) -> bool:
        job = self._controller.owner_of(machine, board)
        return (
            job is not None
            and job.state is JobState.ready
            and self._controller.board_power(machine.name, board)
        )

    def _board_allocated(self, machine: Machine, board: Board) -> bool:
        return self._controller.owner_of(machine, board) is not None

    # --- dispatch, errors, authentication ---------------------------------------------------

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except HttpError as exc:
            response = (
                web.Response(status=204)
                if exc.status == 204
                else text_reply(exc.status, exc.text, exc.headers)
            )
        except CommandError as exc:
            response = text_reply(400, str(exc))
        except web.HTTPException as exc:
            # aiohttp's own refusals (413 body too large...) also get plain-text bodies.
            response = text_reply(exc.status, exc.reason or "", None)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as exc:  # a bug of ours must cost only this request
            response = text_reply(500, f"unexpected server problem: {type(exc).__name__}: {exc}")
        finally:
            # The request may have changed jobs: rearm timers, tell v1 subscribers.
            self._server.after_activity()
        return response

    def _route_table(self) -> list[tuple[re.Pattern[str], dict[str, Callable[..., Any]]]]:
        table: list[tuple[str, dict[str, Callable[..., Any]]]] = [
            (r"system/login\.html", {"GET": self._auth.login_page}),
            (r"system/perform_login", {"POST": self._auth.perform_login}),
            (r"system/perform_logout", {"GET": self._auth.logout, "POST": self._auth.logout}),
            (r"proxy/(\d+)", {"GET": self._proxy}),
            (r"srv/spalloc", {"GET": self._root}),
            (r"srv/spalloc/emergencyStop", {"GET": self._emergency_stop}),
            (r"srv/spalloc/machines", {"GET": self._machines}),
            (r"srv/spalloc/machines/([^/]+)", {"GET": self._machine}),
            (
                r"srv/spalloc/machines/([^/]+)/(logical-board|physical-board|chip|board-ip)",
                {"GET": self._machine_where},
            ),
            (r"srv/spalloc/jobs", {"GET": self._list_jobs, "POST": self._create_job}),
            (r"srv/spalloc/jobs/(\d+)", {"GET": self._job, "DELETE": self._delete_job}),
            (r"srv/spalloc/jobs/(\d+)/keepalive", {"PUT": self._keepalive}),
            (r"srv/spalloc/jobs/(\d+)/machine", {"GET": self._job_machine}),
            (
                r"srv/spalloc/jobs/(\d+)/machine/power",
                {"GET": self._get_power, "POST": self._set_power},
            ),
            (r"srv/spalloc/jobs/(\d+)/chip", {"GET": self._job_chip}),
            (r"srv/spalloc/jobs/(\d+)/report-issue", {"POST": self._report_issue}),
            (
                r"srv/spalloc/jobs/(\d+)/(memory|fast-data-write|fast-data-read|router)",
                {"GET": self._unsupported, "POST": self._unsupported, "DELETE": self._unsupported},
            ),
        ]
        return [(re.compile(pattern), methods) for pattern, methods in table]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if not path.startswith("/spalloc/"):
            raise HttpError(404, "not found")
        # Tolerate doubled and trailing slashes (SpiNNMan asks for "jobs//1/").
        rest = "/".join(part for part in path[len("/spalloc/") :].split("/") if part)
        for pattern, methods in self._routes:
            match = pattern.fullmatch(rest)
            if match is None:
                continue
            handler = methods.get(request.method)
            if handler is None:
                raise HttpError(405, "method not allowed", {"Allow": ", ".join(sorted(methods))})
            result: web.StreamResponse = await handler(request, *match.groups())
            return result
        raise HttpError(404, "not found")

    # --- the proxy ------------------------------------------------------------------------

    async def _proxy(self, request: web.Request, job_id: str) -> web.StreamResponse:
        caller = self._auth.caller(request, csrf=True)
        job = self._job_for(caller, job_id)
        ws = web.WebSocketResponse(max_msg_size=MAX_BODY, autoping=True)
        await ws.prepare(request)
        if (
            job.state not in (JobState.power, JobState.ready)
            or job.allocation is None
            or job.machine is None
        ):
            await ws.close(code=SERVER_ERROR, message=b"job not in state where proxying permitted")
            return ws
        hosts = {chip: ip for chip, ip in job.connections() if ip is not None}
        proxy = ProxySession(ws, hosts)
        self._proxies.setdefault(job.job_id, set()).add(proxy)
        try:
            await proxy.run()
        finally:
            sessions = self._proxies.get(job.job_id)
            if sessions is not None:
                sessions.discard(proxy)
                if not sessions:
                    del self._proxies[job.job_id]
        return ws
