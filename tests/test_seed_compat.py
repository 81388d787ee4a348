"""Code written for the original 1!6.0.0 client runs unchanged (issue 17), against the emulator.

The config's ``tags`` as the original reports them, and each user of the config still asking
for the ``default`` tag when neither a machine nor tags are given; ``ProtocolClient``'s
replies behaving as the server's objects; and attributes that are not server commands.
"""

from __future__ import annotations

import argparse
import copy
import json
import pickle
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from spalloc import Job, JobState, ProtocolClient, ProtocolError, SpallocServerException
from spalloc.config import SpallocConfig, load_config
from spalloc.emulator import Emulator
from spalloc.ui.options import add_job_options, add_server_options, job_arguments
from tests.conftest import V1_COMMANDS, WAIT, LineClient, wait_for

pytestmark = pytest.mark.usefixtures("isolated_config")


# --- config tags: None unless set, "default" applied where a job is asked for ----------------


def _sent_kwargs(
    emulator: Emulator, connect: Callable[..., LineClient], job_id: int
) -> dict[str, Any]:
    """The keywords the server received for *job_id*, as it echoes them in list_jobs."""
    with connect(emulator) as raw:
        (entry,) = [job for job in raw.call("list_jobs") if job["job_id"] == job_id]
    kwargs: dict[str, Any] = entry["kwargs"]
    return kwargs


def _sent(emulator: Emulator, connect: Callable[..., LineClient], **kwargs: Any) -> dict[str, Any]:
    """Create a Job from the config (and *kwargs*); the keywords the server received."""
    job = Job(1, keepalive=None, **kwargs)
    try:
        assert job.id is not None
        return _sent_kwargs(emulator, connect, job.id)
    finally:
        job.destroy()


@pytest.mark.parametrize(
    "config,expected",
    [
        ("", {"tags": ["default"], "machine": None}),
        ("tags = None\n", {"tags": None, "machine": None}),  # the server's default, explicitly
        ("tags = single\n", {"tags": ["single"], "machine": None}),
        ("machine = m4x2\n", {"tags": None, "machine": "m4x2"}),
    ],
)
def test_job_asks_for_what_the_config_says(
    emulator: Emulator,
    connect: Callable[..., LineClient],
    tmp_path: Path,
    config: str,
    expected: dict[str, Any],
) -> None:
    (tmp_path / ".spalloc").write_text(
        f"[spalloc]\nhostname = {emulator.host}\nport = {emulator.port}\nowner = me\n{config}",
        encoding="utf-8",
    )
    reported = load_config().tags
    assert reported == (("single",) if "single" in config else None)
    sent = _sent(emulator, connect)
    assert {key: sent.get(key) for key in expected} == expected


def test_job_arguments_still_override_the_config(
    emulator: Emulator, connect: Callable[..., LineClient], tmp_path: Path
) -> None:
    (tmp_path / ".spalloc").write_text(
        f"[spalloc]\nhostname = {emulator.host}\nport = {emulator.port}\nowner = me\n"
        "machine = m4x2\n",
        encoding="utf-8",
    )
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


@pytest.fixture
def client(emulator: Emulator) -> Iterator[ProtocolClient]:
    with ProtocolClient(emulator.host, emulator.port, timeout=WAIT) as c:
        yield c


def _same_as_sent(record: Any, sent: Any) -> None:
    """*record* behaves as the server's object *sent* does, in every way the seed's code can
    use it, and stays read-only."""
    assert isinstance(record, Mapping) and isinstance(sent, dict)
    assert record == sent and sent == record and (record != sent) is False
    assert dict(record) == sent and type(dict(record)) is dict
    assert json.loads(json.dumps(record)) == sent
    assert json.dumps(record, sort_keys=True) == json.dumps(sent, sort_keys=True)
    assert sorted(record) == sorted(sent) and len(record) == len(sent)
    assert list(record.items()) == list(sent.items())
    for key, value in sent.items():
        assert key in record and record[key] == value and record.get(key) == value
    assert "no such key" not in record and record.get("no such key", 7) == 7
    with pytest.raises(KeyError):
        record["no such key"]
    for change in (
        lambda r: r.__setitem__("x", 1),
        lambda r: r.update(x=1),
        lambda r: r.pop(next(iter(sent))),
        lambda r: r.clear(),
        lambda r: r.setdefault("x", 1),
        lambda r: r.popitem(),
    ):
        with pytest.raises(TypeError, match="read-only"):
            change(record)
    assert record == sent  # nothing was lost
    with pytest.raises(AttributeError):
        record.raw = {}  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        record.raw["x"] = 1  # type: ignore[attr-defined]
    assert record.raw == sent  # type: ignore[attr-defined]
    copied = pickle.loads(pickle.dumps(record))
    assert type(copied) is type(record) and copied == record
    fields = record._fields  # type: ignore[attr-defined]
    assert [getattr(copied, key) for key in fields] == [getattr(record, key) for key in fields]
    assert copy.deepcopy(record) == record


def test_get_job_state_is_the_servers_object(
    client: ProtocolClient, connect: Callable[..., LineClient], emulator: Emulator
) -> None:
    job_id = client.create_job(1, owner="me", keepalive=60.0)
    wait_for(lambda: client.get_job_state(job_id).state is JobState.ready)
    with connect(emulator) as raw:
        sent = raw.call("get_job_state", job_id)
        state = client.get_job_state(job_id)
        _same_as_sent(state, sent)
        assert "reason" in state and state["reason"] is None  # the seed's idiom
        assert state.state is JobState.ready and state["state"] == 3
        client.destroy_job(job_id, "done")
        sent = raw.call("get_job_state", job_id)
    state = client.get_job_state(job_id)
    _same_as_sent(state, sent)
    assert state.reason == state["reason"] == "done"
    assert client.get_job_state(99999) == raw_unknown(emulator, connect)


def raw_unknown(emulator: Emulator, connect: Callable[..., LineClient]) -> Any:
    with connect(emulator) as raw:
        return raw.call("get_job_state", 99999)


def test_machine_info_jobs_machines_and_where_is_are_the_servers_objects(
    client: ProtocolClient, connect: Callable[..., LineClient], emulator: Emulator
) -> None:
    queued_info = client.get_job_machine_info(
        client.create_job(1, owner="me", keepalive=None, machine="no such machine")
    )
    job_id = client.create_job(2, 1, owner="me", keepalive=None)
    wait_for(lambda: client.get_job_state(job_id).state is JobState.ready)
    with connect(emulator) as raw:
        replies = {
            "get_job_machine_info": raw.call("get_job_machine_info", job_id),
            "list_jobs": raw.call("list_jobs"),
            "list_machines": raw.call("list_machines"),
            "where_is": raw.call("where_is", job_id=job_id, chip_x=4, chip_y=0),
            "nowhere": raw.call("where_is", machine="board1", x=0, y=0, z=1),
        }
    info = client.get_job_machine_info(job_id)
    _same_as_sent(info, replies["get_job_machine_info"])
    assert info.connections is not None and info.connections[(0, 0)] == info["connections"][0][1]
    jobs, machines = client.list_jobs(), client.list_machines()
    assert jobs == replies["list_jobs"] and machines == replies["list_machines"]
    assert json.loads(json.dumps([jobs, machines])) == [
        replies["list_jobs"],
        replies["list_machines"],
    ]
    for record, sent in zip(
        [*jobs, *machines], replies["list_jobs"] + replies["list_machines"], strict=True
    ):
        _same_as_sent(record, sent)
    assert [job.job_id for job in jobs] == [job["job_id"] for job in jobs]
    found = client.where_is(job_id=job_id, chip_x=4, chip_y=0)
    assert found is not None and found.job_id == found["job_id"] == job_id
    _same_as_sent(found, replies["where_is"])
    assert client.where_is(machine="board1", x=0, y=0, z=1) is replies["nowhere"] is None
    assert queued_info == {
        "width": None,
        "height": None,
        "connections": None,
        "machine_name": None,
        "boards": None,
    }


def test_board_positions_are_the_servers_lists(
    client: ProtocolClient, connect: Callable[..., LineClient], emulator: Emulator
) -> None:
    with connect(emulator) as raw:
        physical = raw.call("get_board_position", machine_name="m4x2", x=1, y=1, z=2)
        logical = raw.call("get_board_at_position", machine_name="m4x2", x=0, y=0, z=1)
    assert client.get_board_position("m4x2", 1, 1, 2) == physical
    assert client.get_board_at_position("m4x2", 0, 0, 1) == logical
    assert isinstance(physical, list) and isinstance(logical, list)
    assert client.get_board_position("board1", 0, 0, 1) is None  # no such board


def test_records_built_from_typed_values_hold_what_the_server_sends(client: ProtocolClient) -> None:
    job_id = client.create_job(1, owner="me", keepalive=None)
    wait_for(lambda: client.get_job_state(job_id).state is JobState.ready)
    records: list[Any] = [
        client.get_job_state(job_id),
        client.get_job_machine_info(job_id),
        *client.list_jobs(),
        *client.list_machines(),
        client.where_is(job_id=job_id, chip_x=0, chip_y=0),
    ]
    for record in records:
        values = {key: getattr(record, key) for key in record._fields}
        rebuilt = type(record)(**values)
        assert rebuilt == record, type(record).__name__
        assert type(record)(*values.values()) == record
        assert repr(rebuilt) == repr(record)
    state = records[0]
    changed = state._replace(reason="gone")
    assert (changed.reason, changed["reason"], state["reason"]) == ("gone", "gone", None)
    with pytest.raises(AttributeError, match="cannot be changed"):
        state.reason = "x"


# --- attributes that are not server commands --------------------------------------------------


def test_only_server_commands_are_methods(client: ProtocolClient) -> None:
    for name in ("bar", "_bar", "no_such_command", "__wrapped__"):
        assert not hasattr(client, name)
        with pytest.raises(AttributeError, match=name):
            getattr(client, name)
    with pytest.raises(AttributeError):
        client.bar()
    # Every command of the protocol is a method, and calls the server.
    for command in (
        *V1_COMMANDS,
        "report_problem",
        "login",
    ):
        assert callable(getattr(client, command)), command
    assert client.version() == client.call("version")
    assert client.create_job(1, owner="dummy", keepalive=None) in [
        job.job_id for job in client.list_jobs()
    ]
    # The Java server's extras go to the server like any command; the emulator, as the
    # Python server, answers a command it does not know by closing the connection.
    with pytest.raises((SpallocServerException, ProtocolError)):
        client.report_problem("127.0.0.1", x=0, y=0, p=1, description="x")
    assert not client.connected
