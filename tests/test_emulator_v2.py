"""The emulator's v2 REST service over HTTPS: every endpoint, bearer tokens, logout, CSRF,
long-polls, and the one-controller view shared with v1 (the password logins and the login page
are in test_emulator_logins.py)."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest

from spalloc import ProtocolClient
from tests._v2 import Http, V2Server, long_polls

KEEPALIVE = "PT60S"


def alice(server: V2Server) -> Http:
    user = server.users["alice"]
    assert user.password is not None
    http = server.http()
    assert http.login(user.name, user.password).status == 302
    return http


def create(http: Http, **body: Any) -> int:
    body.setdefault("keepalive-interval", KEEPALIVE)
    reply = http.request("POST", "srv/spalloc/jobs/", json_body=body)
    assert reply.status == 201, reply.text
    job_id: int = reply.json()["job-id"]
    assert reply.headers["Location"] == reply.json()["job-ref"]
    assert reply.headers["Location"].endswith(f"/srv/spalloc/jobs/{job_id}")
    return job_id


def wait_state(http: Http, job_id: int, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        doc: dict[str, Any] = http.get(f"srv/spalloc/jobs/{job_id}", query={"wait": "False"}).json()
        if doc["state"] == state or time.monotonic() > deadline:
            assert doc["state"] == state
            return doc
        time.sleep(0.02)


# --- logins ---------------------------------------------------------------------------------


def test_bearer_token_needs_no_csrf_and_can_open_a_session(v2_server: V2Server) -> None:
    http = v2_server.http().bearer("alice-token")
    job_id = create(http, **{"num-boards": 1})
    assert http.get(f"srv/spalloc/jobs/{job_id}").json()["owner"] == "alice"
    # SpiNNMan's way: the login page with a bearer token gives an authenticated session.
    session = v2_server.http()
    session.headers["Authorization"] = "Bearer alice-token"
    session.get("system/login.html")
    del session.headers["Authorization"]
    assert session.get("srv/spalloc/").status == 200
    assert v2_server.http().bearer("no-such-token").get("srv/spalloc/").status == 401


def test_logout_ends_the_session(v2_server: V2Server) -> None:
    http = alice(v2_server)
    assert http.get("system/perform_logout").status == 302
    assert http.get("srv/spalloc/").status == 401


# --- CSRF -----------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong"])
def test_state_changing_requests_need_the_csrf_token(
    v2_server: V2Server, token: str | None
) -> None:
    http = alice(v2_server)
    job_id = create(http)
    headers = {} if token is None else {"X-CSRF-TOKEN": token}
    for method, path, body in [
        ("POST", "srv/spalloc/jobs", {"keepalive-interval": KEEPALIVE}),
        ("PUT", f"srv/spalloc/jobs/{job_id}/keepalive", None),
        ("DELETE", f"srv/spalloc/jobs/{job_id}", None),
        ("POST", f"srv/spalloc/jobs/{job_id}/machine/power", {"power": "OFF"}),
    ]:
        reply = http.request(method, path, json_body=body, csrf=False, headers=headers)
        assert reply.status == 403, (method, path)
        assert reply.headers["Content-Type"].startswith("text/plain")
    assert len(v2_server.emulator.jobs()) == 1


def test_basic_auth_post_without_a_session_is_refused(v2_server: V2Server) -> None:
    http = v2_server.http().basic("alice", "alice-secret")
    http.cookie = None
    reply = http.request("POST", "srv/spalloc/jobs", json_body={"keepalive-interval": "PT60S"})
    assert reply.status == 403


# --- machines and where-is ------------------------------------------------------------------


def test_machines_list_and_detail(v2_server: V2Server) -> None:
    http = alice(v2_server)
    machines = http.get("srv/spalloc/machines/").json()["machines"]
    assert [m["name"] for m in machines] == ["m2", "one"]
    m2, one = machines
    assert m2["tags"] == ["default"] and (m2["width"], m2["height"]) == (2, 1)
    assert m2["uri"] == v2_server.base_url + "srv/spalloc/machines/m2"
    assert {(b["x"], b["y"], b["z"]) for b in one["dead-boards"]} == {(0, 0, 1), (0, 0, 2)}
    assert "address" not in one["dead-boards"][0]  # only admins see addresses
    detail = http.get("srv/spalloc/machines/m2").json()
    assert detail["down-boards"] == [] and detail["down-links"] == []
    assert detail["lookup-by-chip"].endswith("/machines/m2/chip")
    assert http.get("srv/spalloc/machines/nope").status == 404
    root = v2_server.http().basic("root", "root-secret")
    dead = root.get("srv/spalloc/machines").json()["machines"][1]["dead-boards"][0]
    assert "address" in dead


def test_where_is_by_logical_physical_chip_and_address(v2_server: V2Server) -> None:
    http = alice(v2_server)
    base = "srv/spalloc/machines/m2/"
    logical = http.get(base + "logical-board", query={"x": 1, "y": 0, "z": 2}).json()
    assert logical["logical-board-coordinates"] == [1, 0, 2]
    assert logical["machine-ref"].endswith("/machines/m2")
    assert "job-id" not in logical
    cfb = logical["physical-board-coordinates"]
    physical = http.get(
        base + "physical-board", query={"cabinet": cfb[0], "frame": cfb[1], "board": cfb[2]}
    ).json()
    assert physical == logical
    chip = http.get(base + "chip", query={"x": logical["chip"][0], "y": logical["chip"][1]}).json()
    assert chip["logical-board-coordinates"] == [1, 0, 2]
    machine = v2_server.emulator.machines[0]
    address = machine.ip((1, 0, 2))
    by_ip = http.get(base + "board-ip", query={"address": address}).json()
    assert by_ip["logical-board-coordinates"] == [1, 0, 2]
    missing = http.get(base + "board-ip", query={"address": "10.9.9.9"})
    assert (missing.status, missing.text) == (404, "failed to locate board")
    assert http.get(base + "chip", query={"x": "one", "y": 0}).status == 400


# --- jobs -----------------------------------------------------------------------------------


def test_job_life_cycle(v2_server: V2Server) -> None:
    http = alice(v2_server)
    job_id = create(http, **{"num-boards": 3})
    state = wait_state(http, job_id, "READY")
    assert state["owner"] == "alice"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", state["start-time"])
    assert state["keepalive-host"] == "127.0.0.1"
    assert state["proxy-ref"] == re.sub(r"^https", "wss", v2_server.base_url) + f"proxy/{job_id}"
    assert state["original-request"]["num-boards"] == 3
    assert state["original-request"]["group"] == "g1"
    machine = http.get(f"srv/spalloc/jobs/{job_id}/machine").json()
    assert machine["machine-name"] == "m2" and machine["depth"] == 3
    assert len(machine["boards"]) == 3
    assert machine["connections"][0][0] == [0, 0]
    assert machine["power"].endswith(f"/jobs/{job_id}/machine/power")
    power = http.get(f"srv/spalloc/jobs/{job_id}/machine/power").json()
    assert power == {"power": "ON"}
    chip = http.get(f"srv/spalloc/jobs/{job_id}/chip", query={"x": 0, "y": 0}).json()
    assert chip["job-id"] == job_id and chip["job-chip"] == [0, 0]
    keepalive = http.request(
        "PUT",
        f"srv/spalloc/jobs/{job_id}/keepalive",
        body=b"alive",
        headers={"Content-Type": "text/plain; charset=UTF-8"},
    )
    assert (keepalive.status, keepalive.text) == (200, "ok")
    off = http.request(
        "POST", f"srv/spalloc/jobs/{job_id}/machine/power", json_body={"power": "OFF"}
    )
    assert off.status == 202
    wait_state(http, job_id, "READY")
    assert http.get(f"srv/spalloc/jobs/{job_id}/machine/power").json() == {"power": "OFF"}
    gone = http.request("DELETE", f"srv/spalloc/jobs/{job_id}/", query={"reason": "test done"})
    assert gone.status == 204
    state = http.get(f"srv/spalloc/jobs//{job_id}/").json()  # SpiNNMan's doubled slash
    assert state["state"] == "DESTROYED" and state["reason"] == "test done"
    assert "finish-time" in state and "keepalive-host" not in state
    assert "proxy-ref" not in state
    assert http.get(f"srv/spalloc/jobs/{job_id}/machine").status == 204


def test_delete_without_reason_records_an_empty_reason(v2_server: V2Server) -> None:
    # JAX-RS fills in the parameter's @DefaultValue(""): the Java server's "unspecified"
    # fallback is never reached, and JobStateResponse shows the empty string.
    http = alice(v2_server)
    job_id = create(http)
    assert http.request("DELETE", f"srv/spalloc/jobs/{job_id}").status == 204
    assert http.get(f"srv/spalloc/jobs/{job_id}").json()["reason"] == ""
    with ProtocolClient(*v2_server.emulator.address) as v1:
        assert v1.get_job_state(job_id).reason == ""


def test_v1_destroy_without_reason_records_none(v2_server: V2Server) -> None:
    http = alice(v2_server)
    job_id = create(http)
    with ProtocolClient(*v2_server.emulator.address) as v1:
        v1.destroy_job(job_id)
        assert v1.get_job_state(job_id).reason is None
    state = http.get(f"srv/spalloc/jobs/{job_id}").json()
    assert state["state"] == "DESTROYED" and "reason" not in state


def test_queued_job_machine_is_204_and_proxy_ref_absent(v2_server: V2Server) -> None:
    http = alice(v2_server)
    whole = create(http, dimensions={"width": 2, "height": 1})
    queued = create(http, **{"num-boards": 1, "machine-name": "m2", "tags": None})
    state = http.get(f"srv/spalloc/jobs/{queued}").json()
    assert state["state"] == "QUEUED" and "proxy-ref" not in state
    assert http.get(f"srv/spalloc/jobs/{queued}/machine").status == 204
    assert http.get(f"srv/spalloc/jobs/{queued}/machine/power").status == 204
    assert http.request("DELETE", f"srv/spalloc/jobs/{whole}").status == 204
    wait_state(http, queued, "READY")


def test_create_by_board_forms(v2_server: V2Server) -> None:
    http = alice(v2_server)
    machine = v2_server.emulator.machines[0]
    location = machine.location((1, 0, 1))
    assert location is not None
    for board in [
        {"x": 1, "y": 0, "z": 1},
        {"cabinet": location[0], "frame": location[1], "board": location[2]},
        {"address": machine.ip((1, 0, 1))},
    ]:
        job_id = create(http, board=board)
        wait_state(http, job_id, "READY")
        boards = http.get(f"srv/spalloc/jobs/{job_id}/machine").json()["boards"]
        assert boards == [[1, 0, 1]]
        assert http.request("DELETE", f"srv/spalloc/jobs/{job_id}").status == 204


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({}, "keepalive interval must be at least PT30S"),
        ({"keepalive-interval": "PT29S"}, "keepalive interval must be at least PT30S"),
        ({"keepalive-interval": "PT301S"}, "keepalive interval must be no more than PT5M"),
        ({"keepalive-interval": "soon"}, "ISO-8601 duration"),
        (
            {"keepalive-interval": KEEPALIVE, "owner": "mallory"},
            "Only admin and NMPI users can specify an owner",
        ),
        (
            {"keepalive-interval": KEEPALIVE, "machine-name": "m2", "tags": ["default"]},
            "must not specify machine name and tags together",
        ),
        ({"keepalive-interval": KEEPALIVE, "max-dead-boards": -1}, "must not be negative"),
        ({"keepalive-interval": KEEPALIVE, "num-boards": "two"}, "num-boards must be a whole"),
        ({"keepalive-interval": KEEPALIVE, "num-boards": 0}, "num-boards must be at least 1"),
        ({"keepalive-interval": KEEPALIVE, "num-boards": 99}, "request cannot fit on machine"),
        ({"keepalive-interval": KEEPALIVE, "tags": ["nothing"]}, "no machine available"),
        ({"keepalive-interval": KEEPALIVE, "group": "g2"}, "not a member of group g2"),
        ({"keepalive-interval": KEEPALIVE, "group": "g1", "nmpi-job-id": 3}, "At most one of"),
        ({"keepalive-interval": KEEPALIVE, "colour": "red"}, "unknown field"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_create_requests_are_400_text(v2_server: V2Server, body: Any, text: str) -> None:
    http = alice(v2_server)
    reply = http.request("POST", "srv/spalloc/jobs", json_body=body)
    assert reply.status == 400
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert text in reply.text
    assert v2_server.emulator.jobs() == []


def test_owner_checks(v2_server: V2Server) -> None:
    http = alice(v2_server)
    job_id = create(http)
    bob = v2_server.http()
    assert bob.login("bob", "bob-secret").status == 302
    assert bob.get(f"srv/spalloc/jobs/{job_id}").status == 403
    assert bob.request("DELETE", f"srv/spalloc/jobs/{job_id}").status == 403
    # Bob has two groups, so he must name one.
    reply = bob.request("POST", "srv/spalloc/jobs", json_body={"keepalive-interval": KEEPALIVE})
    assert reply.status == 400 and "more than one group" in reply.text
    root = v2_server.http().basic("root", "root-secret")
    assert root.get(f"srv/spalloc/jobs/{job_id}").json()["owner"] == "alice"
    on_behalf = create(root, owner="carol")
    assert root.get(f"srv/spalloc/jobs/{on_behalf}").json()["owner"] == "carol"
    assert http.get("srv/spalloc/jobs/999").status == 404


def test_jobs_list_paging_and_deleted(v2_server: V2Server) -> None:
    http = alice(v2_server)
    ids = [create(http, **{"num-boards": 1}) for _ in range(5)]
    http.request("DELETE", f"srv/spalloc/jobs/{ids[0]}")
    listed = http.get("srv/spalloc/jobs").json()
    assert [int(u.rsplit("/", 1)[1]) for u in listed["jobs"]] == sorted(ids[1:], reverse=True)
    page = http.get("srv/spalloc/jobs", query={"limit": 2, "start": 0})
    assert len(page.json()["jobs"]) == 2 and "next" in page.json() and "prev" not in page.json()
    assert 'rel="next"' in page.headers["Link"]
    second = http.get(page.json()["next"]).json()
    assert "prev" in second and len(second["jobs"]) == 2
    everything = http.get("srv/spalloc/jobs", query={"deleted": "TRUE"}).json()["jobs"]
    assert len(everything) == 5
    assert http.get("srv/spalloc/jobs", query={"limit": 201}).status == 400
    assert http.get("srv/spalloc/jobs", query={"start": -1}).status == 400


def test_not_implemented_endpoints_and_report_issue(v2_server: V2Server) -> None:
    http = alice(v2_server)
    job_id = create(http)
    assert http.get(f"srv/spalloc/jobs/{job_id}/memory", query={"x": 0}).status == 501
    reply = http.request(
        "POST",
        f"srv/spalloc/jobs/{job_id}/report-issue",
        json_body={"issue": "smoke", "boards": []},
    )
    assert reply.status == 200 and "action" in reply.json()


def test_emergency_stop_needs_the_code(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests._v2 import running_v2_server

    with running_v2_server(
        tmp_path_factory.mktemp("stop"), emergency_stop_code="big-red-button"
    ) as server:
        http = alice(server)
        job_id = create(http)
        assert http.get("srv/spalloc/emergencyStop", query={"commandCode": "x"}).status == 403
        assert len(server.emulator.jobs()) == 1
        reply = http.get("srv/spalloc/emergencyStop", query={"commandCode": "big-red-button"})
        assert reply.status == 200
        assert server.emulator.jobs() == []
        assert http.get(f"srv/spalloc/jobs/{job_id}").json()["reason"] == "emergency stop"


# --- long-polls -----------------------------------------------------------------------------


def test_wait_true_returns_when_the_job_changes(v2_server: V2Server) -> None:
    http = alice(v2_server)
    job_id = create(http)
    wait_state(http, job_id, "READY")
    results: list[dict[str, Any]] = []
    waiter = threading.Thread(
        target=lambda: results.append(
            http.get(f"srv/spalloc/jobs/{job_id}", query={"wait": "true"}).json()
        )
    )
    waiter.start()
    long_polls(v2_server.emulator, lambda rest: rest._job_waiters.get(job_id))
    assert not results
    other = alice(v2_server)
    assert (
        other.request("DELETE", f"srv/spalloc/jobs/{job_id}", query={"reason": "wake"}).status
        == 204
    )
    waiter.join(10)
    assert results and results[0]["state"] == "DESTROYED"


def test_wait_gives_up_after_the_limit(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests._v2 import running_v2_server

    with running_v2_server(tmp_path_factory.mktemp("w"), wait_limit=0.3) as server:
        http = alice(server)
        job_id = create(http)
        wait_state(http, job_id, "READY")
        for path in (f"srv/spalloc/jobs/{job_id}", "srv/spalloc/jobs", "srv/spalloc/machines/m2"):
            assert http.get(path, query={"wait": "True"}).status == 200


def test_jobs_list_wait_wakes_on_a_new_job(v2_server: V2Server) -> None:
    http = alice(v2_server)
    results: list[list[str]] = []
    waiter = threading.Thread(
        target=lambda: results.append(
            http.get("srv/spalloc/jobs", query={"wait": "true"}).json()["jobs"]
        )
    )
    waiter.start()
    long_polls(v2_server.emulator, lambda rest: rest._list_waiters)
    create(alice(v2_server))
    waiter.join(10)
    assert results and len(results[0]) == 1


def test_keepalive_expiry_destroys_a_silent_job(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests._v2 import running_v2_server

    with running_v2_server(tmp_path_factory.mktemp("k"), keepalive_cap=0.3) as server:
        http = alice(server)
        job_id = create(http)
        state = wait_state(http, job_id, "DESTROYED")
        assert state["reason"] == "Job timed out."


# --- one controller, two front doors --------------------------------------------------------


def test_v1_and_v2_see_the_same_jobs(v2_server: V2Server) -> None:
    http = alice(v2_server)
    v2_job = create(http, **{"num-boards": 1})
    with ProtocolClient(*v2_server.emulator.address) as v1:
        v1_job = v1.create_job(1, owner="alice", keepalive=60.0)
        listed = {job.job_id: job for job in v1.list_jobs()}
        assert set(listed) == {v2_job, v1_job}
        assert listed[v2_job].owner == "alice"
        v2_view = wait_state(http, v1_job, "READY")
        assert v2_view["owner"] == "alice" and "original-request" not in v2_view
        http.request("DELETE", f"srv/spalloc/jobs/{v1_job}", query={"reason": "from v2"})
        assert v1.get_job_state(v1_job).reason == "from v2"
        v1.destroy_job(v2_job, "from v1")
    assert http.get(f"srv/spalloc/jobs/{v2_job}").json()["reason"] == "from v1"


def test_v1_notifications_fire_for_v2_changes(v2_server: V2Server) -> None:
    with ProtocolClient(*v2_server.emulator.address) as v1:
        v1.notify_job()
        job_id = create(alice(v2_server))
        changed = v1.wait_for_notification(10)
        assert changed is not None and job_id in changed["jobs_changed"]
