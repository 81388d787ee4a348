"""Kernel lifetime through a real ipykernel (jupyter_client), against the emulator.

The emulator runs in the test process; the kernel finds it through ``SPALLOC_HOSTNAME`` and
``SPALLOC_PORT``. Every wait is bounded.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from spalloc.emulator import Emulator
from tests.conftest import wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
OWNER = "kernel-test@example.org"


class Kernel:
    """A started kernel and a blocking client, with a helper to run code and collect output."""

    def __init__(self, emulator: Emulator, home: Path) -> None:
        env = dict(os.environ)
        env.update(
            SPALLOC_HOSTNAME=emulator.host,
            SPALLOC_PORT=str(emulator.port),
            SPALLOC_OWNER=OWNER,
            XDG_CONFIG_HOME=str(home),
            IPYTHONDIR=str(home / "ipy"),
            PYTHONPATH=str(ROOT),
        )
        self.manager = KernelManager(kernel_name="python3")
        # Run the kernel with this interpreter (the project's virtualenv).
        assert self.manager.kernel_spec is not None
        self.manager.kernel_spec.argv[0] = sys.executable
        self.manager.shutdown_wait_time = 5.0  # the default: SIGTERM after 2.5 s
        self.manager.start_kernel(env=env, cwd=str(home))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=30)

    def run(self, code: str, timeout: float = 30) -> tuple[dict[str, Any], str, list[dict]]:
        """Execute ``code``; return the reply content, stdout text and error messages."""
        out: list[str] = []
        errors: list[dict[str, Any]] = []

        def hook(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                errors.append(msg["content"])

        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=hook)
        return reply["content"], "".join(out), errors

    def ids(self, code: str) -> list[int]:
        content, out, _ = self.run(code)
        assert content["status"] == "ok", content
        return [int(word) for word in out.split()]

    def close(self) -> None:
        self.client.stop_channels()
        if self.manager.has_kernel:
            self.manager.shutdown_kernel(now=True)


@pytest.fixture
def kernel(emulator: Emulator, tmp_path: Path) -> Iterator[Kernel]:
    started = Kernel(emulator, tmp_path)
    yield started
    started.close()


def live(emulator: Emulator) -> set[int]:
    return {job.job_id for job in emulator.jobs()}


ALLOCATE_TWO = "%load_ext spalloc_nb\na = %spalloc 1 --wait\nb = %spalloc 1\nprint(a.id, b.id)"


def test_shutdown_destroys_every_job(kernel: Kernel, emulator: Emulator) -> None:
    ids = kernel.ids(ALLOCATE_TWO)
    assert set(ids) <= live(emulator)
    started = time.monotonic()
    kernel.manager.shutdown_kernel(now=False)
    print(f"graceful shutdown took {time.monotonic() - started:.2f} s")
    retired = emulator.retired_jobs()
    assert {retired.get(i) for i in ids} == {"Kernel shut down."}
    assert not set(ids) & live(emulator)


def test_restart_destroys_every_job(kernel: Kernel, emulator: Emulator) -> None:
    ids = kernel.ids(ALLOCATE_TWO)
    kernel.manager.restart_kernel(now=False)
    wait_for(lambda: not set(ids) & live(emulator))
    assert {emulator.retired_jobs().get(i) for i in ids} == {"Kernel shut down."}
    kernel.client.wait_for_ready(timeout=30)
    assert kernel.ids("print(1 + 1)") == [2]


def test_unload_ext_destroys_and_the_kernel_lives_on(kernel: Kernel, emulator: Emulator) -> None:
    ids = kernel.ids(ALLOCATE_TWO)
    content, out, _ = kernel.run(
        "import threading\n"
        "ours = [t for t in threading.enumerate() if t.name.startswith('spalloc')]\n"
        "print(len(ours), all(t.daemon for t in ours))"
    )
    count, daemons = out.split()
    assert int(count) > 0 and daemons == "True"
    content, _, _ = kernel.run("%unload_ext spalloc_nb")
    assert content["status"] == "ok"
    assert not set(ids) & live(emulator)
    assert {emulator.retired_jobs().get(i) for i in ids} == {"Notebook extension unloaded."}
    # No spalloc thread is left running; the job's own threads were daemons and stopped.
    content, out, _ = kernel.run(
        "import threading, time\n"
        "deadline = time.monotonic() + 5\n"
        "while time.monotonic() < deadline and any(t.name.startswith('spalloc')\n"
        "        for t in threading.enumerate()):\n"
        "    time.sleep(0.05)\n"
        "print(sorted(t.name for t in threading.enumerate() if t.name.startswith('spalloc')))"
    )
    assert out.strip() == "[]"


def test_sigkill_lets_the_keepalive_free_the_boards(kernel: Kernel, emulator: Emulator) -> None:
    (job_id,) = kernel.ids(
        "%load_ext spalloc_nb\na = %spalloc 1 --keepalive 0.5 --wait\nprint(a.id)"
    )
    assert job_id in live(emulator)
    os.kill(kernel.manager.provisioner.pid, signal.SIGKILL)  # type: ignore[union-attr]
    wait_for(lambda: job_id not in live(emulator), timeout=10)
    assert emulator.retired_jobs()[job_id] == "Job timed out."


def test_cell_magic_failure_fails_the_cell(kernel: Kernel, emulator: Emulator) -> None:
    content, _, errors = kernel.run("%load_ext spalloc_nb")
    assert content["status"] == "ok"
    content, _, errors = kernel.run("%%spalloc 1\nseen = job.id\n1 / 0")
    assert content["status"] == "error" and content["ename"] == "CellFailed"
    # The body's own traceback, then one summary line (not the same traceback twice).
    assert [e["ename"] for e in errors] == ["ZeroDivisionError", "CellFailed"]
    # The body's traceback names the cell the user ran, not the next one.
    import re

    plain = re.sub(r"\x1b\[[0-9;]*m", "", "".join(errors[0]["traceback"]))
    assert f"Cell In[{content['execution_count']}]" in plain, plain
    assert len(errors[-1]["traceback"]) == 1 and "division by zero" in errors[-1]["traceback"][0]
    (job_id,) = kernel.ids("print(seen)")
    assert emulator.retired_jobs()[job_id] == "Cell failed: ZeroDivisionError"


def test_line_magic_returns_while_queued_and_widget_updates(
    kernel: Kernel, emulator_factory: Callable[..., Emulator]
) -> None:
    # A power delay keeps the job in "power" long enough to see the widget change by itself.
    slow = emulator_factory(power_delay=0.5)
    code = (
        "%load_ext spalloc_nb\n"
        f"a = %spalloc 1 -H {slow.host} -P {slow.port}\n"
        "from spalloc_nb import job_widget\n"
        "w = job_widget(a)\n"
        "print(w.state)"
    )
    content, out, _ = kernel.run(code)
    assert content["status"] == "ok"
    assert out.strip() in ("queued", "power")
    content, out, _ = kernel.run(
        "import time\n"
        "deadline = time.monotonic() + 5\n"
        "while w.state != 'ready' and time.monotonic() < deadline:\n"
        "    time.sleep(0.02)\n"
        "print(w.state)"
    )
    assert out.strip() == "ready"


def test_result_has_three_renderings_and_buttons_work_between_cells(
    kernel: Kernel, emulator: Emulator
) -> None:
    results: list[dict[str, Any]] = []

    def hook(msg: dict[str, Any]) -> None:
        # Displayed with a display id (so it can end as a final view), not as a result.
        if msg["msg_type"] in ("execute_result", "display_data"):
            results.append(msg["content"]["data"])

    kernel.client.execute_interactive(
        "%load_ext spalloc_nb\n%spalloc 1 --wait", timeout=30, output_hook=hook
    )
    (data,) = results
    assert {"application/vnd.jupyter.widget-view+json", "text/html", "text/plain"} <= set(data)
    assert data["text/plain"].startswith("Job ")
    job_id, button = kernel.run(
        "from spalloc_nb import job_widget\nw = job_widget(_)\nprint(_.id, w._power_off.model_id)"
    )[1].split()
    (job,) = [j for j in emulator.jobs() if j.job_id == int(job_id)]
    # What the front end sends when the button is clicked.
    click = kernel.client.session.msg(
        "comm_msg", {"comm_id": button, "data": {"method": "custom", "content": {"event": "click"}}}
    )
    kernel.client.shell_channel.send(click)
    wait_for(lambda: emulator.board_power(str(job.machine), job.boards[0]) is False)


def test_exit_is_not_held_up_by_a_silent_server(kernel: Kernel, emulator: Emulator) -> None:
    """A server that accepts but never answers must not get the kernel SIGTERMed."""
    import socket

    ids = kernel.ids(ALLOCATE_TWO)
    port = emulator.port
    emulator.stop()
    silent = socket.socket()
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    silent.bind(("127.0.0.1", port))
    silent.listen(8)
    try:
        assert len(ids) == 2
        process = kernel.manager.provisioner.process  # type: ignore[union-attr]
        started = time.monotonic()
        kernel.manager.shutdown_kernel(now=False)
        print(f"shutdown with a silent server took {time.monotonic() - started:.2f} s")
        # A kernel that had to be terminated by signal reports a negative code.
        assert process.returncode == 0
    finally:
        silent.close()


def drain_iopub(kernel: Kernel, seconds: float = 5.0) -> list[dict[str, Any]]:
    """Every IOPub message until the channel stays quiet (bounded in time)."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            messages.append(kernel.client.get_iopub_msg(timeout=0.5))
        except Exception:  # queue.Empty: quiet for half a second
            break
    return messages


def test_shutdown_replaces_live_outputs_with_the_final_view(
    kernel: Kernel, emulator: Emulator
) -> None:
    shown: list[dict[str, Any]] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "display_data":
            shown.append(msg["content"])

    reply = kernel.client.execute_interactive(
        "%load_ext spalloc_nb\n%spalloc 1 --wait", timeout=30, output_hook=hook
    )
    assert reply["content"]["status"] == "ok"
    (live,) = shown
    display_id = live["transient"]["display_id"]
    assert "application/vnd.jupyter.widget-view+json" in live["data"]
    job_id = int(live["data"]["text/plain"].split(":")[0].split()[1])
    drain_iopub(kernel, 1.0)
    kernel.manager.shutdown_kernel(now=False)
    updates = [m["content"] for m in drain_iopub(kernel) if m["msg_type"] == "update_display_data"]
    assert [u["transient"]["display_id"] for u in updates] == [display_id]
    (final,) = updates
    assert "application/vnd.jupyter.widget-view+json" not in final["data"]
    assert final["data"]["text/plain"].startswith(
        f"Job {job_id} \u2014 destroyed: Kernel shut down"
    )
    assert "Boards held" in final["data"]["text/html"]
    assert emulator.retired_jobs()[job_id] == "Kernel shut down."


def test_unload_in_nbclient_leaves_final_views_in_the_notebook(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("SPALLOC_HOSTNAME", emulator.host)
    monkeypatch.setenv("SPALLOC_PORT", str(emulator.port))
    monkeypatch.setenv("SPALLOC_OWNER", OWNER)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipy"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    book = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext spalloc_nb"),
            nbformat.v4.new_code_cell("job = %spalloc 1 --wait\njob"),
            nbformat.v4.new_code_cell("%spalloc machine m4x2"),
            nbformat.v4.new_code_cell("other = %spalloc 1 --wait\nother"),
            nbformat.v4.new_code_cell("other.destroy('Done with it.')"),
            nbformat.v4.new_code_cell("%%spalloc 1\nprint(job.id)"),
            nbformat.v4.new_code_cell("%unload_ext spalloc_nb"),
        ]
    )
    NotebookClient(
        book, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    job_output = book.cells[1].outputs[-1]
    assert "application/vnd.jupyter.widget-view+json" not in job_output["data"]
    assert job_output["data"]["text/plain"].startswith("Job ")
    assert "destroyed: Notebook extension unloaded" in job_output["data"]["text/plain"]
    map_output = book.cells[2].outputs[-1]
    assert "application/vnd.jupyter.widget-view+json" not in map_output["data"]
    assert "no longer live: Notebook extension unloaded" in map_output["data"]["text/html"]
    assert map_output["data"]["text/html"].count("<polygon") == 24
    # Destroyed by a later cell (through the job's listener thread): saved as destroyed.
    other_output = book.cells[3].outputs[-1]
    assert "destroyed: Done with it" in other_output["data"]["text/plain"]
    # The job of a %%spalloc cell ends with the cell, and so does its output.
    cell_job = book.cells[5].outputs[0]
    assert "destroyed: Cell finished" in cell_job["data"]["text/plain"]


def test_buttons_act_while_a_cell_runs_when_sent_to_a_subshell(
    kernel: Kernel, emulator: Emulator
) -> None:
    """What JupyterLab >= 4.4 does with ``commsOverSubshells``: clicks go to a subshell."""
    job_id, button, destroy, yes = kernel.run(
        "%load_ext spalloc_nb\n"
        "from spalloc_nb import job_widget\n"
        "a = %spalloc 1 --wait\n"
        "w = job_widget(a)\n"
        "print(a.id, w._power_off.model_id, w._destroy.model_id, w._confirm_yes.model_id)"
    )[1].split()
    (job,) = [j for j in emulator.jobs() if j.job_id == int(job_id)]
    create = kernel.client.session.msg("create_subshell_request", {})
    kernel.client.control_channel.send(create)
    reply = kernel.client.get_control_msg(timeout=10)
    assert reply["content"]["status"] == "ok", reply["content"]
    subshell = reply["content"]["subshell_id"]
    busy = kernel.client.execute("import time; time.sleep(20)")  # the busy main shell

    def click(model_id: str) -> None:
        msg = kernel.client.session.msg(
            "comm_msg",
            {"comm_id": model_id, "data": {"method": "custom", "content": {"event": "click"}}},
        )
        msg["header"]["subshell_id"] = subshell
        kernel.client.shell_channel.send(msg)

    time.sleep(0.5)  # the sleep has started
    started = time.monotonic()
    click(button)
    wait_for(lambda: emulator.board_power(str(job.machine), job.boards[0]) is False, timeout=10)
    powered_off = time.monotonic() - started
    click(destroy)
    click(yes)
    wait_for(lambda: int(job_id) not in live(emulator), timeout=10)
    destroyed = time.monotonic() - started
    print(f"power off after {powered_off:.2f} s, destroyed after {destroyed:.2f} s")
    # Both took effect while the cell still ran: its execute_reply has not come yet (a fact
    # about order, not a time limit that a loaded box could break).
    with pytest.raises(queue.Empty):
        kernel.client.get_shell_msg(timeout=0)
    kernel.manager.interrupt_kernel()
    assert kernel.client.get_shell_msg(timeout=10)["parent_header"]["msg_id"] == busy


def test_a_job_destroyed_elsewhere_ends_its_output(kernel: Kernel, emulator: Emulator) -> None:
    """The job's listener thread replaces the output: no cell runs when the job ends."""
    shown: list[dict[str, Any]] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "display_data":
            shown.append(msg["content"])

    kernel.client.execute_interactive(
        "%load_ext spalloc_nb\n%spalloc 1 --wait", timeout=30, output_hook=hook
    )
    (live,) = shown
    job_id = int(live["data"]["text/plain"].split(":")[0].split()[1])
    drain_iopub(kernel, 1.0)
    from spalloc.client import ProtocolClient

    with ProtocolClient(emulator.host, emulator.port, timeout=10) as other:
        other.destroy_job(job_id, "Taken back by the admin.")
    updates = [m["content"] for m in drain_iopub(kernel) if m["msg_type"] == "update_display_data"]
    assert [u["transient"]["display_id"] for u in updates] == [live["transient"]["display_id"]]
    assert updates[0]["data"]["text/plain"].startswith(
        f"Job {job_id} \u2014 destroyed: Taken back by the admin"
    )
