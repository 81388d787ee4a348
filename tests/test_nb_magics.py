"""``%spalloc`` / ``%%spalloc`` in an in-process IPython shell, against the emulator."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from spalloc.emulator import Emulator
from spalloc.job import Job
from spalloc.states import JobState
from spalloc_nb._registry import registry
from spalloc_nb.magics import CellFailed
from tests.conftest import wait_for

OWNER = "nb-test@example.org"


@pytest.fixture(scope="module")
def shell() -> InteractiveShell:
    config = Config()
    config.HistoryAccessor.enabled = False
    return InteractiveShell.instance(config=config)


@pytest.fixture
def ip(
    shell: InteractiveShell, emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> Iterator[InteractiveShell]:
    """The shell with the extension loaded, pointed at a fresh emulator by environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("SPALLOC_HOSTNAME", emulator.host)
    monkeypatch.setenv("SPALLOC_PORT", str(emulator.port))
    monkeypatch.setenv("SPALLOC_OWNER", OWNER)
    shell.run_line_magic("load_ext", "spalloc_nb")
    try:
        yield shell
    finally:
        shell.run_line_magic("unload_ext", "spalloc_nb")
        shell.extension_manager.loaded.discard("spalloc_nb")  # type: ignore[union-attr]
        for name in ("job", "j", "mine"):
            shell.user_ns.pop(name, None)


@pytest.fixture
def published(ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every display the shell publishes: ``{"data", "transient", "update"}``."""
    seen: list[dict[str, Any]] = []
    original = ip.display_pub.publish

    def publish(
        data: Any,
        metadata: Any = None,
        *args: Any,
        transient: Any = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        seen.append({"data": data, "transient": transient or {}, "update": update})
        original(data, metadata, *args, transient=transient, update=update, **kwargs)

    monkeypatch.setattr(ip.display_pub, "publish", publish)
    return seen


def shown(ip: InteractiveShell, published: list[dict[str, Any]], obj: Any) -> dict[str, Any]:
    """Display ``obj`` as IPython would; return the bundle published for it."""
    before = len(published)
    assert ip.display_formatter is not None
    data, _ = ip.display_formatter.format(obj)
    assert data == {}, "displayed by the extension itself, with a display id"
    (new,) = published[before:]
    return new


def live_ids(emulator: Emulator) -> set[int]:
    return {job.job_id for job in emulator.jobs()}


def test_load_registers_once_and_unload_removes(ip: InteractiveShell) -> None:
    assert "spalloc" in ip.magics_manager.magics["line"]
    assert "spalloc" in ip.magics_manager.magics["cell"]
    count = sum(type(c).__name__ == "SpallocMagics" for c in ip.configurables)
    ip.run_line_magic("reload_ext", "spalloc_nb")
    ip.run_line_magic("load_ext", "spalloc_nb")
    assert sum(type(c).__name__ == "SpallocMagics" for c in ip.configurables) == count == 1
    ip.run_line_magic("unload_ext", "spalloc_nb")
    assert "spalloc" not in ip.magics_manager.magics["line"]
    assert not any(type(c).__name__ == "SpallocMagics" for c in ip.configurables)
    ip.run_line_magic("load_ext", "spalloc_nb")
    assert "spalloc" in ip.magics_manager.magics["line"]


def test_line_magic_returns_a_job_at_once(ip: InteractiveShell, emulator: Emulator) -> None:
    job = ip.run_line_magic("spalloc", "1")
    assert isinstance(job, Job)
    assert registry.owns(job)
    assert job.id in live_ids(emulator)
    assert job.owner == OWNER


def test_wait_and_name(ip: InteractiveShell) -> None:
    job = ip.run_line_magic("spalloc", "2 --wait --name j")
    assert ip.user_ns["j"] is job
    assert job.state is JobState.ready
    assert len(job.boards) >= 2


def test_var_expansion(ip: InteractiveShell) -> None:
    ip.user_ns["n"] = 2
    ip.run_cell("%spalloc {n} --wait --name j")
    assert len(ip.user_ns["j"].boards) >= 2


def test_unload_destroys_the_jobs_it_created(ip: InteractiveShell, emulator: Emulator) -> None:
    a = ip.run_line_magic("spalloc", "1")
    b = ip.run_line_magic("spalloc", "1")
    assert {a.id, b.id} <= live_ids(emulator)
    ip.run_line_magic("unload_ext", "spalloc_nb")
    assert not {a.id, b.id} & live_ids(emulator)
    assert emulator.retired_jobs()[a.id] == "Notebook extension unloaded."
    ip.run_line_magic("load_ext", "spalloc_nb")


@pytest.mark.parametrize(
    "line, text",
    [
        ("1 2 3 4", "expected either no arguments"),
        ("--bogus", "unrecognized arguments"),
        ("--keepalive abc", "invalid seconds value"),
        ("x", "invalid int value"),
        ("1 --name 'not valid'", "not a valid variable name"),
    ],
)
def test_bad_arguments_are_one_line_usage_errors(
    ip: InteractiveShell, emulator: Emulator, line: str, text: str
) -> None:
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("spalloc", line)
    assert text in str(info.value)
    assert "\n" not in str(info.value)
    assert not live_ids(emulator)


def test_unreachable_server_is_a_one_line_error(ip: InteractiveShell) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now.
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("spalloc", f"ps -P {port} --timeout 2")
    assert str(info.value).startswith("spalloc: ")


def test_config_sets_owner_and_hints_misspelt_settings(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("config", "SpallocMagics.owner = 'someone@example.org'")
    job = ip.run_line_magic("spalloc", "1")
    assert job.owner == "someone@example.org"
    ip.run_line_magic("config", "SpallocMagics.ownr = 'x'")
    err = capsys.readouterr().err
    assert "no setting 'ownr'" in err and "did you mean 'owner'" in err
    # Options beat traits.
    job = ip.run_line_magic("spalloc", "1 --owner other@example.org")
    assert job.owner == "other@example.org"
    ip.run_line_magic("config", "SpallocMagics.owner = None")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_config_hostname_local_uses_the_embedded_emulator(ip: InteractiveShell) -> None:
    from spalloc._local import local_emulator

    ip.run_line_magic("config", "SpallocMagics.hostname = 'local'")
    job = ip.run_line_magic("spalloc", "1 --wait")
    try:
        assert job.id in {j.job_id for j in local_emulator().jobs()}
    finally:
        ip.run_line_magic("config", "SpallocMagics.hostname = None")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_local_option(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch, published: list[dict[str, Any]]
) -> None:
    from spalloc._local import local_emulator

    monkeypatch.delenv("SPALLOC_OWNER")
    job = ip.run_line_magic("spalloc", "--local 1 --wait")
    assert job.state is JobState.ready
    assert job.id in {j.job_id for j in local_emulator().jobs()}
    assert "[emulated]" in shown(ip, published, job)["data"]["text/plain"]


def test_cell_magic_binds_runs_and_destroys(ip: InteractiveShell, emulator: Emulator) -> None:
    result = ip.run_cell("%%spalloc 1\nseen = (job.id, job.state.name, job.hostname)")
    assert result.success
    job_id, state, hostname = ip.user_ns["seen"]
    assert state == "ready" and hostname
    assert job_id not in live_ids(emulator)
    assert emulator.retired_jobs()[job_id] == "Cell finished."


def test_cell_magic_failure_propagates_and_destroys(
    ip: InteractiveShell, emulator: Emulator
) -> None:
    result = ip.run_cell("%%spalloc 1 --name mine\nseen = mine.id\n1 / 0")
    assert not result.success
    failed = result.error_in_exec
    assert isinstance(failed, CellFailed) and isinstance(failed.error, ZeroDivisionError)
    job_id = ip.user_ns["seen"]
    # One summary line, not a second traceback of the body's error.
    assert failed._render_traceback_() == [
        f"%%spalloc: the cell failed (ZeroDivisionError: division by zero); "
        f"job {job_id} was destroyed"
    ]
    assert job_id not in live_ids(emulator)
    assert emulator.retired_jobs()[job_id] == "Cell failed: ZeroDivisionError"


def test_cell_magic_ctrl_c_destroys(ip: InteractiveShell, emulator: Emulator) -> None:
    result = ip.run_cell("%%spalloc 1\nseen = job.id\nraise KeyboardInterrupt")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    job_id = ip.user_ns["seen"]
    assert emulator.retired_jobs()[job_id] == "Keyboard interrupt."


def test_cell_magic_keep(ip: InteractiveShell, emulator: Emulator) -> None:
    result = ip.run_cell("%%spalloc 1 --keep\nseen = job.id")
    assert result.success
    job_id = ip.user_ns["seen"]
    assert job_id in live_ids(emulator)
    assert not registry.owns(ip.user_ns["job"])
    ip.user_ns["job"].destroy("test over")


def test_cell_magic_job_destroyed_while_waiting(ip: InteractiveShell, emulator: Emulator) -> None:
    # 99 boards cannot fit any machine: the server cancels the job at once.
    result = ip.run_cell("%%spalloc 99\nran = True")
    assert not result.success
    assert isinstance(result.error_in_exec, UsageError)
    assert "JobDestroyedError" in str(result.error_in_exec)
    assert "ran" not in ip.user_ns
    assert not live_ids(emulator)


def test_subcommand_is_not_a_cell_magic(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError):
        ip.run_cell_magic("spalloc", "ps", "pass")


def test_ps_machines_machine(ip: InteractiveShell, emulator: Emulator) -> None:
    job = ip.run_line_magic("spalloc", "1 --wait")
    ps = ip.run_line_magic("spalloc", "ps")
    assert [row[0] for row in ps.rows] == [job.id]
    assert "<table" in ps._repr_html_() and OWNER in str(ps)
    assert ip.run_line_magic("spalloc", "ps --owner nobody").rows == ()
    machines = ip.run_line_magic("spalloc", "machines")
    names = [row[0] for row in machines.rows]
    assert names == [m.name for m in emulator.machines]
    in_use = dict((row[0], row[2]) for row in machines.rows)
    assert in_use[job.machine_name] == 1
    detail = ip.run_line_magic("spalloc", f"machine {job.machine_name}")
    assert detail.jobs.rows[0][1] == job.id
    assert "A:" + str(job.id) in str(detail)
    # Through the Python API the live map comes too, marking the owner's jobs as theirs.
    import spalloc_nb

    live = spalloc_nb.machine(
        job.machine_name, hostname=emulator.host, port=emulator.port, owner=OWNER
    )
    assert live.board_map is not None and live.board_map.my_owner == OWNER
    assert [j["mine"] for j in live.board_map.jobs if j["id"] == job.id] == [True]
    live.board_map.close()
    with pytest.raises(UsageError, match="No machine 'nope'"):
        ip.run_line_magic("spalloc", "machine nope")
    ip.run_line_magic("config", "SpallocMagics.short_errors = False")
    try:
        with pytest.raises(LookupError):
            ip.run_line_magic("spalloc", "machine nope")
    finally:
        ip.run_line_magic("config", "SpallocMagics.short_errors = True")


def test_where_is_and_destroy(ip: InteractiveShell, emulator: Emulator) -> None:
    job = ip.run_line_magic("spalloc", "1 --wait")
    table = ip.run_line_magic("spalloc", f"where-is --job-chip {job.id} 0 0")
    rows = dict(table.rows)
    assert rows["Job using board"] == str(job.id)
    assert rows["Machine"] == job.machine_name
    x, y, z = job.boards[0]
    table = ip.run_line_magic("spalloc", f"where-is --board {job.machine_name} {x} {y} {z}")
    assert dict(table.rows)["Board coordinate"] == str((x, y, z))
    with pytest.raises(UsageError):
        ip.run_line_magic("spalloc", "where-is --chip m x 0")
    # A one-board job is 8x8 chips: (99, 5) is outside it, not wrapped to (3, 5).
    with pytest.raises(UsageError, match=r"chip \(99, 5\) is outside job"):
        ip.run_line_magic("spalloc", f"where-is --job-chip {job.id} 99 5")
    message = ip.run_line_magic("spalloc", f"destroy {job.id} no longer needed")
    assert "destroyed" in str(message)
    assert not registry.owns(job)
    assert emulator.retired_jobs()[job.id] == "no longer needed"
    wait_for(lambda: job.snapshot.state is JobState.destroyed)


def test_job_subcommand_shows_an_existing_job(ip: InteractiveShell, emulator: Emulator) -> None:
    from spalloc.client import ProtocolClient

    with ProtocolClient(emulator.host, emulator.port, timeout=5) as client:
        job_id = client.call("create_job", 1, owner="elsewhere", keepalive=60)
    job = ip.run_line_magic("spalloc", f"job {job_id}")
    assert job.id == job_id and not registry.owns(job)
    ip.run_line_magic("unload_ext", "spalloc_nb")
    # Unload closes a job it did not create, and leaves it alive.
    assert job_id in live_ids(emulator)
    ip.run_line_magic("load_ext", "spalloc_nb")


def test_display_text_html_and_widget(
    ip: InteractiveShell, published: list[dict[str, Any]]
) -> None:
    job = ip.run_line_magic("spalloc", "1 --wait")
    first = shown(ip, published, job)
    data = first["data"]
    assert set(data) == {"text/plain", "text/html"}
    assert data["text/plain"].startswith(f"Job {job.id}: ready, power on, 1 board on ")
    assert "<table" in data["text/html"]
    assert first["transient"]["display_id"].startswith("spalloc-")
    ip.run_line_magic("config", "SpallocMagics.use_widgets = 'always'")
    key = "application/vnd.jupyter.widget-view+json"
    try:
        widget = shown(ip, published, job)
        assert {key, "text/html", "text/plain"} <= set(widget["data"])
        again = shown(ip, published, job)
        assert again["data"][key]["model_id"] == widget["data"][key]["model_id"]  # one widget
        ids = {
            first["transient"]["display_id"],
            widget["transient"]["display_id"],
            again["transient"]["display_id"],
        }
        assert len(ids) == 3
    finally:
        ip.run_line_magic("config", "SpallocMagics.use_widgets = 'auto'")
    # Destroyed: every output of the job is replaced by its final static view.
    before = len(published)
    job.destroy("done here")
    wait_for(lambda: len(published) - before >= 3)
    updates = published[before:]
    assert {u["transient"]["display_id"] for u in updates} == ids
    for update in updates:
        assert update["update"] and key not in update["data"]
        assert update["data"]["text/plain"].startswith(f"Job {job.id} \u2014 destroyed: done here")
        assert "Boards held" in update["data"]["text/html"]
    # A destroyed job is shown static from the start, with nothing left to update.
    final = shown(ip, published, job)
    assert key not in final["data"] and "display_id" not in final["transient"]


def test_owned_jobs_listing_when_there_are_none(ip: InteractiveShell) -> None:
    assert "No jobs created by this kernel" in str(ip.run_line_magic("spalloc", "jobs"))


def test_owned_jobs_listing(ip: InteractiveShell) -> None:
    job = ip.run_line_magic("spalloc", "1")
    table = ip.run_line_magic("spalloc", "jobs")
    assert [row[0] for row in table.rows] == [job.id]


def test_help_does_not_raise(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    assert ip.run_line_magic("spalloc", "-h") is None
    assert "--wait" in capsys.readouterr().out
    assert ip.run_line_magic("spalloc", "where-is -h") is None
    assert "--job-chip" in capsys.readouterr().out


def test_wait_shows_progress_only_when_slow(
    ip: InteractiveShell, emulator_factory: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    slow = emulator_factory(power_delay=0.4)
    where = f"-H {slow.host} -P {slow.port}"
    ip.run_line_magic("spalloc", f"1 --wait {where}")  # default progress_after: 2 s
    assert "waiting until ready" not in capsys.readouterr().err
    ip.run_line_magic("config", "SpallocMagics.progress_after = 0.05")
    try:
        job = ip.run_line_magic("spalloc", f"1 --wait {where}")
        assert f"Job {job.id}: power, waiting until ready" in capsys.readouterr().err
        ip.run_line_magic("config", "SpallocMagics.use_widgets = 'always'")
        job = ip.run_line_magic("spalloc", f"1 --wait {where}")
        # The live view is displayed as progress (its text/plain is what this shell prints).
        assert f"Job {job.id}: power" in capsys.readouterr().out
        assert job.state is JobState.ready
    finally:
        ip.run_line_magic("config", "SpallocMagics.progress_after = 2.0")
        ip.run_line_magic("config", "SpallocMagics.use_widgets = 'auto'")


def test_destroy_all_is_bounded(emulator_factory: Any) -> None:
    """A server that stops answering cannot hold exit longer than the budget."""
    from spalloc_nb._registry import Registry

    server = emulator_factory()
    jobs = [
        Job(
            1,
            hostname=server.host,
            port=server.port,
            owner=OWNER,
            timeout=3.0,
            reconnect_delay=60.0,
            config_filenames=[],
        )
        for _ in range(3)
    ]
    port = server.port
    server.stop()
    silent = socket.socket()
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    silent.bind(("127.0.0.1", port))
    silent.listen(8)  # accepts connections, never answers
    try:
        own = Registry()
        for job in jobs:
            own.add_job(job)
        pending = own.destroy_all("bye", timeout=0.5)
        assert pending == jobs
        assert own.jobs() == []
    finally:
        silent.close()


def test_layering_file_then_ipython_config_then_config_magic_then_option(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.delenv("SPALLOC_OWNER")
    (tmp_path / ".spalloc").write_text("[spalloc]\nowner = file@example.org\nkeepalive = 30\n")
    assert ip.run_line_magic("spalloc", "1").owner == "file@example.org"
    # ipython_config.py: c.SpallocMagics.owner = ... (config given to the shell)
    ip.config.SpallocMagics.owner = "ipython-config@example.org"
    try:
        ip.run_line_magic("reload_ext", "spalloc_nb")
        job = ip.run_line_magic("spalloc", "1")
        assert job.owner == "ipython-config@example.org" and job.keepalive == 30.0
        ip.run_line_magic("config", "SpallocMagics.owner = 'magic@example.org'")
        assert ip.run_line_magic("spalloc", "1").owner == "magic@example.org"
        job = ip.run_line_magic("spalloc", "1 --owner option@example.org --keepalive 12.5")
        assert job.owner == "option@example.org" and job.keepalive == 12.5
    finally:
        del ip.config.SpallocMagics["owner"]
        ip.run_line_magic("config", "SpallocMagics.owner = None")


def test_no_server_configured_says_how_to_configure_one(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPALLOC_HOSTNAME")
    for line in ("1", "ps", "machines"):
        with pytest.raises(UsageError) as info:
            ip.run_line_magic("spalloc", line)
        assert "--hostname" in str(info.value) and "--local" in str(info.value)


def test_import_is_light() -> None:
    """Only %load_ext pulls in IPython and widgets; scripts can import the API cheaply."""
    import subprocess
    import sys

    code = (
        "import sys, spalloc_nb\n"
        "print(sorted({'IPython', 'ipywidgets', 'traitlets', 'anywidget'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_local_warning_is_one_plain_line(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import spalloc._local as local

    monkeypatch.setattr(local, "_emulator", None)  # a fresh in-process emulator warns again
    job = ip.run_line_magic("spalloc", "--local 1")
    fresh = local._emulator
    try:
        err = capsys.readouterr().err
        assert err.startswith("spalloc: hostname 'local'") and "emulated" in err
        assert err.count("\n") == 1 and ".py" not in err
    finally:
        job.destroy()
        assert fresh is not None
        fresh.stop()


def test_without_tags_or_machine_the_default_tag_is_asked_for(
    ip: InteractiveShell, emulator: Emulator, connect: Any
) -> None:
    # The config reports tags as None when unset (as the original did); the magic asks for
    # the "default" tag, as it did when the config itself held it.
    for line, expected in (
        ("1", (["default"], None)),
        ("1 -m m4x2", (None, "m4x2")),
        ("1 -t single", (["single"], None)),
    ):
        job = ip.run_line_magic("spalloc", line)
        with connect(emulator) as raw:
            (entry,) = [j for j in raw.call("list_jobs") if j["job_id"] == job.id]
        assert (entry["kwargs"]["tags"], entry["kwargs"].get("machine")) == expected, line
        job.destroy()


def test_one_owner_rule_on_the_emulator(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    import getpass

    from spalloc._local import default_owner

    monkeypatch.delenv("SPALLOC_OWNER")
    job = ip.run_line_magic("spalloc", "--local 1")
    try:
        assert job.owner == default_owner("local", None) == f"{getpass.getuser()}@local"
        # The library applies the same rule by itself (the README's example).
        with Job(1, hostname="local", config_filenames=[]) as plain:
            assert plain.owner == job.owner
    finally:
        job.destroy("test over")
    assert default_owner("local", "me@example.org") == "me@example.org"
    assert default_owner("spalloc.example.org", None) is None


def test_options_may_come_before_the_subcommand(
    ip: InteractiveShell, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spalloc_nb._magicargs import subcommand_first as _subcommand_first

    monkeypatch.delenv("SPALLOC_HOSTNAME")
    table = ip.run_line_magic(
        "spalloc", f"--hostname {emulator.host} --port {emulator.port} machine m4x2"
    )
    assert table.name == "m4x2"
    assert _subcommand_first(["-m", "machines", "3"]) == ["-m", "machines", "3"]
    assert _subcommand_first(["--local", "ps", "-o", "x"]) == ["ps", "--local", "-o", "x"]
    assert _subcommand_first(["3", "ps"]) == ["3", "ps"]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_kernel_keeps_using_the_server_it_last_used(
    ip: InteractiveShell, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    job = ip.run_line_magic("spalloc", "--local 1")
    try:
        capsys.readouterr()
        table = ip.run_line_magic("spalloc", "machines")
        assert table.title == "Machines (emulated)"
        assert "the server this kernel last used" in capsys.readouterr().err
        ip.run_line_magic("spalloc", "ps")
        assert capsys.readouterr().err == ""  # said once
        # Told otherwise: the named server, which then becomes the remembered one.
        table = ip.run_line_magic("spalloc", f"machines -H {emulator.host} -P {emulator.port}")
        assert table.title == "Machines"
        # Configuring a server forgets the remembered one.
        ip.run_line_magic("spalloc", "--local ps")
        ip.run_line_magic("config", f"SpallocMagics.hostname = {emulator.host!r}")
        assert ip.run_line_magic("spalloc", "machines").title == "Machines"
    finally:
        ip.run_line_magic("config", "SpallocMagics.hostname = None")
        job.destroy("test over")
