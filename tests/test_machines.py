"""Machines from TOML files, the defaults, and the errors bad files get."""

from __future__ import annotations

import ipaddress
import textwrap

import pytest

from spalloc.emulator.machines import (
    MachineConfigError,
    default_machines,
    load_machines,
    parse_machines,
)

EXAMPLE = """
[[machine]]
name = "m"
width = 2
height = 2

[[machine]]
name = "md"
tags = ["dead"]
width = 2
height = 2
dead_boards = [[1, 1, 1]]
dead_links = [[0, 0, 0, "north"], [0, 0, 2, 5]]
base_ip = "127.65.0.0"
cabinet = 1

[[machine]]
name = "board"
tags = ["single"]
single_board = true
"""


def write(tmp_path, text: str):
    path = tmp_path / "machines.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_load_example(tmp_path):
    m, md, board = load_machines(write(tmp_path, EXAMPLE))
    assert [m.name, md.name, board.name] == ["m", "md", "board"]
    assert m.tags == {"default"} and md.tags == {"dead"} and board.tags == {"single"}
    assert (m.width, m.height) == (2, 2)
    assert md.dead_boards == {(1, 1, 1)}
    assert md.dead_links == {(0, 0, 0, 2), (0, 0, 2, 5)}
    # Default layout: cabinet offset, dead boards keep their slot but get no location.
    assert md.location((0, 0, 0)) == (1, 0, 0)
    assert md.location((1, 1, 2)) == (1, 0, 11)
    assert md.location((1, 1, 1)) is None
    assert md.ip((0, 0, 0)) == "127.65.5.1"
    # m takes the first free default network; md's explicit 127.65 is skipped for board.
    assert m.ip((0, 0, 0)) == "127.64.0.1"
    assert m.location((1, 1, 2)) == (0, 0, 11)
    assert board.ip((0, 0, 0)) == "127.66.0.1"
    assert (board.width, board.height) == (1, 1)
    assert board.dead_boards == {(0, 0, 1), (0, 0, 2)}
    assert board.is_single_board
    assert board.live_boards() == [(0, 0, 0)]


def test_single_board_defaults_to_the_default_tag(tmp_path):
    (board,) = load_machines(write(tmp_path, '[[machine]]\nname = "b"\nsingle_board = true\n'))
    assert board.tags == {"default"}


def test_explicit_board_locations(tmp_path):
    (m,) = load_machines(
        write(
            tmp_path,
            """
        [[machine]]
        name = "tiny"
        width = 1
        height = 1
        dead_boards = [[0, 0, 2]]
        base_ip = "10.2.0.0"
        board_locations = { "0,0,0" = [0, 0, 5], "0, 0, 1" = [0, 2, 0] }
    """,
        )
    )
    assert m.location((0, 0, 0)) == (0, 0, 5)
    assert m.board_at((0, 2, 0)) == (0, 0, 1)
    assert m.ip((0, 0, 0)) == "10.2.0.41"
    assert m.ip((0, 0, 1)) == "10.2.2.1"


def test_default_machines_stay_on_loopback():
    machines = default_machines()
    assert [m.name for m in machines] == ["m4x2", "board1"]
    m4x2, board1 = machines
    assert (m4x2.width, m4x2.height, m4x2.tags) == (4, 2, {"default"})
    assert len(m4x2.live_boards()) == 24
    assert board1.tags == {"single"} and board1.is_single_board
    loopback = ipaddress.IPv4Network("127.0.0.0/8")
    ips = [m.ip(b) for m in machines for b in m.live_boards()]
    assert len(ips) == 25 and len(set(ips)) == 25
    assert all(ipaddress.IPv4Address(ip) in loopback for ip in ips)
    assert m4x2.ip((0, 0, 0)) == "127.64.0.1" and board1.ip((0, 0, 0)) == "127.66.0.1"


def test_parse_machines_from_a_dict():
    (m,) = parse_machines({"machine": [{"name": "x", "width": 1, "height": 1}]}, "here")
    assert m.name == "x" and m.ip((0, 0, 0)) == "127.64.0.1"


def test_message_names_file_machine_and_field(tmp_path):
    path = write(
        tmp_path,
        """
        [[machine]]
        name = "md"
        width = 2
        height = 2
        dead_boards = [[9, 9, 9]]
    """,
    )
    with pytest.raises(MachineConfigError) as info:
        load_machines(path)
    assert str(info.value) == (
        f"{path}: machine 'md': dead_boards[0]: (9, 9, 9) is outside the 2x2-triad machine"
    )
    assert isinstance(info.value, ValueError)
    assert (info.value.source, info.value.machine, info.value.field) == (
        str(path),
        "machine 'md'",
        "dead_boards[0]",
    )


GOOD = 'name = "a"\nwidth = 2\nheight = 1\n'

BAD_FILES = [
    # (file body, expected text after "<path>: ")
    ("[[machine]]\n" + GOOD + "colour = 3\n", "machine 'a': colour: unknown key"),
    (
        "[[machine]]\nname = 'a'\nwidth = '2'\nheight = 1\n",
        "machine 'a': width: expected an integer, not '2'",
    ),
    ("[[machine]]\nname = 'a'\nwidth = 2.0\nheight = 1\n", "machine 'a': width: expected an"),
    ("[[machine]]\nname = 'a'\nwidth = true\nheight = 1\n", "machine 'a': width: expected an"),
    (
        "[[machine]]\nname = 'a'\nwidth = 0\nheight = 1\n",
        "machine 'a': width: must be at least 1, not 0",
    ),
    ("[[machine]]\nname = 'a'\nwidth = 2\n", "machine 'a': height: missing"),
    ("[[machine]]\nwidth = 2\nheight = 1\n", "machine #1: name: missing"),
    ("[[machine]]\nname = 7\nwidth = 2\nheight = 1\n", "machine #1: name: expected a non-empty"),
    (
        "[[machine]]\n" + GOOD + "[[machine]]\n" + GOOD,
        "machine 'a': name: duplicate name (also machine #1)",
    ),
    ("[[machine]]\n" + GOOD + "tags = 'single'\n", "machine 'a': tags: expected a list"),
    (
        "[[machine]]\n" + GOOD + "dead_boards = [[0, 0]]\n",
        "machine 'a': dead_boards[0]: expected [x, y, z]",
    ),
    (
        "[[machine]]\n" + GOOD + "dead_boards = [[0, 0, 0], [0, 0, 1], [0, 0, 2], [1, 0, 0], "
        "[1, 0, 1], [1, 0, 2]]\n",
        "machine 'a': dead_boards: every board of the machine is dead",
    ),
    (
        "[[machine]]\n" + GOOD + "dead_links = [[0, 0, 0, 'up']]\n",
        "machine 'a': dead_links[0]: unknown link name 'up'",
    ),
    (
        "[[machine]]\n" + GOOD + "dead_links = [[0, 0, 0, 6]]\n",
        "machine 'a': dead_links[0]: link number 6 is not in 0..5",
    ),
    (
        "[[machine]]\n" + GOOD + "dead_links = [[0, 5, 0, 1]]\n",
        "machine 'a': dead_links[0]: (0, 5, 0) is outside the 2x1-triad machine",
    ),
    (
        "[[machine]]\n" + GOOD + "dead_links = [[0, 0, 0]]\n",
        "machine 'a': dead_links[0]: expected [x, y, z, link]",
    ),
    (
        "[[machine]]\n" + GOOD + "base_ip = '127.1'\n",
        "machine 'a': base_ip: '127.1' is not an IPv4 address",
    ),
    ("[[machine]]\n" + GOOD + "base_ip = 127\n", "machine 'a': base_ip: expected a string"),
    (
        "[[machine]]\n" + GOOD + "base_ip = '255.255.255.0'\ncabinet = 3\n",
        "machine 'a': base_ip: board (0, 0, 0) at (3, 0, 0)",
    ),
    (
        "[[machine]]\n" + GOOD + "base_ip = '127.9.0.0'\n[[machine]]\nname = 'b'\n"
        "single_board = true\nbase_ip = '127.9.0.0'\n",
        "machine 'b': base_ip: board (0, 0, 0) has IP 127.9.0.1, already used by board "
        "(0, 0, 0) of machine 'a'",
    ),
    ("[[machine]]\n" + GOOD + "cabinet = -1\n", "machine 'a': cabinet: must be at least 0"),
    (
        "[[machine]]\n" + GOOD + "single_board = 'yes'\n",
        "machine 'a': single_board: expected true or false",
    ),
    (
        "[[machine]]\nname = 'a'\nsingle_board = true\nwidth = 1\n",
        "machine 'a': width: cannot be combined with single_board = true",
    ),
    (
        "[[machine]]\nname = 'a'\nwidth = 1\nheight = 1\n"
        "board_locations = { '0,0,0' = [0, 0, 0], '0,0,1' = [0, 0, 0], '0,0,2' = [0, 0, 2] }\n",
        "machine 'a': board_locations['0,0,1']: location (0, 0, 0) is also given to board "
        "(0, 0, 0)",
    ),
    (
        "[[machine]]\nname = 'a'\nwidth = 1\nheight = 1\n"
        "board_locations = { '0,0,0' = [0, 0, 0], '0,0,1' = [0, 0, 1] }\n",
        "machine 'a': board_locations: live board (0, 0, 2) has no location",
    ),
    (
        "[[machine]]\nname = 'a'\nwidth = 1\nheight = 1\n"
        "board_locations = { 'a,b,c' = [0, 0, 0] }\n",
        "machine 'a': board_locations['a,b,c']: the key must be \"x,y,z\"",
    ),
    (
        "[[machine]]\nname = 'a'\nwidth = 1\nheight = 1\n"
        "board_locations = { '1,0,0' = [0, 0, 0] }\n",
        "machine 'a': board_locations['1,0,0']: (1, 0, 0) is outside the 1x1-triad machine",
    ),
    (
        "[[machine]]\nname = 'a'\nwidth = 1\nheight = 1\n"
        "board_locations = { '0,0,0' = [0, -1, 0] }\n",
        "machine 'a': board_locations['0,0,0']: expected [cabinet, frame, board]",
    ),
    (
        "[[machine]]\nname = 'a'\nwidth = 1\nheight = 1\ncabinet = 1\n"
        "board_locations = { '0,0,0' = [0, 0, 0] }\n",
        "machine 'a': cabinet: only applies to the default layout",
    ),
    ("machine = 3\n", "machine: expected at least one [[machine]] table"),
    ("", "machine: expected at least one [[machine]] table"),
    ("port = 1\n[[machine]]\n" + GOOD, "port: unknown key"),
    ("[[machine]]\nname = 'a'\nwidth = \n", "not valid TOML"),
]


@pytest.mark.parametrize(("body", "expected"), BAD_FILES)
def test_bad_files(tmp_path, body, expected):
    path = write(tmp_path, body)
    with pytest.raises(MachineConfigError) as info:
        load_machines(path)
    assert str(info.value).startswith(f"{path}: {expected}"), str(info.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(MachineConfigError, match=r"nope\.toml: cannot read the file"):
        load_machines(path)


def test_not_a_table_entry():
    with pytest.raises(MachineConfigError, match=r"^src: machine #2: expected a table"):
        parse_machines({"machine": [{"name": "a", "width": 1, "height": 1}, 5]}, "src")
