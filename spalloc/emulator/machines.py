"""The emulator's machines: read from a TOML file, or the built-in defaults.

A file holds one ``[[machine]]`` table per machine, in priority order::

    [[machine]]
    name = "md"                      # required, unique
    tags = ["dead"]                  # default ["default"]
    width = 2                        # triads; required unless single_board = true
    height = 2
    dead_boards = [[1, 1, 1]]        # [x, y, z]
    dead_links = [[0, 0, 0, "north"], [0, 0, 2, 5]]   # [x, y, z, link name or 0..5], one-way
    base_ip = "127.65.0.0"           # standard IP scheme; default 127.<64+i>.0.0
    cabinet = 1                      # where the default physical layout starts (default 0, 0)
    frame = 0
    # or explicit positions instead of the default layout:
    # board_locations = { "0,0,0" = [0, 0, 0], "0,0,1" = [0, 0, 1] }

    [[machine]]
    name = "board"
    tags = ["single"]
    single_board = true              # a 1x1-triad machine with (0,0,1) and (0,0,2) dead

The default layout fills frames of 24 boards, 5 frames per cabinet, in x, y, z order;
dead boards keep their slot but get no location (like the reference's example configs).
Every board's IP is ``standard_ip(base_ip, cabinet, frame, board)``, so by default no
emulated address leaves 127.0.0.0/8.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spalloc.exceptions import SpallocError
from spalloc.geometry import (
    Board,
    Link,
    Location,
    Machine,
    default_board_locations,
    standard_ip,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["MachineConfigError", "default_machines", "load_machines", "parse_machines"]

_KEYS = frozenset(
    {
        "name",
        "tags",
        "width",
        "height",
        "single_board",
        "dead_boards",
        "dead_links",
        "base_ip",
        "board_locations",
        "cabinet",
        "frame",
    }
)
_DEFAULT_NET = 64  # default base IPs are 127.64.0.0, 127.65.0.0, ...


class MachineConfigError(SpallocError, ValueError):
    """A machine definition is unusable; the message names the file, machine and field."""

    def __init__(self, source: str, machine: str | None, field: str | None, problem: str) -> None:
        parts = [source]
        if machine is not None:
            parts.append(machine)
        if field is not None:
            parts.append(field)
        super().__init__(": ".join([*parts, problem]))
        self.source = source
        self.machine = machine
        self.field = field


def load_machines(path: str | os.PathLike[str]) -> list[Machine]:
    """Read machines from a TOML file.

    Raises:
        MachineConfigError: if the file cannot be read or parsed, or holds a bad definition.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MachineConfigError(source, None, None, f"cannot read the file: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MachineConfigError(source, None, None, f"not valid TOML: {exc}") from exc
    return parse_machines(data, source)


def default_machines(net: int = _DEFAULT_NET) -> list[Machine]:
    """A 4x2-triad machine tagged ``default`` and a single board tagged ``single``, on
    ``127.<net>.0.0`` and ``127.<net + 2>.0.0`` (by default 127.64.0.0 and 127.66.0.0)."""
    if not 0 < net < 254:
        raise ValueError(f"no default machines on 127.{net}.0.0")
    return parse_machines(
        {
            "machine": [
                {
                    "name": "m4x2",
                    "tags": ["default"],
                    "width": 4,
                    "height": 2,
                    "base_ip": f"127.{net}.0.0",
                },
                {
                    "name": "board1",
                    "tags": ["single"],
                    "single_board": True,
                    "base_ip": f"127.{net + 2}.0.0",
                },
            ]
        },
        "<default machines>",
    )


def parse_machines(data: Mapping[str, Any], source: str) -> list[Machine]:
    """Build machines from an already-parsed TOML document (see the module docstring).

    Raises:
        MachineConfigError: naming ``source``, the machine and the field at fault.
    """
    if not isinstance(data, Mapping):
        raise MachineConfigError(source, None, None, "expected a table of [[machine]] entries")
    unknown = sorted(set(data) - {"machine"})
    if unknown:
        raise MachineConfigError(
            source, None, unknown[0], "unknown key (only [[machine]] tables are allowed)"
        )
    tables = data.get("machine")
    if not isinstance(tables, list) or not tables:
        raise MachineConfigError(source, None, "machine", "expected at least one [[machine]] table")
    # Default /16s skip the ones given explicitly, so defaults never collide with them.
    taken_nets = set()
    for table in tables:
        if isinstance(table, Mapping) and isinstance(table.get("base_ip"), str):
            try:
                base = ipaddress.IPv4Address(table["base_ip"])
            except ValueError:
                continue
            if base in ipaddress.IPv4Network("127.0.0.0/8"):
                taken_nets.add(base.packed[1])
    next_net = _DEFAULT_NET
    machines: list[Machine] = []
    names: dict[str, int] = {}
    ips: dict[str, tuple[str, Board]] = {}
    for index, table in enumerate(tables):
        label = f"machine #{index + 1}"
        if not isinstance(table, Mapping):
            raise MachineConfigError(source, label, None, "expected a table")
        default_ip = None
        if "base_ip" not in table:
            while next_net in taken_nets:
                next_net += 1
            if next_net > 255:
                raise MachineConfigError(
                    source, label, "base_ip", "no free 127.x.0.0 network left for a default"
                )
            default_ip = f"127.{next_net}.0.0"
            next_net += 1
        machine = _parse_machine(table, source, label, default_ip)
        where = f"machine {machine.name!r}"
        if machine.name in names:
            raise MachineConfigError(
                source, where, "name", f"duplicate name (also machine #{names[machine.name]})"
            )
        names[machine.name] = index + 1
        for board, ip in sorted(machine.board_ips.items()):
            if ip in ips:
                other, other_board = ips[ip]
                raise MachineConfigError(
                    source,
                    where,
                    "base_ip",
                    f"board {board} has IP {ip}, already used by board {other_board} of "
                    f"machine {other!r}",
                )
            ips[ip] = (machine.name, board)
        machines.append(machine)
    return machines


def _parse_machine(
    table: Mapping[str, Any], source: str, label: str, default_ip: str | None
) -> Machine:
    def fail(field: str | None, problem: str) -> MachineConfigError:
        return MachineConfigError(source, label, field, problem)

    name = table.get("name")
    if not isinstance(name, str) or not name:
        raise fail(
            "name", "missing" if name is None else f"expected a non-empty string, not {name!r}"
        )
    label = f"machine {name!r}"
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key (expected one of {', '.join(sorted(_KEYS))})")

    tags_value = table.get("tags", ["default"])
    if not isinstance(tags_value, list) or not all(isinstance(t, str) for t in tags_value):
        raise fail("tags", f"expected a list of strings, not {tags_value!r}")
    tags = frozenset(tags_value)

    single = table.get("single_board", False)
    if not isinstance(single, bool):
        raise fail("single_board", f"expected true or false, not {single!r}")
    if single:
        for key in ("width", "height", "dead_boards"):
            if key in table:
                raise fail(key, "cannot be combined with single_board = true")
        width = height = 1
        dead: set[Board] = {(0, 0, 1), (0, 0, 2)}
    else:
        width = _int(table, "width", fail, minimum=1, required=True)
        height = _int(table, "height", fail, minimum=1, required=True)
        dead = set()
    size = f"the {width}x{height}-triad machine"

    def in_range(field: str, board: Board) -> Board:
        x, y, z = board
        if not (0 <= x < width and 0 <= y < height and 0 <= z < 3):
            raise fail(field, f"{board} is outside {size}")
        return board

    for i, item in enumerate(_list(table, "dead_boards", fail)):
        field = f"dead_boards[{i}]"
        dead.add(in_range(field, _board(item, field, fail)))
    if len(dead) >= 3 * width * height:
        raise fail("dead_boards", "every board of the machine is dead")

    dead_links: set[tuple[int, int, int, int]] = set()
    for i, item in enumerate(_list(table, "dead_links", fail)):
        field = f"dead_links[{i}]"
        if not isinstance(item, list) or len(item) != 4:
            raise fail(field, f"expected [x, y, z, link], not {item!r}")
        board = in_range(field, _board(item[:3], field, fail))
        try:
            link = Link.parse(item[3])
        except ValueError as exc:
            raise fail(field, str(exc)) from None
        dead_links.add((*board, int(link)))

    base_ip = table.get("base_ip", default_ip)
    if not isinstance(base_ip, str):
        raise fail("base_ip", f'expected a string such as "127.65.0.0", not {base_ip!r}')
    try:
        ipaddress.IPv4Address(base_ip)
    except ValueError:
        raise fail("base_ip", f"{base_ip!r} is not an IPv4 address") from None

    locations: dict[Board, Location]
    if "board_locations" in table:
        for key in ("cabinet", "frame"):
            if key in table:
                raise fail(key, "only applies to the default layout, not with board_locations")
        locations = _locations(table["board_locations"], fail, in_range)
        missing = [
            (x, y, z)
            for x in range(width)
            for y in range(height)
            for z in range(3)
            if (x, y, z) not in dead and (x, y, z) not in locations
        ]
        if missing:
            raise fail("board_locations", f"live board {missing[0]} has no location")
    else:
        cabinet = _int(table, "cabinet", fail, minimum=0)
        frame = _int(table, "frame", fail, minimum=0)
        locations = {
            b: loc
            for b, loc in default_board_locations(width, height, cabinet, frame).items()
            if b not in dead
        }

    board_ips: dict[Board, str] = {}
    for board, loc in locations.items():
        try:
            board_ips[board] = standard_ip(base_ip, *loc)
        except ValueError as exc:
            raise fail("base_ip", f"board {board} at {loc}: {exc}") from None

    try:
        return Machine(
            name=name,
            tags=tags,
            width=width,
            height=height,
            dead_boards=frozenset(dead),
            dead_links=frozenset(dead_links),
            board_locations=locations,
            board_ips=board_ips,
        )
    except ValueError as exc:  # anything the checks above did not anticipate
        raise fail(None, str(exc)) from None


def _int(
    table: Mapping[str, Any], key: str, fail: Any, *, minimum: int, required: bool = False
) -> int:
    if key not in table:
        if required:
            raise fail(key, "missing")
        return 0
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(key, f"expected an integer, not {value!r}")
    if value < minimum:
        raise fail(key, f"must be at least {minimum}, not {value}")
    return value


def _list(table: Mapping[str, Any], key: str, fail: Any) -> list[Any]:
    value = table.get(key, [])
    if not isinstance(value, list):
        raise fail(key, f"expected a list, not {value!r}")
    return value


def _board(item: Any, field: str, fail: Any) -> Board:
    if (
        not isinstance(item, list)
        or len(item) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in item)
    ):
        raise fail(field, f"expected [x, y, z] integers, not {item!r}")
    return (item[0], item[1], item[2])


def _locations(value: Any, fail: Any, in_range: Any) -> dict[Board, Location]:
    if not isinstance(value, Mapping):
        raise fail("board_locations", 'expected a table such as { "0,0,0" = [0, 0, 0] }')
    locations: dict[Board, Location] = {}
    owners: dict[Location, Board] = {}
    for key, loc in value.items():
        field = f"board_locations[{key!r}]"
        try:
            x, y, z = (int(part) for part in key.split(","))
        except ValueError:
            raise fail(field, 'the key must be "x,y,z"') from None
        board = in_range(field, (x, y, z))
        if board in locations:
            raise fail(field, f"board {board} is given twice")
        if (
            not isinstance(loc, list)
            or len(loc) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in loc)
        ):
            raise fail(
                field, f"expected [cabinet, frame, board] non-negative integers, not {loc!r}"
            )
        location = (loc[0], loc[1], loc[2])
        if location in owners:
            raise fail(field, f"location {location} is also given to board {owners[location]}")
        owners[location] = board
        locations[board] = location
    return locations
