"""Code written for the original 1!6.0.0 client runs unchanged (issue 17), against the emulator.

The config's ``tags`` as the original reports them, and each user of the config still asking
for the ``default`` tag when neither a machine nor tags are given; ``ProtocolClient``'s
replies behaving as the server's objects; and attributes that are not server commands.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spalloc import Job
from spalloc.config import SpallocConfig, load_config
from spalloc.emulator import Emulator
from spalloc.ui.options import add_job_options, add_server_options, job_arguments
from tests.conftest import LineClient

pytestmark = pytest.mark.usefixtures("isolated_config")


# --- config tags: None unless set, "default" applied where a job is asked for ----------------

def _sent_kwargs(emulator: Emulator, connect: Callable[..., LineClient],
                 job_id: int) -> dict[str, Any]:
    """The keywords the server received for *job_id*, as it echoes them in list_jobs."""
    with connect(emulator) as raw:
        (entry,) = [job for job in raw.call("list_jobs") if job["job_id"] == job_id]
    kwargs: dict[str, Any] = entry["kwargs"]
    return kwargs


def _sent(emulator: Emulator, connect: Callable[..., LineClient],
          **kwargs: Any) -> dict[str, Any]:
    """Create a Job from the config (and *kwargs*); the keywords the server received."""
    job = Job(1, keepalive=None, **kwargs)
    try:
        return _sent_kwargs(emulator, connect, job.id)
    finally:
        job.destroy()


@pytest.mark.parametrize("config,expected", [
    ("", {"tags": ["default"], "machine": None}),
    ("tags = None\n", {"tags": None, "machine": None}),  # the server's default, explicitly
    ("tags = single\n", {"tags": ["single"], "machine": None}),
    ("machine = m4x2\n", {"tags": None, "machine": "m4x2"}),
])
def test_job_asks_for_what_the_config_says(emulator: Emulator,
                                           connect: Callable[..., LineClient], tmp_path: Path,
                                           config: str, expected: dict[str, Any]) -> None:
    (tmp_path / ".spalloc").write_text(
        f"[spalloc]\nhostname = {emulator.host}\nport = {emulator.port}\nowner = me\n{config}",
        encoding="utf-8")
    reported = load_config().tags
    assert reported == (("single",) if "single" in config else None)
    sent = _sent(emulator, connect)
    assert {key: sent.get(key) for key in expected} == expected


def test_job_arguments_still_override_the_config(emulator: Emulator,
                                                 connect: Callable[..., LineClient],
                                                 tmp_path: Path) -> None:
    (tmp_path / ".spalloc").write_text(
        f"[spalloc]\nhostname = {emulator.host}\nport = {emulator.port}\nowner = me\n"
        "machine = m4x2\n", encoding="utf-8")
    assert _sent(emulator, connect, machine=None)["tags"] == ["default"]  # any machine
    sent = _sent(emulator, connect, tags=["default"])  # tags win over the config's machine
    assert (sent["tags"], sent.get("machine")) == (["default"], None)


def _cli_job_kwargs(config: SpallocConfig, *argv: str) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    add_job_options(parser, config)
    add_server_options(parser, config, owner=True, keepalive=True)
    return job_arguments(parser.parse_args(list(argv)))[1]


def test_command_line_defaults_to_the_default_tag_as_before() -> None:
    config = SpallocConfig(hostname="h", owner="o")
    assert config.tags is None
    assert _cli_job_kwargs(config)["tags"] == ["default"]
    assert _cli_job_kwargs(config, "-m", "m4x2")["tags"] is None
    assert _cli_job_kwargs(config._replace(tags=("a", "b")))["tags"] == ["a", "b"]
    assert _cli_job_kwargs(config, "-t")["tags"] == []  # -t alone: any machine


# --- replies that are the server's objects ----------------------------------------------------
