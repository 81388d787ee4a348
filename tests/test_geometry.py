"""spalloc.geometry against the tables and examples of PROTOCOL.md §5 and Appendix A."""

from __future__ import annotations

import copy
import pickle
from typing import TypeVar

import pytest

from spalloc.geometry import (
    BOARD_CHIPS,
    Board,
    Link,
    Machine,
    allocation_size,
    chip_to_board,
    default_board_locations,
    ethernet_chip,
    job_chip,
    job_connections,
    job_origin,
    neighbour,
    resolve_chip,
    resolve_job_chip,
    resolve_logical,
    resolve_physical,
    standard_ip,
)

T = TypeVar("T")


def found(value: T | None) -> T:
    """*value*, which the test expects to be there."""
    assert value is not None
    return value


def make_machine(
    name: str,
    width: int,
    height: int,
    base_ip: str = "10.11.0.0",
    cabinet: int = 0,
    dead: frozenset[Board] = frozenset(),
    dead_links: frozenset[tuple[int, int, int, int]] = frozenset(),
) -> Machine:
    """A machine laid out like Appendix A's: default layout, dead boards unlocated."""
    locations = {
        b: loc
        for b, loc in default_board_locations(width, height, cabinet).items()
        if b not in dead
    }
    return Machine(
        name,
        frozenset({"default"}),
        width,
        height,
        dead,
        dead_links,
        locations,
        {b: standard_ip(base_ip, *loc) for b, loc in locations.items()},
    )


def triads(*xy: tuple[int, int], dead: frozenset[Board] = frozenset()) -> set[Board]:
    return {(x, y, z) for x, y in xy for z in range(3) if (x, y, z) not in dead}


# ---- chips -------------------------------------------------------------------------------

# PROTOCOL.md §5.3, top row first.
PATCH_MAP = [
    "111122222222",
    "111122222221",
    "111122222211",
    "111122222111",
    "111100001111",
    "111000001111",
    "110000001111",
    "100000001111",
    "000000002222",
    "000000022222",
    "000000222222",
    "000002222222",
]


def test_board_has_48_chips_in_rows_of_5_to_8():
    assert len(BOARD_CHIPS) == 48
    rows = [sum(1 for _, ly in BOARD_CHIPS if ly == y) for y in range(8)]
    assert rows == [5, 6, 7, 8, 7, 6, 5, 4]


@pytest.mark.parametrize(
    ("board", "chip"),
    [
        ((0, 0, 0), (0, 0)),
        ((0, 0, 1), (8, 4)),
        ((0, 0, 2), (4, 8)),
        ((1, 1, 2), (16, 20)),
        ((1, 0, 1), (20, 4)),
        ((0, 1, 0), (0, 12)),
    ],
)
def test_ethernet_chip(board, chip):
    assert ethernet_chip(board) == chip


def test_the_12x12_map():
    for row, line in enumerate(PATCH_MAP):
        ty = 11 - row
        for tx, z in enumerate(line):
            board, _ = chip_to_board((tx, ty), 1, 1)
            assert board == (0, 0, int(z)), (tx, ty)


@pytest.mark.parametrize(
    ("chip", "size", "board", "local"),
    [
        ((3, 11), (1, 1), (0, 0, 1), (7, 7)),  # §5.3 / §5.8 on a 1x1 machine
        ((26, 18), (2, 2), (1, 1, 1), (6, 2)),  # §5.3
        ((13, 14), (2, 2), (1, 1, 0), (1, 2)),  # Appendix A row 49
        ((16, 20), (2, 2), (1, 1, 2), (0, 0)),
        ((39, -1), (3, 2), (2, 1, 1), (7, 7)),  # wraps to chip (3, 23)
        ((-1, -1), (2, 2), (1, 1, 2), (7, 3)),  # wraps to chip (23, 23)
    ],
)
def test_chip_to_board_examples(chip, size, board, local):
    assert chip_to_board(chip, *size) == (board, local)


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (3, 2), (4, 5)])
def test_chip_to_board_inverts_every_board_chip(size):
    width, height = size
    owners: dict[tuple[int, int], Board] = {}
    for x in range(width):
        for y in range(height):
            for z in range(3):
                ex, ey = ethernet_chip((x, y, z))
                for lx, ly in BOARD_CHIPS:
                    chip = ((ex + lx) % (12 * width), (ey + ly) % (12 * height))
                    assert chip_to_board(chip, width, height) == ((x, y, z), (lx, ly))
                    assert chip not in owners
                    owners[chip] = (x, y, z)
    assert len(owners) == 144 * width * height  # the boards tile the torus


# ---- links ------------------------------------------------------------------------------

# §5.2, row by row: (dx, dy, z) for links east .. south.
NEIGHBOURS = {
    0: [(0, -1, 2), (0, 0, 1), (0, 0, 2), (-1, 0, 1), (-1, -1, 2), (-1, -1, 1)],
    1: [(1, 0, 0), (1, 0, 2), (1, 1, 0), (0, 0, 2), (0, 0, 0), (0, -1, 2)],
    2: [(0, 0, 1), (1, 1, 0), (0, 1, 1), (0, 1, 0), (-1, 0, 1), (0, 0, 0)],
}


@pytest.mark.parametrize("z", [0, 1, 2])
def test_neighbour_table(z):
    for link, (dx, dy, nz) in zip(Link, NEIGHBOURS[z], strict=True):
        other, wx, wy = neighbour((5, 5, z), link, 10, 10)
        assert other == (5 + dx, 5 + dy, nz)
        assert not wx and not wy


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (3, 2), (1, 4)])
def test_neighbour_round_trip(size):
    width, height = size
    for x in range(width):
        for y in range(height):
            for z in range(3):
                for link in Link:
                    other, wx, wy = neighbour((x, y, z), link, width, height)
                    back, bx, by = neighbour(other, link.opposite, width, height)
                    assert back == (x, y, z)
                    assert (bx, by) == (wx, wy)  # the same cable crosses the same seam


def test_neighbour_seams():
    assert neighbour((0, 0, 0), Link.west, 2, 2) == ((1, 0, 1), True, False)
    assert neighbour((0, 0, 0), Link.east, 2, 2) == ((0, 1, 2), False, True)
    assert neighbour((0, 0, 0), Link.south_west, 2, 2) == ((1, 1, 2), True, True)
    assert neighbour((1, 1, 1), Link.north, 2, 2) == ((0, 0, 0), True, True)


def test_link_opposite_and_parse():
    assert [link.opposite for link in Link] == [
        Link.west,
        Link.south_west,
        Link.south,
        Link.east,
        Link.north_east,
        Link.north,
    ]
    assert Link.parse(2) is Link.north
    assert Link.parse("north") is Link.north
    assert Link.parse("NORTH_EAST") is Link.north_east
    assert Link.parse("northeast") is Link.north_east
    assert Link.parse("south-west") is Link.south_west
    assert Link.parse(Link.east) is Link.east
    for bad in (6, -1, True, "up", 2.0, None, "2"):
        with pytest.raises(ValueError):
            Link.parse(bad)


# ---- sizes and connections ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("machine", "boards", "size"),
    [
        ((2, 2), {(1, 1, 2)}, (8, 8)),
        ((2, 2), triads((0, 0)), (16, 16)),
        ((1, 1), triads((0, 0)), (12, 12)),
        ((2, 2), triads((0, 0), (1, 0)), (24, 16)),
        ((2, 2), triads((1, 0), (1, 1)), (16, 24)),
        ((3, 2), triads((0, 0), (1, 0)), (28, 16)),
        ((3, 2), triads((0, 0), (1, 0), (2, 0)), (36, 16)),
        ((3, 2), triads((0, 0), (1, 0), (0, 1), (1, 1)), (28, 24)),
        ((2, 2), triads((0, 0), (1, 0), (0, 1), (1, 1)), (24, 24)),
        ((3, 2), triads((0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)), (36, 24)),
        # `d`: dead board (1,0,2)
        ((2, 2), triads((0, 0), (1, 0), (0, 1), (1, 1)) - {(1, 0, 2)}, (24, 24)),
        # `e`: triad (1,1) entirely dead; the reference says 24x12 (quirk §9 #6, fixed here)
        ((2, 2), triads((0, 0), (1, 0), (0, 1)), (24, 24)),
        # a single-board machine's one live board
        ((1, 1), {(0, 0, 0)}, (8, 8)),
    ],
)
def test_allocation_size(machine, boards, size):
    assert allocation_size(boards, *machine) == size


def test_allocation_size_needs_boards():
    with pytest.raises(ValueError):
        allocation_size([], 2, 2)


def test_job_connections_example():
    # §5.5 / Appendix A row 41: triads (1,0) and (1,1) of `m`.
    got = job_connections(triads((1, 0), (1, 1)))
    assert got == [
        ((0, 0), (1, 0, 0)),
        ((0, 12), (1, 1, 0)),
        ((4, 8), (1, 0, 2)),
        ((4, 20), (1, 1, 2)),
        ((8, 4), (1, 0, 1)),
        ((8, 16), (1, 1, 1)),
    ]
    assert job_connections([(0, 1, 2)]) == [((0, 0), (0, 1, 2))]
    assert job_connections([]) == []


# ---- physical positions and IPs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "cfb", "ip"),
    [
        ("10.11.0.0", (0, 0, 0), "10.11.0.1"),
        ("10.11.0.0", (0, 0, 11), "10.11.0.89"),
        ("10.13.0.0", (1, 0, 3), "10.13.5.25"),
        ("10.23.0.0", (3, 1, 0), "10.23.16.1"),
        ("127.64.0.0", (0, 0, 23), "127.64.0.185"),
    ],
)
def test_standard_ip(base, cfb, ip):
    assert standard_ip(base, *cfb) == ip


def test_standard_ip_rejects_overflow_and_garbage():
    with pytest.raises(ValueError):
        standard_ip("255.255.255.255", 0, 0, 1)
    with pytest.raises(ValueError):
        standard_ip("not an ip", 0, 0, 0)


def test_default_board_locations():
    locations = default_board_locations(2, 2)
    assert list(locations.values()) == [(0, 0, b) for b in range(12)]
    assert locations[(1, 1, 2)] == (0, 0, 11)
    big = default_board_locations(20, 20)
    order = list(big)
    assert order[:4] == [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 0)]
    assert big[order[23]] == (0, 0, 23)
    assert big[order[24]] == (0, 1, 0)
    assert big[order[119]] == (0, 4, 23)
    assert big[order[120]] == (1, 0, 0)
    assert big[order[1199]] == (9, 4, 23)
    assert len(set(big.values())) == 1200
    shifted = default_board_locations(1, 1, cabinet=2, frame=4)
    assert list(shifted.values()) == [(2, 4, 0), (2, 4, 1), (2, 4, 2)]


# ---- Machine ----------------------------------------------------------------------------------


def test_machine_lookups():
    md = make_machine(
        "md",
        2,
        2,
        "10.13.0.0",
        cabinet=1,
        dead=frozenset({(1, 1, 1)}),
        dead_links=frozenset({(0, 0, 0, 2), (0, 0, 2, 5)}),
    )
    assert md.location((1, 1, 2)) == (1, 0, 11)
    assert md.location((1, 1, 1)) is None
    assert md.location((5, 5, 5)) is None
    assert md.board_at((1, 0, 11)) == (1, 1, 2)
    assert md.board_at((0, 0, 11)) is None
    assert md.ip((0, 0, 0)) == "10.13.5.1"
    assert md.ip((1, 1, 1)) is None
    assert len(md.boards()) == 12 and len(md.live_boards()) == 11
    assert md.is_live((0, 0, 0)) and not md.is_live((1, 1, 1)) and not md.is_live((2, 0, 0))
    assert md.link_is_dead((0, 0, 0), Link.north)
    assert md.link_is_dead((0, 0, 2), 5)
    assert not md.link_is_dead((0, 0, 2), Link.north)
    # Links into a dead board are dead without being listed: (1,1,0) north-east is (1,1,1).
    assert md.link_is_dead((1, 1, 0), Link.north_east)
    assert not md.is_single_board
    single = make_machine("board", 1, 1, dead=frozenset({(0, 0, 1), (0, 0, 2)}))
    assert single.is_single_board


def test_machine_is_immutable_and_hashable():
    m = make_machine("m", 2, 2)
    assert copy.deepcopy(m) is m and copy.copy(m) is m
    assert pickle.loads(pickle.dumps(m)) == m
    assert "10.11" not in repr(m)  # the per-board maps stay out of the repr
    again = make_machine("m", 2, 2)
    assert m == again and hash(m) == hash(again)
    with pytest.raises(TypeError):
        m.board_locations[(0, 0, 0)] = (9, 9, 9)  # type: ignore[index]
    assert m != make_machine("m", 2, 2, base_ip="10.12.0.0")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 0}, "positive"),
        ({"dead_boards": frozenset({(2, 0, 0)})}, "dead board (2, 0, 0) is outside"),
        ({"dead_links": frozenset({(0, 0, 0, 6)})}, "dead link (0, 0, 0, 6) is outside"),
        ({"drop_location": (0, 0, 1)}, "live board (0, 0, 1) has no location"),
        ({"drop_ip": (0, 0, 1)}, "live board (0, 0, 1) has no IP"),
        ({"same_location": True}, "share the location"),
    ],
)
def test_machine_validation(kwargs, message):
    width = kwargs.get("width", 1)
    locations = default_board_locations(max(width, 1), 1)
    ips = {b: standard_ip("10.0.0.0", *loc) for b, loc in locations.items()}
    if "drop_location" in kwargs:
        del locations[kwargs["drop_location"]]
    if "drop_ip" in kwargs:
        del ips[kwargs["drop_ip"]]
    if "same_location" in kwargs:
        locations[(0, 0, 1)] = locations[(0, 0, 0)]
    with pytest.raises(
        ValueError, match="machine 'x': .*" + message.replace("(", r"\(").replace(")", r"\)")
    ):
        Machine(
            "x",
            frozenset(),
            width,
            1,
            kwargs.get("dead_boards", frozenset()),
            kwargs.get("dead_links", frozenset()),
            locations,
            ips,
        )


# ---- where_is (§5.8, Appendix A rows 44-55 and 156) -------------------------------------------

M = make_machine("m", 2, 2)
MD = make_machine(
    "md",
    2,
    2,
    "10.13.0.0",
    cabinet=1,
    dead=frozenset({(1, 1, 1)}),
    dead_links=frozenset({(0, 0, 0, 2), (0, 0, 2, 5)}),
)
JOB3 = sorted(triads((1, 0), (1, 1)))  # 16x24 chips


def test_where_is_job_chip_rows_44_to_47():
    assert resolve_job_chip(M, JOB3, 13, 14) is None  # row 45: board (0,1,*)
    board, chip, local = found(resolve_job_chip(M, JOB3, 1, 14))  # row 47
    assert (board, chip, local) == ((1, 1, 0), (13, 14), (1, 2))
    assert M.location(board) == (0, 0, 9)
    assert job_chip(board, local, JOB3, 16, 24) == (1, 14)
    assert resolve_job_chip(M, [], 0, 0) is None


def test_where_is_machine_chip_row_49():
    assert resolve_chip(M, 13, 14) == ((1, 1, 0), (13, 14), (1, 2))


def test_where_is_logical_row_51():
    board, chip, local = found(resolve_logical(M, 1, 1, 2))
    assert (board, chip, local) == ((1, 1, 2), (16, 20), (0, 0))
    assert M.location(board) == (0, 0, 11)
    assert job_chip(board, local, JOB3, 16, 24) == (4, 20)


def test_where_is_physical_and_free_board_rows_53_55():
    assert resolve_physical(M, 0, 0, 3) == ((0, 1, 0), (0, 12), (0, 0))
    assert resolve_logical(M, 0, 1, 0) == ((0, 1, 0), (0, 12), (0, 0))
    assert resolve_physical(M, 0, 0, 12) is None
    assert resolve_physical(M, 1, 0, 0) is None


def test_where_is_dead_board_row_156():
    assert resolve_logical(MD, 1, 1, 1) is None
    assert resolve_chip(MD, *ethernet_chip((1, 1, 1))) is None
    assert resolve_physical(MD, 1, 0, 10) is None  # its slot in the layout stays empty


def test_where_is_wraps_logical_and_chip_coordinates():
    g = make_machine("g", 3, 2)
    assert found(resolve_logical(g, 5, 0, 0))[0] == (2, 0, 0)
    assert found(resolve_logical(g, -1, 0, 0))[0] == (2, 0, 0)
    assert found(resolve_logical(g, 0, 0, 3))[0] == (0, 0, 0)  # z not in {1, 2} behaves as 0
    assert found(resolve_chip(g, 39, -1))[1] == (3, 23)


def test_single_board_job_chip_on_a_one_triad_machine():
    f = make_machine("f", 1, 1)
    job = [(0, 0, 1)]
    assert job_origin(job) == (0, 0, 1)
    board, chip, local = found(resolve_job_chip(f, job, 7, 7))
    assert (board, chip, local) == ((0, 0, 1), (3, 11), (7, 7))
    assert job_chip(board, local, job, 8, 8) == (7, 7)
    assert resolve_job_chip(f, job, 5, 0) is None
    assert resolve_job_chip(f, job, 0, 4) is None


def test_job_origin_is_component_wise():
    assert job_origin([(1, 0, 2), (0, 1, 1)]) == (0, 0, 1)
    with pytest.raises(ValueError):
        job_origin([])
