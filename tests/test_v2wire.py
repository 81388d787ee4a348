"""spalloc v2's documents turned into v1 values (``spalloc.service._v2wire``): pure functions,
checked on the shapes the Java server writes (V2_PROTOCOL.md §1.2-§1.7)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from spalloc.exceptions import ProtocolError
from spalloc.service import JobRequest
from spalloc.service import _v2wire as wire
from spalloc.states import JobState
from tests.conftest import job_request

EPOCH = datetime(2021, 10, 11, 12, 13, 14, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("2021-10-11T12:13:14Z", EPOCH),
        ("2021-10-11T12:13:14.5Z", EPOCH + 0.5),
        ("2021-10-11T12:13:14.123Z", EPOCH + 0.123),
        ("2021-10-11T12:13:14.123456789Z", EPOCH + 0.123456),  # Instant's nanoseconds
        ("2021-10-11T13:13:14+01:00", EPOCH),
        (None, None),
    ],
)
def test_instants(text: str | None, seconds: float | None) -> None:
    assert wire.parse_time(text) == (None if seconds is None else pytest.approx(seconds))


@pytest.mark.parametrize("bad", ["yesterday", "2021-10-11", 12, "2021-10-11T25:00:00Z"])
def test_bad_instants_are_protocol_errors(bad: object) -> None:
    with pytest.raises(ProtocolError, match="malformed time"):
        wire.parse_time(bad)


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("PT60S", 60.0),
        ("PT2M", 120.0),
        ("PT1M30.5S", 90.5),
        ("P1DT1H", 90000.0),
        (45, 45.0),
        (None, None),
    ],
)
def test_durations(text: object, seconds: float | None) -> None:
    assert wire.parse_duration(text) == seconds


def test_durations_round_trip() -> None:
    for seconds in (30.0, 45.5, 300.0):
        assert wire.parse_duration(wire.iso_duration(seconds)) == seconds
    with pytest.raises(ProtocolError):
        wire.parse_duration("PT")


def request(*args: int, **changes: Any) -> JobRequest:
    return job_request(*args, owner="someone", **changes)


def test_create_bodies() -> None:
    assert wire.create_body(request()) == {
        "keepalive-interval": "PT60S",
        "tags": ["default"],
        "max-dead-boards": 0,
    }
    assert wire.create_body(request(3))["num-boards"] == 3
    assert wire.create_body(request(2, 1))["dimensions"] == {"width": 2, "height": 1}
    assert wire.create_body(request(1, 2, 0))["board"] == {"x": 1, "y": 2, "z": 0}
    named = wire.create_body(request(machine="m", tags=None))
    assert named["machine-name"] == "m" and "tags" not in named
    assert "owner" not in named  # the login owns the job


@pytest.mark.parametrize("keepalive", [None, 0.0, 29.9, 300.5, float("nan"), float("inf")])
def test_keepalives_v2_refuses(keepalive: float | None) -> None:
    with pytest.raises(ValueError, match="between 30 and 300 seconds"):
        wire.create_body(request(keepalive=keepalive))


def test_accounting() -> None:
    assert wire.accounting("g", None, {"NMPI_JOB_ID": "5"}) == {"group": "g"}
    assert wire.accounting(None, "c", {}) == {"nmpi-collab": "c"}
    assert wire.accounting(None, None, {}) == {}
    assert wire.accounting(None, None, {"NMPI_JOB_ID": "5", "NMPI_USER": "u"}) == {
        "nmpi-job-id": 5,
        "owner": "u",
    }
    with pytest.raises(ValueError):
        wire.accounting("g", "c", {})


def test_job_state_and_machine_as_v1_gives_them() -> None:
    doc = {
        "state": "READY",
        "owner": "alice",
        "start-time": "2021-10-11T12:13:14Z",
        "keepalive-host": "10.0.0.1",
        "keep-alive-time": "2021-10-11T12:14:00Z",
        "original-request": {"num-boards": 3, "keepalive-interval": "PT45S"},
    }
    state = wire.job_state(doc, True)
    assert (state.state, state.power, state.keepalive, state.reason) == (
        JobState.ready,
        True,
        45.0,
        None,
    )
    assert state.start_time == EPOCH and state.keepalivehost == "10.0.0.1"
    assert wire.job_state({"state": "QUEUED"}, True).power is None  # no boards: no power
    assert wire.job_state({"state": "DESTROYED", "reason": "done"}, None).reason == "done"
    assert wire.state_of({"state": "weird"}) is JobState.unknown
    machine = {
        "width": 1,
        "height": 1,
        "depth": 3,
        "machine-name": "m",
        "connections": [[[0, 0], "10.0.0.1"], [[8, 4], "10.0.0.2"], [[4, 8], "10.0.0.3"]],
        "boards": [[0, 0, 0], [0, 0, 1], [0, 0, 2]],
    }
    info = wire.machine_info(machine, (2, 2))
    assert (info.width, info.height) == (16, 16)  # a triad of a bigger machine: 12 + 4
    assert info.connections == {(0, 0): "10.0.0.1", (8, 4): "10.0.0.2", (4, 8): "10.0.0.3"}
    assert wire.machine_info(machine, (1, 1)).width == 12  # the whole wrapped machine
    one = dict(machine, boards=[[1, 0, 2]], connections=[[[0, 0], "10.0.0.9"]], depth=1)
    assert (wire.machine_info(one, (2, 2)).width, wire.machine_info(one, (2, 2)).height) == (8, 8)
    with pytest.raises(ProtocolError):
        wire.machine_info({"machine-name": "m", "boards": [[0, 0]]}, (1, 1))
