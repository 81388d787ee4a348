"""The board map's Python side, without a browser: layout, traits, live following, where-is.

Everything runs against the emulator on 127.0.0.1 port 0 through the real client; waits are
bounded in time and count.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import traitlets

from spalloc import Job, ProtocolClient, ProtocolError
from spalloc.emulator import Emulator
from spalloc.geometry import Link, neighbour
from spalloc_nb.widgets.boardmap import (
    JOB_COLOURS,
    BoardMap,
    hex_cell,
    job_colour,
    job_key,
    static_html,
)
from tests.conftest import standard_machine, wait_for

WAIT = 5.0
# Layout-cell offset of the hexagon across each link (must match LINK_STEP in maphex.js).
LINK_STEP = [(1, 1), (1, -1), (0, -2), (-1, -1), (-1, 1), (0, 2)]


@pytest.fixture
def maps() -> Iterator[list[BoardMap]]:
    """Collects maps made by a test and stops them at teardown."""
    made: list[BoardMap] = []
    yield made
    for widget in made:
        widget.close()


def live_map(maps: list[BoardMap], *args: Any, **kwargs: Any) -> BoardMap:
    widget = BoardMap.for_machine(*args, **kwargs)
    maps.append(widget)
    wait_for(lambda: widget.status == "live" and widget.boards)
    return widget


def answered(widget: BoardMap) -> dict[str, Any]:
    return wait_for(
        lambda: widget.answer if widget.answer and not widget.answer.get("pending") else None
    )


# --- pure helpers ---------------------------------------------------------------------------


def test_neighbours_across_links_are_adjacent_hexagons() -> None:
    width, height = 3, 3
    checked = 0
    for board in itertools.product(range(width), range(height), range(3)):
        col, row = hex_cell(board)
        for link in Link:
            other, seam_x, seam_y = neighbour(board, link, width, height)
            if seam_x or seam_y:
                continue  # wrap-around links leave the drawing
            assert hex_cell(other) == (col + LINK_STEP[link][0], row + LINK_STEP[link][1]), (
                board,
                link,
            )
            checked += 1
    assert checked > 100


def test_layout_matches_spalloc_machine_text_map() -> None:
    # CLIENT_BEHAVIOUR.md §2.5: a 2x2-triad machine draws as hexagon columns of 2, 3, 3, 3, 1.
    cells = [hex_cell(b) for b in itertools.product(range(2), range(2), range(3))]
    columns = sorted({c for c, _ in cells})
    assert [sum(1 for c, _ in cells if c == col) for col in columns] == [2, 3, 3, 3, 1]
    # North is up: board 2 of a triad sits straight above board 0.
    assert hex_cell((0, 0, 2)) == (0, -2)


def test_every_board_of_a_1200_board_machine_has_its_own_hexagon() -> None:
    cells = {hex_cell(b) for b in itertools.product(range(20), range(20), range(3))}
    assert len(cells) == 1200


def test_job_keys_and_colours() -> None:
    assert [job_key(i) for i in (0, 1, 25, 26, 27, 51, 52)] == [
        "A",
        "B",
        "Z",
        "AA",
        "AB",
        "AZ",
        "BA",
    ]
    assert [job_colour(i) for i in range(15)] == list(JOB_COLOURS)
    assert len(set(JOB_COLOURS)) == 15
    # The jobs on one map never share a colour, however many there are.
    many = [job_colour(i) for i in range(120)]
    assert len(set(many)) == 120
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in many)
    assert not {"#eef0f2", "#9a9a9a"} & set(many)  # free and dead boards


def test_owner_change_marks_jobs_mine_without_a_server() -> None:
    widget = BoardMap(
        jobs=[{"id": 1, "owner": "a", "mine": False}, {"id": 2, "owner": "b", "mine": False}]
    )
    widget.my_owner = "b"
    assert [j["mine"] for j in widget.jobs] == [False, True]
    widget.my_owner = None
    assert [j["mine"] for j in widget.jobs] == [False, False]
    assert "BoardMap(machine=''" in repr(widget)
    widget.close()


def test_widget_loads_its_es_module_and_css() -> None:
    widget = BoardMap()
    assert "export default" in str(widget._esm)
    assert ".spalloc-boardmap" in str(widget._css)
    widget.close()


# --- against the emulator -------------------------------------------------------------------


def test_map_shows_the_machine_with_locations_and_ips(
    emulator: Emulator, maps: list[BoardMap]
) -> None:
    widget = live_map(maps, emulator, "m4x2", owner="alice")
    machine = next(m for m in emulator.machines if m.name == "m4x2")
    assert (widget.machine, widget.width, widget.height) == ("m4x2", 4, 2)
    assert len(widget.boards) == 24
    for record in widget.boards:
        board = (record["x"], record["y"], record["z"])
        assert (record["col"], record["row"]) == hex_cell(board)
        assert record["loc"] == list(machine.board_locations[board])
        assert record["ip"] == machine.board_ips[board]
        assert record["dead"] is False
    assert widget.jobs == []


def test_jobs_appear_and_vanish_live(emulator: Emulator, maps: list[BoardMap]) -> None:
    widget = live_map(maps, emulator.address, "m4x2", owner="alice")
    with ProtocolClient(*emulator.address, timeout=WAIT) as client:
        mine = client.create_job(3, owner="alice", keepalive=60, machine="m4x2")
        theirs = client.create_job(owner="bob", keepalive=60, machine="m4x2")
        jobs = wait_for(lambda: widget.jobs if len(widget.jobs) == 2 else None)
        by_id = {j["id"]: j for j in jobs}
        assert by_id[mine]["mine"] is True and by_id[theirs]["mine"] is False
        assert by_id[mine]["owner"] == "alice" and by_id[theirs]["owner"] == "bob"
        assert len(by_id[mine]["boards"]) == 3 and len(by_id[theirs]["boards"]) == 1
        assert [j["key"] for j in jobs] == ["A", "B"]
        assert [j["colour"] for j in jobs] == [job_colour(0), job_colour(1)]
        on_server = {j.job_id: sorted(j.boards or ()) for j in client.list_jobs()}
        assert by_id[mine]["boards"] == [list(b) for b in on_server[mine]]

        client.destroy_job(mine, "done")
        wait_for(lambda: [j["id"] for j in widget.jobs] == [theirs])
        client.destroy_job(theirs)
        wait_for(lambda: widget.jobs == [])


def test_no_traffic_while_nothing_changes(emulator: Emulator, maps: list[BoardMap]) -> None:
    target = live_map(maps, emulator, "m4x2")
    control = live_map(maps, emulator, "board1")
    changes: list[str] = []
    target.observe(lambda change: changes.append(change["name"]), names=traitlets.All)
    before = target._follower.refreshes if target._follower else -1
    with ProtocolClient(*emulator.address, timeout=WAIT) as client:
        # A job on another machine: the control map sees it, the target is not even told.
        job_id = client.create_job(owner="bob", keepalive=60, machine="board1")
        wait_for(lambda: control.jobs)
        client.power_off_job_boards(job_id)
        client.destroy_job(job_id)
        wait_for(lambda: control.jobs == [])
    assert target._follower is not None and target._follower.refreshes == before
    # A forced re-read that finds nothing new sends nothing to the browser.
    target.refresh()
    assert target._follower.refreshes == before + 1
    assert changes == []


def from_page(widget: BoardMap, state: dict[str, Any], message: dict[str, Any]) -> None:
    """Deliver what boardmap.js sends on a click: a state update, then a custom message."""
    widget._handle_msg({"content": {"data": {"method": "update", "state": state}}, "buffers": []})
    widget._handle_msg(
        {"content": {"data": {"method": "custom", "content": message}}, "buffers": []}
    )


def test_click_on_a_board_answers_where_is(emulator: Emulator, maps: list[BoardMap]) -> None:
    widget = live_map(maps, emulator, "m4x2")
    from_page(
        widget,
        {"selected": [1, 0, 2], "selected_chip": None},
        {"ask": "board", "board": [1, 0, 2], "chip": None},
    )
    assert widget.selected == [1, 0, 2]
    answer = answered(widget)
    assert answer["query"] == "board (1, 0, 2)"
    assert answer["logical"] == [1, 0, 2]
    machine = next(m for m in emulator.machines if m.name == "m4x2")
    assert answer["physical"] == list(machine.board_locations[(1, 0, 2)])
    assert answer["chip"] == [16, 8] and answer["job_id"] is None
    assert "board_chip" not in answer  # as spalloc-where-is: only for chip queries

    widget.where_is_board(1, 0, 2, chip=(5, 1))
    answer = wait_for(
        lambda: (
            widget.answer
            if widget.answer.get("query") == "chip (21, 9)" and not widget.answer.get("pending")
            else None
        )
    )
    assert answer["board_chip"] == [5, 1] and answer["logical"] == [1, 0, 2]
    assert widget.selected_chip == [5, 1]

    # The same board again, after another question, is asked again.
    widget.answer = {}
    from_page(
        widget,
        {"selected": [1, 0, 2], "selected_chip": None},
        {"ask": "board", "board": [1, 0, 2], "chip": None},
    )
    assert answered(widget)["query"] == "board (1, 0, 2)"

    from_page(widget, {}, {"ask": "board", "board": "nonsense"})
    assert "malformed request" in widget.answer["error"]


def test_job_chip_question_and_errors(emulator: Emulator, maps: list[BoardMap]) -> None:
    widget = live_map(maps, emulator, "m4x2")
    from_page(widget, {"chip_query": [0, 0]}, {"ask": "job_chip", "job_id": None, "chip": [0, 0]})
    assert "Pick a job first" in widget.answer["error"]
    with ProtocolClient(*emulator.address, timeout=WAIT) as client:
        job_id = client.create_job(1, 1, owner="carol", keepalive=60, machine="m4x2")
        wait_for(lambda: widget.jobs)
        from_page(
            widget,
            {"highlight_job": job_id, "chip_query": [9, 5]},
            {"ask": "job_chip", "job_id": job_id, "chip": [9, 5]},
        )
        answer = answered(widget)
        assert answer["query"] == f"chip (9, 5) of job {job_id}"
        assert answer["job_id"] == job_id and answer["job_chip"] == [9, 5]
        assert answer["board_chip"] == [1, 1]
        widget.where_is_job_chip(500, 500)  # the highlighted job; off its boards
        wait_for(
            lambda: (
                widget.answer.get("query") == f"chip (500, 500) of job {job_id}"
                and not widget.answer.get("pending")
            )
        )
        assert widget.answer["error"] == "No boards at the specified location"
        client.destroy_job(job_id)


def test_for_job_outlines_the_job_and_knows_its_ips(
    emulator: Emulator, maps: list[BoardMap]
) -> None:
    host, port = emulator.address
    job = Job(
        3, hostname=host, port=port, owner="dave", keepalive=30, machine="m4x2", config_filenames=[]
    )
    try:
        job.wait_until_ready(timeout=WAIT)
        widget = BoardMap.for_job(job)
        maps.append(widget)
        wait_for(lambda: widget.jobs and widget.status == "live")
        assert widget.highlight_job == job.id and widget.my_owner == "dave"
        assert widget.jobs[0]["mine"] is True
        # The job's own connections name its boards' IPs; other boards' IPs are unknown
        # (the map was given a client, not the emulator's machine description).
        machine = next(m for m in emulator.machines if m.name == "m4x2")
        ips = {(b["x"], b["y"], b["z"]): b["ip"] for b in widget.boards}
        held = {(b[0], b[1], b[2]) for b in job.boards or ()}
        assert len(held) == 3
        assert {b: ips[b] for b in held} == {b: machine.board_ips[b] for b in held}
        assert all(ip is None for b, ip in ips.items() if b not in held)
        widget.where_is_job_chip(99, 5)  # a 3-board job is 16x16 chips: no silent wrap
        assert "is outside job" in widget.answer["error"]
        assert "16\u00d716 chips" in widget.answer["error"]
        widget.where_is_board(*sorted(held)[0])
        wait_for(lambda: widget.answer.get("job_id") == job.id)
        job.destroy("bye")
        wait_for(lambda: widget.jobs == [])
        # Not "live" as if nothing happened, and no answer naming the gone job.
        wait_for(lambda: widget.status == f"live; job {job.id} has ended and holds no boards")
        assert widget.answer == {} and widget.highlight_job is None
    finally:
        job.destroy()


def test_dead_boards_and_links_reach_the_traits(
    emulator_factory: Callable[..., Emulator], maps: list[BoardMap]
) -> None:
    faulty = standard_machine(
        "md",
        {"default"},
        2,
        2,
        "127.70.0.0",
        dead_boards=frozenset({(1, 1, 1)}),
        dead_links=frozenset({(0, 0, 0, 2), (0, 0, 2, 5)}),
    )
    emulator = emulator_factory([faulty])
    widget = live_map(maps, emulator.address, "md")  # no geometry: locations from the server
    dead = [(b["x"], b["y"], b["z"]) for b in widget.boards if b["dead"]]
    assert dead == [(1, 1, 1)]
    assert sorted(map(tuple, widget.dead_links)) == [(0, 0, 0, 2), (0, 0, 2, 5)]
    by_board = {(b["x"], b["y"], b["z"]): b for b in widget.boards}
    assert by_board[(1, 1, 1)]["loc"] is None
    assert by_board[(1, 0, 2)]["loc"] == list(faulty.board_locations[(1, 0, 2)])
    assert by_board[(1, 0, 2)]["ip"] is None  # the protocol cannot tell


def test_1200_board_machine_loads_every_board(
    emulator_factory: Callable[..., Emulator], maps: list[BoardMap]
) -> None:
    big = standard_machine("spinn1m", {"default"}, 20, 20, "127.70.0.0")
    emulator = emulator_factory([big])
    widget = live_map(maps, emulator.address, "spinn1m", timeout=30.0)
    assert len(widget.boards) == 1200
    assert all(
        b["loc"] == list(big.board_locations[(b["x"], b["y"], b["z"])]) for b in widget.boards
    )


def test_unknown_machine_or_server_is_an_error_at_once(emulator: Emulator) -> None:
    with pytest.raises(LookupError, match="no machine named 'nope'"):
        BoardMap.for_machine(emulator, "nope")
    emulator.stop()
    with pytest.raises((OSError, ProtocolError)):
        BoardMap.for_machine(emulator, "m4x2")


def test_first_picture_is_drawn_before_returning(emulator: Emulator, maps: list[BoardMap]) -> None:
    with ProtocolClient(*emulator.address, timeout=WAIT) as client:
        job_id = client.create_job(owner="frank", keepalive=60, machine="m4x2")
        widget = BoardMap.for_machine(emulator, "m4x2", owner="frank")
        maps.append(widget)
        # No waiting: a displayed map (and its text/plain) is complete and deterministic.
        assert widget.status == "live" and len(widget.boards) == 24
        assert [j["id"] for j in widget.jobs] == [job_id]
        assert repr(widget) == "BoardMap(machine='m4x2', boards=24, jobs=1, status='live')"
        client.destroy_job(job_id)


def test_reconnects_after_a_server_restart(emulator: Emulator, maps: list[BoardMap]) -> None:
    widget = live_map(maps, emulator, "m4x2", reconnect_delay=0.05)
    emulator.stop()
    wait_for(lambda: "reconnecting" in widget.status or "cannot reach" in widget.status)
    emulator.start()
    wait_for(lambda: widget.status == "live")
    with ProtocolClient(*emulator.address, timeout=WAIT) as client:
        job_id = client.create_job(owner="erin", keepalive=60, machine="m4x2")
        wait_for(lambda: [j["id"] for j in widget.jobs] == [job_id])
        client.destroy_job(job_id)


def test_stop_ends_the_threads_and_keeps_the_picture(emulator: Emulator) -> None:
    widget = BoardMap.for_machine(emulator, "m4x2")
    wait_for(lambda: widget.status == "live")
    follower = widget._follower
    assert follower is not None
    widget.stop()
    assert widget.status == "stopped" and len(widget.boards) == 24
    assert not follower.alive
    widget.stop()  # idempotent
    widget.close()


def test_address_forms() -> None:
    from spalloc_nb.widgets.boardmap import _resolve_address

    assert _resolve_address(("127.0.0.1", 5))[:2] == ("127.0.0.1", 5)
    assert _resolve_address("example.org:7")[:2] == ("example.org", 7)
    assert _resolve_address("example.org")[:2] == ("example.org", 22244)
    assert _resolve_address(ProtocolClient("127.0.0.1", 9))[:2] == ("127.0.0.1", 9)
    with pytest.raises(TypeError):
        _resolve_address(3.5)


def test_short_constructor_and_from_job_alias(emulator: Emulator, maps: list[BoardMap]) -> None:
    with ProtocolClient(*emulator.address, timeout=WAIT) as client:
        widget = BoardMap("m4x2", client)
        maps.append(widget)
        wait_for(lambda: widget.status == "live" and len(widget.boards) == 24)
    assert BoardMap.from_job.__func__ is BoardMap.for_job.__func__  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        BoardMap(None, emulator)


def test_mime_bundle_has_widget_text_and_static_html(
    emulator: Emulator, maps: list[BoardMap]
) -> None:
    with ProtocolClient(*emulator.address, timeout=WAIT) as client:
        job_id = client.create_job(3, owner="gina", keepalive=60, machine="m4x2")
        widget = BoardMap.for_machine(emulator, "m4x2", owner="gina")
        maps.append(widget)
        data, _metadata = widget._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in data
        assert data["text/plain"] == repr(widget)
        page = data["text/html"]
        assert page.count("<polygon") == 24
        assert page.count(f'fill="{job_colour(0)}"') == 3
        assert f"job {job_id} · gina (you) · 3 boards" in page
        client.destroy_job(job_id)


def test_static_html_marks_dead_boards_and_links() -> None:
    boards = [
        {
            "x": 0,
            "y": 0,
            "z": z,
            "col": hex_cell((0, 0, z))[0],
            "row": hex_cell((0, 0, z))[1],
            "dead": z == 2,
        }
        for z in range(3)
    ]
    page = static_html("x<y", boards, [], [[0, 0, 0, 1]])
    assert "x&lt;y" in page
    assert page.count("<polygon") == 3 and page.count("#9a9a9a") == 1
    assert page.count("<line") == 1


def test_a_map_without_a_server_says_so() -> None:
    widget = BoardMap(machine="m")
    widget.where_is_board(0, 0, 0)
    assert widget.answer["error"] == "the map is not following a server"
    widget.where_is_job_chip(1, 2, job_id=3)
    assert widget.answer["error"] == "the map is not following a server"
    widget.close()


def test_for_a_queued_job_the_map_appears_once_it_is_allocated(
    emulator: Emulator, maps: list[BoardMap]
) -> None:
    host, port = emulator.address
    with ProtocolClient(host, port, timeout=WAIT) as client:
        blocker = client.create_job(owner="hal", keepalive=60, machine="board1")
        job = Job(
            hostname=host,
            port=port,
            owner="ivy",
            keepalive=30,
            machine="board1",
            config_filenames=[],
        )
        try:
            widget = BoardMap.for_job(job)
            maps.append(widget)
            # Queued: the map shows the machine it waits for and the job holding it.
            assert widget.status == (
                f"live; job {job.id} is queued for board1: the jobs shown hold its boards"
            )
            assert widget.machine == "board1" and len(widget.boards) == 3
            assert [j["id"] for j in widget.jobs] == [blocker]
            client.destroy_job(blocker)
            wait_for(lambda: widget.machine == "board1" and widget.status == "live")
            wait_for(lambda: [j["id"] for j in widget.jobs] == [job.id])
            assert widget.jobs[0]["mine"] is True and widget.highlight_job == job.id
        finally:
            job.destroy()


def test_local_jobs_map_knows_every_ip(maps: list[BoardMap]) -> None:
    import warnings

    from spalloc._local import EmulatedBoardsWarning, local_emulator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmulatedBoardsWarning)
        emulator = local_emulator()
    job = Job(hostname="local", owner="jo", keepalive=30, machine="m4x2", config_filenames=[])
    try:
        widget = BoardMap.for_job(job)
        maps.append(widget)
        machine = next(m for m in emulator.machines if m.name == "m4x2")
        assert all(b["ip"] == machine.board_ips[(b["x"], b["y"], b["z"])] for b in widget.boards)
    finally:
        job.destroy()


def test_static_map_of_a_big_machine_is_folded_like_the_live_one() -> None:
    from spalloc_nb.widgets.boardmap import FOLD_MIN_BOARDS, fold_column

    boards = []
    for x, y, z in itertools.product(range(20), range(20), range(3)):
        col, row = hex_cell((x, y, z))
        boards.append({"x": x, "y": y, "z": z, "col": col, "row": row, "dead": False})
    page = static_html("big", boards, [], [])
    box = re.search(r'viewBox="\S+ \S+ (\S+) (\S+)"', page)
    assert box is not None
    width, height = (float(v) for v in box.groups())
    # 2 * 20 columns of 1.5 radii (10 units) plus padding: not the 90 radii of the slant.
    assert 580 < width < 630 and 0.9 < width / height < 1.4
    assert page.count("<polygon") == 1200
    assert len(set(re.findall(r'points="([^"]+)"', page))) == 1200  # no overlap
    assert FOLD_MIN_BOARDS <= 1200 and fold_column(-3, 20, True) == 37


def test_a_refresh_on_a_frozen_connection_reconnects(
    emulator: Emulator, maps: list[BoardMap]
) -> None:
    from tests._proxy import FreezingProxy

    proxy = FreezingProxy(emulator.address)
    try:
        widget = live_map(maps, (proxy.host, proxy.port), "m4x2", timeout=0.5, reconnect_delay=0.05)
        assert proxy.accepted == 1
        proxy.freeze()  # no FIN, no RST: only a request that goes unanswered shows it
        widget.refresh()  # waits for the follower's refresh, which times out
        wait_for(lambda: proxy.accepted == 2 and widget.status == "live")
        with ProtocolClient(*emulator.address, timeout=WAIT) as client:
            job_id = client.create_job(owner="kim", keepalive=60, machine="m4x2")
            wait_for(lambda: [j["id"] for j in widget.jobs] == [job_id])
            client.destroy_job(job_id)
    finally:
        proxy.close()


def test_a_refresh_while_disconnected_returns_at_once(
    emulator: Emulator, maps: list[BoardMap]
) -> None:
    widget = live_map(maps, emulator, "m4x2", timeout=None, reconnect_delay=60.0)
    follower = widget._follower
    assert follower is not None
    emulator.stop()
    wait_for(lambda: "reconnect" in widget.status)
    before = follower.refreshes
    widget.refresh()  # no deadline, no server: it must not wait for either
    assert follower.refreshes == before
