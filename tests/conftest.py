"""Shared fixtures: a running emulator, a factory for more, Appendix A's machines, and a
raw-socket line client for speaking the protocol byte by byte.

Appendix A's machines keep the reference's IPs (10.11.0.0 and 10.13.0.0 bases) so that
replies can be compared with PROTOCOL.md verbatim; these addresses are only strings in
replies and are never contacted. Everything listens on 127.0.0.1, port 0.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spalloc.emulator import Emulator
from spalloc.geometry import Machine, default_board_locations, standard_ip
from spalloc.service import JobRequest

#: Seconds any single wait in a test may take before it fails.
WAIT = 5.0

#: The 17 commands of the v1 protocol (PROTOCOL.md), in its order.
V1_COMMANDS = (
    "version",
    "create_job",
    "job_keepalive",
    "get_job_state",
    "get_job_machine_info",
    "power_on_job_boards",
    "power_off_job_boards",
    "destroy_job",
    "notify_job",
    "no_notify_job",
    "notify_machine",
    "no_notify_machine",
    "list_jobs",
    "list_machines",
    "get_board_position",
    "get_board_at_position",
    "where_is",
)


#: get_job_state's answer for a job the server does not know (PROTOCOL.md §2).
UNKNOWN = {
    "state": 0,
    "power": None,
    "keepalive": None,
    "reason": None,
    "start_time": None,
    "keepalivehost": None,
}
#: get_job_machine_info's answer for a job with no boards.
NO_INFO = {"width": None, "height": None, "connections": None, "machine_name": None, "boards": None}


def destroyed(reason: str | None) -> dict[str, Any]:
    """get_job_state's answer for a destroyed job."""
    return dict(UNKNOWN, state=4, reason=reason)


def job_request(*args: int, owner: str = "tests", **changes: Any) -> JobRequest:
    """A service-level request for ``Job(*args)`` with the client's defaults (keepalive 60 s,
    the "default" tag), as the services receive it; *changes* replace fields."""
    base = JobRequest(
        args=args,
        owner=owner,
        keepalive=60.0,
        machine=None,
        tags=("default",),
        min_ratio=0.333,
        max_dead_boards=0,
        max_dead_links=None,
        require_torus=False,
    )
    return base._replace(**changes)


def standard_machine(
    name: str,
    tags: set[str],
    width: int,
    height: int,
    base_ip: str,
    *,
    cabinet: int = 0,
    dead_boards: frozenset[tuple[int, int, int]] = frozenset(),
    dead_links: frozenset[tuple[int, int, int, int]] = frozenset(),
) -> Machine:
    """A machine in the default physical layout with standard IPs; dead boards get neither."""
    locations = {
        board: loc
        for board, loc in default_board_locations(width, height, cabinet).items()
        if board not in dead_boards
    }
    return Machine(
        name=name,
        tags=frozenset(tags),
        width=width,
        height=height,
        dead_boards=dead_boards,
        dead_links=dead_links,
        board_locations=locations,
        board_ips={board: standard_ip(base_ip, *loc) for board, loc in locations.items()},
    )


def single_board(name: str, tags: set[str], ip: str) -> Machine:
    """A one-board machine as the reference's ``Machine.single_board`` builds it."""
    return Machine(
        name=name,
        tags=frozenset(tags),
        width=1,
        height=1,
        dead_boards=frozenset({(0, 0, 1), (0, 0, 2)}),
        board_locations={(0, 0, 0): (0, 0, 0)},
        board_ips={(0, 0, 0): ip},
    )


def make_appendix_machines() -> list[Machine]:
    """PROTOCOL.md Appendix A: ``m`` (2x2), ``md`` (2x2, faulty, cabinet 1), ``board``."""
    return [
        standard_machine("m", {"default"}, 2, 2, "10.11.0.0"),
        standard_machine(
            "md",
            {"dead"},
            2,
            2,
            "10.13.0.0",
            cabinet=1,
            dead_boards=frozenset({(1, 1, 1)}),
            dead_links=frozenset({(0, 0, 0, 2), (0, 0, 2, 5)}),
        ),
        single_board("board", {"single"}, "10.12.0.2"),
    ]


@pytest.fixture
def appendix_machines() -> list[Machine]:
    """Appendix A's three machines, in its config order."""
    return make_appendix_machines()


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., Emulator]]:
    """Call with Emulator keyword arguments; returns a started emulator, stopped at teardown."""
    made: list[Emulator] = []

    def factory(machines: Any = None, **kwargs: Any) -> Emulator:
        kwargs.setdefault("free_delay", 0.01)
        emulator = Emulator(machines, **kwargs)
        made.append(emulator)
        return emulator.start()

    yield factory
    for emulator in made:
        emulator.stop()


@pytest.fixture
def emulator(emulator_factory: Callable[..., Emulator]) -> Emulator:
    """A started emulator with the default machines, no power delay, a short quarantine."""
    return emulator_factory(power_delay=0.0, free_delay=0.01)


class LineClient:
    """A deliberately dumb protocol client over a raw socket (bounded waits only)."""

    def __init__(self, address: tuple[str, int], timeout: float = WAIT) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.timeout = timeout
        self._buffer = b""
        self.notifications: list[dict[str, Any]] = []

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> LineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, command: str, *args: Any, **kwargs: Any) -> None:
        line = json.dumps({"command": command, "args": list(args), "kwargs": kwargs})
        self.send_raw(line.encode() + b"\n")

    def read_line(self, timeout: float | None = None) -> bytes | None:
        """The next raw line without its LF, or None if the server closed the connection."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no line from the emulator in time")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def read(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message, decoded; None if the connection closed."""
        line = self.read_line(timeout)
        return None if line is None else json.loads(line)

    def reply(self, timeout: float | None = None) -> dict[str, Any]:
        """The next ``return``/``exception`` message; notifications before it are kept."""
        for _ in range(10_000):
            message = self.read(timeout)
            if message is None:
                raise ConnectionError("emulator closed the connection")
            if "return" in message or "exception" in message:
                return message
            self.notifications.append(message)
        raise AssertionError("too many notifications")

    def call(self, command: str, *args: Any, **kwargs: Any) -> Any:
        """Send a command and return its value; an exception reply raises RuntimeError."""
        self.send(command, *args, **kwargs)
        message = self.reply()
        if "exception" in message:
            raise RuntimeError(message["exception"])
        return message["return"]

    def error(self, command: str, *args: Any, **kwargs: Any) -> str:
        """Send a command that must fail; return its exception text."""
        self.send(command, *args, **kwargs)
        message = self.reply()
        assert "exception" in message, message
        return str(message["exception"])

    def is_closed(self, timeout: float | None = None) -> bool:
        """True once the server has closed the connection (unread data is discarded)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return True
            except TimeoutError:
                return False
            if not chunk:
                return True
        return False

    def wait_notifications(self, timeout: float = 0.3) -> list[dict[str, Any]]:
        """Collect notifications until none arrives for *timeout* seconds."""
        got = list(self.notifications)
        self.notifications.clear()
        for _ in range(10_000):
            try:
                message = self.read(timeout)
            except TimeoutError:
                return got
            if message is None:
                return got
            got.append(message)
        return got


@pytest.fixture
def connect() -> Iterator[Callable[..., LineClient]]:
    """``connect(emulator_or_address)`` → a LineClient, closed at teardown."""
    clients: list[LineClient] = []

    def factory(target: Any, timeout: float = WAIT) -> LineClient:
        address = target.address if hasattr(target, "address") else target
        client = LineClient(address, timeout)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


def wait_for(predicate: Callable[[], Any], timeout: float = WAIT, interval: float = 0.01) -> Any:
    """Poll *predicate* until it returns something truthy; fail after *timeout*."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture
def isolated_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No config file or ``SPALLOC_*`` variable of the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.startswith("SPALLOC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "site"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)


# --- spalloc v2 (issue 11): the emulator over HTTPS with a users file ---------------------------


@pytest.fixture
def v2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An emulator serving v1 and v2 (HTTPS, throw-away CA, users file); yields a
    ``_v2.V2Server``: ``base_url``, ``users`` (name -> credentials), ``ca_path``, ``emulator``."""
    from tests._v2 import running_v2_server

    with running_v2_server(tmp_path_factory.mktemp("v2")) as server:
        yield server
