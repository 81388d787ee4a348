"""Job against the emulator over real loopback sockets: the seed's examples, life cycle,
keepalive, reconnection, and one test for each official-client bug we must not have."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from spalloc import (
    IncompatibleServerError,
    Job,
    JobDestroyedError,
    JobState,
    ProtocolClient,
    ProtocolError,
    ProtocolTimeoutError,
    SpallocServerException,
    StateChangeTimeoutError,
)
from spalloc.emulator import Emulator
from spalloc.geometry import Machine, default_board_locations, standard_ip
from tests.conftest import wait_for

WAIT = 5.0


def machine(name: str, width: int, height: int, base_ip: str, cabinet: int = 0) -> Machine:
    locations = default_board_locations(width, height, cabinet)
    return Machine(
        name=name,
        tags=frozenset({"default"}),
        width=width,
        height=height,
        board_locations=locations,
        board_ips={b: standard_ip(base_ip, *loc) for b, loc in locations.items()},
    )


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Callable[[Emulator], None]:
    """Point the config at an emulator through SPALLOC_* only (no files anywhere)."""
    for key in list(os.environ):
        if key.startswith("SPALLOC_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "site"))

    def use(emulator: Emulator, **extra: Any) -> None:
        settings = {
            "hostname": emulator.host,
            "port": emulator.port,
            "owner": "test@example",
            "reconnect_delay": 0.1,
            "timeout": WAIT,
            **extra,
        }
        for key, value in settings.items():
            monkeypatch.setenv("SPALLOC_" + key.upper(), str(value))

    return use


@pytest.fixture
def emu(emulator: Emulator, env: Callable[..., None]) -> Emulator:
    """The default emulator, configured as the Job's server."""
    env(emulator)
    return emulator


class Raw:
    """A tiny raw-socket client for setting the scene (occupying boards, destroying jobs)."""

    def __init__(self, emulator: Any) -> None:
        self.sock = socket.create_connection(emulator.address, timeout=WAIT)
        self.file = self.sock.makefile("rwb")

    def call(self, command: str, *args: Any, **kwargs: Any) -> Any:
        self.file.write(
            json.dumps({"command": command, "args": list(args), "kwargs": kwargs}).encode() + b"\n"
        )
        self.file.flush()
        for _ in range(1000):
            message = json.loads(self.file.readline())
            if "return" in message:
                return message["return"]
            if "exception" in message:
                raise RuntimeError(message["exception"])
        raise AssertionError("no reply")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def raw(emulator: Emulator) -> Iterator[Raw]:
    client = Raw(emulator)
    yield client
    client.close()


def occupy_machine(raw: Raw) -> int:
    """Take the whole default 4x2 machine so that the next default job queues."""
    job_id = raw.call("create_job", 4, 2, owner="hog", keepalive=None)
    assert raw.call("get_job_state", job_id)["state"] in (2, 3)
    return int(job_id)


def eventually(predicate: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    for _ in range(100_000):
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def record_connected(job: Job) -> list[bool]:
    """Every value of ``snapshot.connected`` from now on (a reconnection can be quicker than
    any poll of the snapshot)."""
    seen: list[bool] = []
    job.add_state_listener(lambda j: seen.append(j.snapshot.connected))
    return seen


def keepalive_threads(job_id: int | None) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == f"spalloc-job-{job_id}-keepalive"]


# --- the seed's examples, verbatim ------------------------------------------------------------


def my_boot(hostname: Any, width: Any, height: Any) -> None:
    assert isinstance(hostname, str) and width > 0 and height > 0


def my_application(hostname: Any) -> None:
    assert isinstance(hostname, str)


@pytest.fixture
def seed_emu(emulator_factory: Callable[..., Emulator], env: Callable[..., None]) -> Emulator:
    # "m" is big enough for every example; "t" is a 4x2 machine a torus request can fill.
    emulator = emulator_factory(
        [machine("m", 4, 5, "10.11.0.0"), machine("t", 4, 2, "10.12.0.0", cabinet=2)]
    )
    env(emulator)
    return emulator


def test_seed_quick_start(seed_emu: Emulator) -> None:
    from spalloc import Job

    with Job(3) as j:
        my_boot(j.hostname, j.width, j.height)
        my_application(j.hostname)
    assert j.state is JobState.destroyed
    with Job(6) as j:
        my_boot(j.hostname, j.width, j.height)
        my_application(j.hostname)
    with Job() as j:
        my_boot(j.hostname, j.width, j.height)
        my_application(j.hostname)
    assert seed_emu.jobs() == []


def test_seed_fine_grained(seed_emu: Emulator) -> None:
    from spalloc import Job

    j = Job(6)
    j.wait_until_ready()
    my_boot(j.hostname, j.width, j.height)
    my_application(j.hostname)
    j.destroy()
    assert j.state is JobState.destroyed


@pytest.mark.parametrize(
    "make,boards",
    [
        (lambda: Job(), 1),
        (lambda: Job(1), 1),
        (lambda: Job(4), 6),
        (lambda: Job(7, min_ratio=0.5), 12),
        (lambda: Job(4, 5), 60),
        (lambda: Job(4, 2, require_torus=True), 24),
        (lambda: Job(3, 2, 1, machine="m"), 1),
    ],
)
def test_seed_constructor_styles(seed_emu: Emulator, make: Callable[[], Job], boards: int) -> None:
    job = make()
    try:
        job.wait_until_ready(timeout=WAIT)
        assert job.boards is not None and len(job.boards) >= boards
    finally:
        job.destroy()
    eventually(lambda: seed_emu.jobs() == [])


def test_seed_specific_board(seed_emu: Emulator) -> None:
    with Job(3, 2, 1, machine="m") as j:
        assert j.boards == [[3, 2, 1]] and j.machine_name == "m"
        assert j.width == 8 and j.height == 8


def test_seed_resume_job_123(seed_emu: Emulator) -> None:
    raw = Raw(seed_emu)
    try:
        for _ in range(200):  # create jobs until the server hands out ID 123
            job_id = raw.call("create_job", owner="filler", keepalive=None)
            if job_id == 123:
                break
            raw.call("destroy_job", job_id)
        assert job_id == 123
        j = Job(resume_job_id=123)
        assert j.id == 123 and j.state is JobState.ready
        assert j.keepalive is None  # taken from the server
        j.destroy()
        assert raw.call("get_job_state", 123)["state"] == int(JobState.destroyed)
    finally:
        raw.close()


def test_resume_missing_job_raises(emu: Emulator) -> None:
    with pytest.raises(JobDestroyedError, match="does not exist"):
        Job(resume_job_id=999)


# --- life cycle --------------------------------------------------------------------------------


def test_life_cycle_power_and_where_is(
    emulator_factory: Callable[..., Emulator], env: Callable[..., None]
) -> None:
    emulator = emulator_factory(power_delay=0.2)
    env(emulator)
    job = Job(1, keepalive=5.0)
    try:
        assert job.state in (JobState.power, JobState.ready)
        job.wait_until_ready(timeout=WAIT)
        assert job.power is True
        board = tuple(job.boards[0])  # type: ignore[index]
        machine_name = job.machine_name
        assert machine_name is not None
        assert emulator.board_power(machine_name, board)
        location = next(m for m in emulator.machines if m.name == machine_name).location(board)
        assert job.where_is_machine(0, 0) == location
        with pytest.raises(ValueError):
            job.where_is_machine(1000, 1000)

        job.set_power(False)
        assert job.state is JobState.power  # the wait below must not return at once
        job.wait_until_ready(timeout=WAIT)
        assert job.power is False
        assert not emulator.board_power(machine_name, board)

        job.set_power(True)
        job.wait_until_ready(timeout=WAIT)
        assert job.power is True and emulator.board_power(machine_name, board)

        job.reset()
        assert job.wait_for_state_change(JobState.power, timeout=WAIT) is JobState.ready
        assert job.power is True
    finally:
        job.destroy("all done")
    assert job.state is JobState.destroyed
    assert job.reason == "all done"
    assert job.snapshot.connected is False
    assert job.hostname is not None  # last known state after destroy
    assert keepalive_threads(job.id) == []


def test_resume_from_second_process(emu: Emulator) -> None:
    job = Job(1, keepalive=5.0)
    try:
        job.wait_until_ready(timeout=WAIT)
        code = (
            "import sys\n"
            "from spalloc import Job\n"
            f"j = Job(resume_job_id={job.id}, hostname={emu.host!r}, port={emu.port},"
            " config_filenames=[])\n"
            "print(j.state.name, j.hostname, j.keepalive)\n"
            "j.close()\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ},
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["ready", str(job.hostname), "5.0"]
        assert job.state is JobState.ready  # close() in the other process kept the job
    finally:
        job.destroy()


def test_destroyed_by_another_client(emu: Emulator, raw: Raw) -> None:
    occupy_machine(raw)
    job = Job(1)
    try:
        assert job.state is JobState.queued
        threading.Timer(0.2, raw.call, ("destroy_job", job.id, "go away")).start()
        with pytest.raises(JobDestroyedError) as info:
            job.wait_until_ready(timeout=WAIT)
        assert info.value.reason == "Cancelled: go away"
        assert info.value.job_id == job.id
        assert job.reason == "Cancelled: go away"
        # Nothing is left to keep alive: the job's background thread ends by itself.
        keeper = f"spalloc-job-{job.id}-keepalive"
        wait_for(lambda: keeper not in {t.name for t in threading.enumerate()})
    finally:
        job.destroy()


def test_wait_timeouts(emu: Emulator, raw: Raw) -> None:
    occupy_machine(raw)
    job = Job(1)
    try:
        assert job.wait_for_state_change(JobState.queued, timeout=0.2) is JobState.queued
        with pytest.raises(StateChangeTimeoutError) as info:
            job.wait_until_ready(timeout=0.2)
        assert isinstance(info.value, TimeoutError) and info.value.job_id == job.id
    finally:
        job.destroy()


def test_wait_from_another_thread_wakes_on_notification(emu: Emulator, raw: Raw) -> None:
    hog = occupy_machine(raw)
    job = Job(1)
    result: list[Any] = []
    try:
        waiter = threading.Thread(
            target=lambda: result.append(job.wait_for_state_change(JobState.queued, timeout=WAIT))
        )
        waiter.start()
        time.sleep(0.1)
        raw.call("destroy_job", hog)
        waiter.join(WAIT)
        assert result and result[0] in (JobState.power, JobState.ready)
        job.wait_until_ready(timeout=WAIT)
    finally:
        job.destroy()


def test_close_keeps_the_job(emu: Emulator) -> None:
    job = Job(1, keepalive=None)
    job.wait_until_ready(timeout=WAIT)
    job.close()
    assert keepalive_threads(job.id) == []
    assert job.state is JobState.ready  # cached, no "not connected" error
    assert [j.job_id for j in emu.jobs()] == [job.id]
    with pytest.raises(ProtocolError):
        job.set_power(False)  # a closed Job no longer talks to the server
    job.destroy()  # after close: reconnects just to destroy (B6)
    assert emu.jobs() == []


def test_state_listener_and_snapshot(emu: Emulator) -> None:
    calls: list[tuple[str, JobState]] = []
    job = Job(1, keepalive=None)
    try:
        job.wait_until_ready(timeout=WAIT)
        remove = job.add_state_listener(
            lambda j: calls.append((threading.current_thread().name, j.snapshot.state))
        )
        job.set_power(False)
        job.wait_until_ready(timeout=WAIT)
        eventually(lambda: calls)
        assert all("reader" not in name for name, _ in calls)
        snap = job.snapshot
        assert snap.job_id == job.id and snap.owner == "test@example" and snap.connected
        assert snap.power is False and snap.width == 8
        remove()
        count = len(calls)
        job.set_power(True)
        job.wait_until_ready(timeout=WAIT)
        time.sleep(0.1)
        assert len(calls) == count
        assert job.refresh().power is True
        assert job.client is not None and job.client.connected
    finally:
        job.destroy()


def test_argument_errors(emu: Emulator) -> None:
    with pytest.raises(ValueError, match="Only one of tags and machine"):
        Job(1, machine="m4x2", tags=["default"])
    with pytest.raises(TypeError):
        Job(1, 2, 3, 4)
    with pytest.raises(ValueError, match="owner"):
        Job(owner=None)
    # The resolver would wrap 99999 round to port 34463 and connect there.
    for port in (None, 0, 99999):
        with pytest.raises(ValueError, match="port"):
            Job(1, port=port)
    with pytest.raises(ValueError, match="TCP port number"):
        ProtocolClient("127.0.0.1", 65536)
    assert emu.jobs() == []


def test_no_hostname_says_how_to_set_one(env: Callable[..., None]) -> None:
    with pytest.raises(ValueError) as info:
        Job()
    text = str(info.value)
    assert "SPALLOC_HOSTNAME" in text and "hostname=" in text and "local" in text
    assert "python -m spalloc.config" in text


# --- keepalive ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_keepalive_keeps_job_alive_while_caller_sleeps(emu: Emulator, raw: Raw) -> None:
    control = raw.call("create_job", owner="control", keepalive=1.0)
    job = Job(1, keepalive=1.0)
    try:
        before = job.snapshot.last_keepalive_ok
        time.sleep(8.0)
        assert raw.call("get_job_state", control)["state"] == int(JobState.destroyed)
        state = raw.call("get_job_state", job.id)  # ask with another client, not the Job
        assert state["state"] == int(JobState.ready), state
        # The snapshot records the beats that kept it alive (no wall-clock bound asserted).
        after = job.snapshot.last_keepalive_ok
        assert before is not None and after is not None and after > before
    finally:
        job.destroy()


def test_b3_keepalive_works_with_timeout_none(emu: Emulator, raw: Raw) -> None:
    control = raw.call("create_job", owner="control", keepalive=0.5)
    job = Job(1, keepalive=0.5, timeout=None)
    try:
        time.sleep(2.0)
        assert raw.call("get_job_state", control)["state"] == int(JobState.destroyed)
        assert raw.call("get_job_state", job.id)["state"] == int(JobState.ready)
    finally:
        job.destroy()


class Proxy:
    """A TCP proxy to the emulator that can rewrite the version reply and cut connections."""

    def __init__(self, target: tuple[str, int], version: str | None = None) -> None:
        self.target = target
        self.version = version
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.host = "127.0.0.1"
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self.commands = 0  # requests seen going to the server
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                down, _ = self.sock.accept()
            except OSError:
                continue
            up = socket.create_connection(self.target, timeout=WAIT)
            up.settimeout(None)
            down.settimeout(None)
            self._pairs.append((down, up))
            threading.Thread(target=self._pump, args=(down, up, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, down, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, rewrite: bool) -> None:
        try:
            for _ in range(1_000_000):
                data = src.recv(65536)
                if not data:
                    break
                if not rewrite:
                    self.commands += data.count(b'"command"')
                if rewrite and self.version is not None:
                    data = data.replace(
                        b'{"return": "5.0.0"}', json.dumps({"return": self.version}).encode()
                    )
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """Drop every proxied connection, as a network failure would."""
        for down, up in self._pairs:
            for s in (down, up):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._pairs.clear()

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self.sock.close()


@pytest.fixture
def proxy(emu: Emulator) -> Iterator[Callable[..., Proxy]]:
    made: list[Proxy] = []

    def make(version: str | None = None) -> Proxy:
        p = Proxy(emu.address, version)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


# --- one test per official-client bug ------------------------------------------------------------


@pytest.mark.parametrize("version", ["1!7.0.0", "4.0.0.post1", "5.0.0", "0.1.0"])
def test_b1_job_accepts_real_server_versions(proxy: Callable[..., Proxy], version: str) -> None:
    p = proxy(version)
    with Job(1, hostname=p.host, port=p.port) as job:
        assert job.client is not None and job.client.version() == version


def test_b2_version_opt_out_is_explicit(
    proxy: Callable[..., Proxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = proxy("9.0.0")
    with pytest.raises(IncompatibleServerError, match=r"9\.0\.0"):
        Job(1, hostname=p.host, port=p.port)
    monkeypatch.setenv("SPALLOC_IGNORE_VERSION", "False")
    with pytest.raises(IncompatibleServerError):
        Job(1, hostname=p.host, port=p.port)
    Job(1, hostname=p.host, port=p.port, ignore_version=True).destroy()
    monkeypatch.setenv("SPALLOC_IGNORE_VERSION", "True")
    Job(1, hostname=p.host, port=p.port).destroy()


def test_b4_keepalive_survives_a_connection_drop(proxy: Callable[..., Proxy], raw: Raw) -> None:
    p = proxy()
    job = Job(1, hostname=p.host, port=p.port, keepalive=1.0, reconnect_delay=0.1)
    try:
        first = eventually(lambda: job.snapshot.last_keepalive_ok)
        seen = record_connected(job)
        p.cut()
        eventually(lambda: False in seen)
        eventually(lambda: job.snapshot.connected and (job.snapshot.last_keepalive_ok or 0) > first)
        time.sleep(2.5)  # well past the 1 s keepalive: only the resumed keepalive saves it
        assert raw.call("get_job_state", job.id)["state"] == int(JobState.ready)
        assert keepalive_threads(job.id)
    finally:
        job.destroy()


def test_no_polling_without_keepalive_even_after_reconnecting(proxy: Callable[..., Proxy]) -> None:
    p = proxy()
    job = Job(1, hostname=p.host, port=p.port, keepalive=None, reconnect_delay=0.1)
    try:
        seen = record_connected(job)
        p.cut()
        eventually(lambda: False in seen)
        eventually(lambda: job.snapshot.connected)
        time.sleep(0.3)
        before = p.commands
        time.sleep(0.5)
        assert p.commands == before  # idle: nothing sent, no busy loop
        assert job.state is JobState.ready
        assert p.commands > before  # the property itself asks the server
    finally:
        job.destroy()


def test_b5_wait_survives_a_server_restart(emu: Emulator, raw: Raw) -> None:
    hog = occupy_machine(raw)
    job = Job(1, keepalive=2.0, reconnect_delay=0.1)
    outcome: list[Any] = []

    def wait() -> None:
        try:
            job.wait_until_ready(timeout=4 * WAIT)
            outcome.append("ready")
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    try:
        waiter.start()
        time.sleep(0.2)
        emu.stop()
        eventually(lambda: not job.snapshot.connected)
        time.sleep(0.3)
        assert waiter.is_alive()  # still waiting, not failed
        emu.start()
        eventually(lambda: job.snapshot.connected)
        before = job.snapshot.last_keepalive_ok or 0.0
        other = Raw(emu)
        other.call("destroy_job", hog)
        other.close()
        waiter.join(WAIT)
        assert outcome == ["ready"]
        eventually(lambda: (job.snapshot.last_keepalive_ok or 0.0) > before, timeout=2 * WAIT)
    finally:
        job.destroy()
        waiter.join(WAIT)


def test_b6_destroy_never_raises(
    emulator_factory: Callable[..., Emulator], env: Callable[..., None]
) -> None:
    emulator = emulator_factory()
    env(emulator)
    job = Job(1, keepalive=5.0, timeout=1.0)
    assert keepalive_threads(job.id)
    emulator.stop()
    job.destroy("server is gone")  # must not raise
    assert keepalive_threads(job.id) == []
    assert job.state is JobState.destroyed and job.reason == "server is gone"
    assert job.snapshot.keepalive_error
    job.destroy()  # twice: still fine
    other = (
        Job(1, hostname="127.0.0.1", port=emulator.port, config_filenames=[], owner="x")
        if emulator.start()
        else None
    )
    assert other is not None
    other.close()
    other.destroy()  # after close: fine, and it really destroys
    assert other.state is JobState.destroyed
    assert [j.job_id for j in emulator.jobs()] == [job.id]  # only the one we could not reach


def test_b12_attributes_are_none_before_allocation(emu: Emulator, raw: Raw) -> None:
    occupy_machine(raw)
    job = Job(1)
    try:
        assert job.state is JobState.queued
        assert job.hostname is None and job.connections is None
        assert job.width is None and job.height is None
        assert job.machine_name is None and job.boards is None and job.power is None
    finally:
        job.destroy()


def test_b14_unknown_keyword_is_a_type_error(emu: Emulator) -> None:
    with pytest.raises(TypeError):
        Job(bogus_kwarg=1)  # type: ignore[call-arg]
    assert emu.jobs() == []


def test_b16_ctrl_c_in_enter_destroys_the_job(emu: Emulator, raw: Raw) -> None:
    occupy_machine(raw)
    created: list[Job] = []
    main = threading.main_thread().ident
    assert threading.current_thread().ident == main

    def interrupt() -> None:
        eventually(lambda: created and created[0].snapshot.state is JobState.queued)
        time.sleep(0.2)  # let the main thread block in __enter__'s wait
        signal.pthread_kill(main, signal.SIGINT)  # type: ignore[arg-type]

    threading.Thread(target=interrupt, daemon=True).start()
    job = Job(1)
    created.append(job)
    with pytest.raises(KeyboardInterrupt), job:
        pytest.fail("the job never became ready, so the block must not run")
    assert job.state is JobState.destroyed
    assert raw.call("get_job_state", job.id)["state"] == int(JobState.destroyed)


# --- hostname = "local" --------------------------------------------------------------------------


def test_local_hostname_starts_one_emulator(env: Callable[..., None]) -> None:
    import warnings

    from spalloc._local import EmulatedBoardsWarning, local_emulator

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Job(1, hostname="local", owner="me", config_filenames=[]) as job:
            assert job.hostname is not None
        second = Job(1, hostname="local", owner="me", config_filenames=[])
        second.destroy()
    emulated = [w for w in caught if issubclass(w.category, EmulatedBoardsWarning)]
    assert len(emulated) <= 1  # once per process (an earlier test may have started it)
    if emulated:
        assert emulated[0].filename == __file__
    assert local_emulator() is local_emulator()
    assert local_emulator().running


# --- the same Job against the reference server (spalloc-server 1!7.0.0, fake BMP) ---------------


@pytest.fixture
def reference(env: Callable[..., None], tmp_path: Any) -> Iterator[Any]:
    """The reference server serving the emulator's default machines, configured via SPALLOC_*."""
    from interop._peers import PeerUnavailable, ensure_peer
    from interop.refserver import ReferenceServer

    from spalloc.emulator.machines import default_machines

    try:
        bin_dir = ensure_peer("refserver")
    except PeerUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"reference server unavailable: {exc}")
        pytest.skip(f"reference server unavailable: {exc}")
    server = ReferenceServer(
        bin_dir,
        list(default_machines()),
        workdir=tmp_path / "ref",
        power_delay=0.1,
        seconds_before_free=0.05,
    )
    server.start()
    env(server)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.interop
def test_reference_seed_examples_and_life_cycle(reference: Any) -> None:
    with Job(3) as j:  # the reference answers "1!7.0.0" (B1) and the example runs verbatim
        my_boot(j.hostname, j.width, j.height)
        my_application(j.hostname)
        assert j.client is not None and j.client.version() == "1!7.0.0"
        assert j.where_is_machine(0, 0) is not None
        j.set_power(False)
        assert j.state is JobState.power
        j.wait_until_ready(timeout=WAIT)
        assert j.power is False
        j.reset()
        j.wait_until_ready(timeout=WAIT)
        assert j.power is True
        resumed = Job(resume_job_id=j.id)
        assert resumed.state is JobState.ready and resumed.hostname == j.hostname
        resumed.close()
    assert j.state is JobState.destroyed
    with Job(4, 2, require_torus=True) as whole:
        assert whole.boards is not None and len(whole.boards) == 24


@pytest.mark.interop
def test_reference_destroyed_by_another_client(reference: Any) -> None:
    hog = Job(4, 2)
    hog.wait_until_ready(timeout=WAIT)
    job = Job(1)
    try:
        assert job.state is JobState.queued and job.hostname is None
        threading.Timer(0.2, hog.client.destroy_job, (job.id, "go away")).start()  # type: ignore[union-attr]
        with pytest.raises(JobDestroyedError) as info:
            job.wait_until_ready(timeout=WAIT)
        assert info.value.reason == "Cancelled: go away"
    finally:
        job.destroy()
        hog.destroy()


def test_java_style_server() -> None:
    """A scripted server answering like the Java V1 service (PROTOCOL.md §8): CRLF lines,
    power false and reason "" for a queued job, an exception instead of null machine info."""
    received: list[dict[str, Any]] = []
    ready = threading.Event()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(WAIT)

    def reply(conn: socket.socket, message: dict[str, Any]) -> None:
        conn.sendall(json.dumps(message, separators=(",", ":")).encode() + b"\r\n")

    def serve() -> None:
        conn, _ = listener.accept()
        conn.settimeout(WAIT)
        buffer = b""
        destroyed = False
        with conn:
            for _ in range(10_000):
                while b"\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                line, _, buffer = buffer.partition(b"\n")
                assert line.strip(), "a blank line closes a Java connection"
                request = json.loads(line)
                received.append(request)
                command = request["command"]
                if command == "version":
                    reply(conn, {"return": "5.0.0"})
                elif command == "create_job":
                    reply(conn, {"return": 7})

                    def allocated() -> None:
                        ready.set()
                        reply(conn, {"jobs_changed": [7]})

                    threading.Timer(0.3, allocated).start()
                elif command == "get_job_state":
                    state = 4 if destroyed else 3 if ready.is_set() else 1
                    reply(
                        conn,
                        {
                            "return": {
                                "state": state,
                                "power": state == 3,
                                "keepalive": 1795000000.0,
                                "reason": "",
                                "start_time": 1795000000.0,
                                "keepalivehost": "127.0.0.1",
                            }
                        },
                    )
                elif command == "get_job_machine_info":
                    if ready.is_set():
                        reply(
                            conn,
                            {
                                "return": {
                                    "width": 8,
                                    "height": 8,
                                    "connections": [[[0, 0], "10.0.0.1"]],
                                    "machine_name": "j",
                                    "boards": [[0, 0, 0]],
                                }
                            },
                        )
                    else:
                        reply(conn, {"exception": "boards not allocated"})
                elif command == "destroy_job":
                    destroyed = True
                    reply(conn, {"return": None})
                else:
                    reply(conn, {"return": None})

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        job = Job(
            1,
            hostname="127.0.0.1",
            port=listener.getsockname()[1],
            owner="me",
            config_filenames=[],
            keepalive=60.0,
            timeout=WAIT,
        )
        snap = job.snapshot
        assert snap.state is JobState.queued
        assert snap.power is None and snap.reason is None and job.hostname is None
        job.wait_until_ready(timeout=WAIT)
        assert job.hostname == "10.0.0.1" and job.width == 8
        job.destroy("bye")
        assert job.snapshot.state is JobState.destroyed
    finally:
        server.join(WAIT)
        listener.close()
    destroy = [r for r in received if r["command"] == "destroy_job"]
    assert destroy == [{"command": "destroy_job", "args": [7], "kwargs": {"reason": "bye"}}]


def test_a_refused_create_leaves_no_thread_or_socket_behind() -> None:
    """The keepalive thread starts while the server creates the job; when the server refuses
    the job, or never answers, the thread ends and the socket is closed (B24)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)
    port = listener.getsockname()[1]

    def serve(answer: bytes | None, closed: threading.Event) -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(WAIT)
            reader = conn.makefile("rb")
            assert json.loads(reader.readline())["command"] == "version"
            conn.sendall(b'{"return": "1.0.0"}\n')
            assert json.loads(reader.readline())["command"] == "create_job"
            if answer is not None:
                conn.sendall(answer)
            if not reader.readline():
                closed.set()

    try:
        for answer, error in (
            (b'{"exception": "machine not found"}\n', SpallocServerException),
            (None, ProtocolTimeoutError),  # silent: the Job's timeout ends the wait
        ):
            closed = threading.Event()
            server = threading.Thread(target=serve, args=(answer, closed), daemon=True)
            server.start()
            with pytest.raises(error):
                Job(
                    1, hostname="127.0.0.1", port=port, owner="me", timeout=0.5, config_filenames=[]
                )
            assert closed.wait(WAIT)
            server.join(WAIT)
            assert wait_for(
                lambda: not any(t.name.startswith("spalloc-job") for t in threading.enumerate())
            )
    finally:
        listener.close()
