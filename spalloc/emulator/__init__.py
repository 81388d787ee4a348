"""An embedded spalloc server for tests, notebooks and ``--local`` runs.

::

    from spalloc.emulator import Emulator
    with Emulator() as emulator:          # 127.0.0.1, a free port
        host, port = emulator.address

The emulator speaks the v1 protocol like ``spalloc-server`` 1!7.0.0 (PROTOCOL.md), with
board power simulated and the reference's bugs fixed where PROTOCOL.md §9 says so. With
``http_port`` it also serves spalloc v2 (REST, logins, websocket proxy) over the same jobs::

    with Emulator(http_port=0, users="users.toml") as emulator:
        url = emulator.base_url       # "http://127.0.0.1:<port>/spalloc/"
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from spalloc.emulator.controller import EMULATOR_VERSION, Controller, JobInfo
from spalloc.emulator.server import EmulatorServer

if TYPE_CHECKING:
    import socket
    import ssl

    from spalloc.emulator.http import HttpFrontDoor
    from spalloc.emulator.users import Users
    from spalloc.geometry import Board, Machine

__all__ = ["EMULATOR_VERSION", "Emulator", "JobInfo"]

_T = TypeVar("_T")


def _load(machines: Any) -> list[Machine]:
    if machines is None or isinstance(machines, (str, os.PathLike)):
        from spalloc.emulator.machines import default_machines, load_machines

        return list(default_machines() if machines is None else load_machines(machines))
    return list(machines)


async def _cancel_tasks() -> None:
    # Requests still being read when the service stops (a client that sent half a request)
    # must end before the loop closes.
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Emulator:
    """A spalloc server running in a background thread.

    Args:
        machines: None for the defaults, a TOML file path, or Machine objects. With v2, the
            defaults move to free addresses on the first start if another emulator on this
            host holds theirs (logged; see ``docs/emulator.md``); given machines never move.
        host: address to bind (127.0.0.1 unless told otherwise).
        port: 0 picks a free port; see :attr:`port` for the one bound.
        power_delay: seconds a board power on/off takes.
        free_delay: seconds boards stay in quarantine after a job is destroyed.
        max_retired_jobs: how many destroyed jobs are remembered.
        http_port: serve spalloc v2 on this port too (0 picks a free one); None: v1 only.
        tls_cert, tls_key: PEM files; with them v2 is HTTPS and WSS.
        users: v2 accounts: a TOML file, a :class:`~spalloc.emulator.users.Users`, or None
            for the documented loopback-only default (see :mod:`spalloc.emulator.users`).
        keepalive_cap: tests only: every v2 job's keepalive is at most this many seconds.
        wait_limit: longest v2 long-poll, seconds.
        emergency_stop_code: the v2 ``emergencyStop`` ``commandCode`` (None: always refused).

    Raises:
        spalloc.emulator.machines.MachineConfigError: a bad machines file.
        spalloc.emulator.users.UserConfigError: a bad users file.
        ValueError: v2 without a users file on an address other than loopback, or only
            one of tls_cert and tls_key.
    """

    def __init__(
        self,
        machines: str | os.PathLike[str] | Sequence[Machine] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        power_delay: float = 0.0,
        free_delay: float = 0.1,
        max_retired_jobs: int = 1200,
        http_port: int | None = None,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        users: str | os.PathLike[str] | Users | None = None,
        keepalive_cap: float | None = None,
        wait_limit: float = 30.0,
        emergency_stop_code: str | None = None,
    ) -> None:
        self._machines = _load(machines)
        # Only the built-in machines move when their addresses are taken (see start()).
        self._movable = machines is None
        self._http_port = http_port
        self._http_bound: tuple[str, int] | None = None
        self._http: HttpFrontDoor | None = None
        self._ssl: ssl.SSLContext | None = None
        self._http_options = {
            "keepalive_cap": keepalive_cap,
            "wait_limit": wait_limit,
            "emergency_stop_code": emergency_stop_code,
        }
        self._users: Users | None = None
        if http_port is not None:
            from spalloc.emulator.users import Users, default_users, load_users

            if (tls_cert is None) != (tls_key is None):
                raise ValueError("tls_cert and tls_key go together")
            if users is None:
                if not _is_loopback(host):
                    raise ValueError(
                        f"serving v2 on {host} needs a users file (the default "
                        f"account is only for loopback addresses)"
                    )
                self._users = default_users()
            else:
                self._users = users if isinstance(users, Users) else load_users(users)
            if tls_cert is not None and tls_key is not None:
                import ssl

                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(os.fspath(tls_cert), os.fspath(tls_key))
                self._ssl = context
        self._settings = {
            "power_delay": power_delay,
            "free_delay": free_delay,
            "max_retired_jobs": max_retired_jobs,
        }
        self._controller = Controller(self._machines, **self._settings)  # type: ignore[arg-type]
        self._host = host
        self._port = port
        self._bound: tuple[str, int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- life cycle ----------------------------------------------------------------------------

    def start(self, *, keep_state: bool = True, timeout: float | None = 10.0) -> Emulator:
        """Start serving (no-op if running). After :meth:`stop`, rebinds the same port.

        Args:
            keep_state: keep jobs across a stop/start (keepalive timers restart, as in the
                reference's warm restart); False starts afresh from job 1.
            timeout: seconds to wait for the socket to be bound.

        Raises:
            OSError: the address cannot be bound.
        """
        with self._lock:
            if self._thread is not None:
                return self
            if not keep_state:
                self._controller = Controller(self._machines, **self._settings)  # type: ignore[arg-type]
            elif self._bound is not None:
                self._controller.reset_keepalives()
            port = self._bound[1] if self._bound is not None else self._port
            claimed = self._claim_boards()
            loop = asyncio.new_event_loop()
            server = EmulatorServer(self._controller)
            started: concurrent.futures.Future[tuple[str, int]] = concurrent.futures.Future()
            thread = threading.Thread(
                target=self._run,
                args=(loop, server, port, started, claimed),
                name=f"spalloc-emulator-{port}",
                daemon=True,
            )
            thread.start()
            try:
                self._bound = started.result(timeout)
            except BaseException:
                thread.join(timeout)
                loop.close()
                for sock in (claimed or {}).values():
                    sock.close()
                raise
            self._loop, self._server, self._thread = loop, server, thread
            return self

    def _claim_boards(self) -> dict[str, socket.socket] | None:
        """On the first start with v2 and the built-in machines: hold their boards' addresses,
        moving the machines to free networks if another emulator on this host has them."""
        if not self._movable or self._http_port is None or self._bound is not None:
            return None
        from spalloc.emulator._boards import claim_default_machines

        machines, claimed = claim_default_machines()
        if machines[0].board_ips != self._machines[0].board_ips:
            self._machines = machines
            self._controller = Controller(self._machines, **self._settings)  # type: ignore[arg-type]
        return claimed

    def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        server: EmulatorServer,
        port: int,
        started: concurrent.futures.Future[tuple[str, int]],
        claimed: dict[str, socket.socket] | None,
    ) -> None:
        asyncio.set_event_loop(loop)
        try:
            address = loop.run_until_complete(server.start(self._host, port))
            if self._http_port is not None:
                loop.run_until_complete(self._start_http(server, claimed))
        except BaseException as exc:
            loop.run_until_complete(server.stop())
            started.set_exception(exc)
            return
        started.set_result(address)
        loop.run_forever()

    async def _start_http(
        self, server: EmulatorServer, claimed: dict[str, socket.socket] | None
    ) -> None:
        from spalloc.emulator.http import HttpFrontDoor

        assert self._users is not None and self._http_port is not None
        port = self._http_bound[1] if self._http_bound is not None else self._http_port
        http = HttpFrontDoor(
            server,
            self._users,
            ssl_context=self._ssl,
            claimed=claimed,
            **self._http_options,  # type: ignore[arg-type]
        )
        self._http_bound = await http.start(self._host, port)
        self._http = http

    def stop(self, *, timeout: float | None = 10.0) -> None:
        """Stop serving and drop every client (no-op if not running). Jobs are kept."""
        with self._lock:
            loop, server, thread = self._loop, self._server, self._thread
            if loop is None or server is None or thread is None:
                return
            try:
                http = self._http
                if http is not None:
                    asyncio.run_coroutine_threadsafe(http.stop(), loop).result(timeout)
                    self._http = None
                asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout)
                asyncio.run_coroutine_threadsafe(_cancel_tasks(), loop).result(timeout)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout)
                if not thread.is_alive():
                    loop.close()
                self._loop = self._server = self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._thread is not None

    @property
    def host(self) -> str:
        """The bound host (or the requested one before the first start)."""
        return self._bound[0] if self._bound else self._host

    @property
    def port(self) -> int:
        """The bound port (or the requested one before the first start)."""
        return self._bound[1] if self._bound else self._port

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` to connect to."""
        return self.host, self.port

    @property
    def http_address(self) -> tuple[str, int] | None:
        """``(host, port)`` of the v2 service once started, None without one."""
        return self._http_bound

    @property
    def base_url(self) -> str | None:
        """The v2 service's URL, ``http[s]://host:port/spalloc/``; None without v2."""
        if self._http_bound is None:
            return None
        host, port = self._http_bound
        scheme = "https" if self._ssl is not None else "http"
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{port}/spalloc/"

    @property
    def machines(self) -> list[Machine]:
        """The machines served, in priority order."""
        return list(self._machines)

    # --- introspection for tests ----------------------------------------------------------------

    def _call(self, func: Callable[[], _T]) -> _T:
        # Controller state belongs to the loop's thread; ask it there when it runs.
        loop = self._loop
        if loop is None or threading.current_thread() is self._thread:
            return func()
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(func())
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(10.0)

    def board_power(self, machine_name: str, board: Board) -> bool:
        """True if the emulated board is powered on.

        Raises:
            KeyError: no machine of that name.
        """
        return self._call(lambda: self._controller.board_power(machine_name, board))

    def jobs(self) -> list[JobInfo]:
        """Snapshots of the live (queued, power or ready) jobs, oldest first."""
        return self._call(self._controller.jobs)

    def retired_jobs(self) -> dict[int, str | None]:
        """The remembered destroyed jobs and their reasons, oldest first."""
        return self._call(self._controller.retired)
