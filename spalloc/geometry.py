"""SpiNNaker machine geometry: triads, boards, chips, links and physical positions.

Pure functions and values, no I/O. The emulator, the command-line map and the notebook
map all use this module, so it follows the reference server's conventions exactly
(PROTOCOL.md §5):

* a machine is a ``width`` x ``height`` grid of *triads*, three boards each, wrapped
  into a torus; a board is ``(x, y, z)`` with ``z`` in {0, 1, 2};
* every board holds 48 chips; a triad tiles a 12x12 patch of the chip torus;
* a board's physical position is ``(cabinet, frame, board)``.

One deliberate difference from the reference: :func:`allocation_size` uses the
component-wise extent of the boards, not the lexicographic min/max of the board
tuples, so an allocation whose top-right triad is dead is not under-reported (§9 #6).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType

__all__ = [
    "BOARD_CHIPS",
    "Board",
    "Chip",
    "Link",
    "Location",
    "Machine",
    "allocation_size",
    "chip_to_board",
    "default_board_locations",
    "ethernet_chip",
    "job_chip",
    "job_connections",
    "job_origin",
    "neighbour",
    "resolve_chip",
    "resolve_job_chip",
    "resolve_logical",
    "resolve_physical",
    "standard_ip",
]

Board = tuple[int, int, int]
"""Logical board coordinates ``(x, y, z)``."""
Chip = tuple[int, int]
"""Chip coordinates ``(x, y)``."""
Location = tuple[int, int, int]
"""Physical board position ``(cabinet, frame, board)``."""

BOARDS_PER_FRAME = 24
FRAMES_PER_CABINET = 5


class Link(IntEnum):
    """The six links of a board, numbered as on the wire."""

    east = 0
    north_east = 1
    north = 2
    west = 3
    south_west = 4
    south = 5

    @property
    def opposite(self) -> Link:
        """The link that points back the other way."""
        return Link((self + 3) % 6)

    @classmethod
    def parse(cls, value: object) -> Link:
        """Turn ``2``, ``"north"``, ``"North_East"`` or ``"northeast"`` into a :class:`Link`.

        Raises:
            ValueError: for anything else (including ``True``/``False``).
        """
        if isinstance(value, Link):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value <= 5:
                return cls(value)
            raise ValueError(f"link number {value} is not in 0..5")
        if isinstance(value, str):
            key = value.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
            for link in cls:
                if link.name.replace("_", "") == key:
                    return link
            raise ValueError(
                f"unknown link name {value!r} (expected one of "
                f"{', '.join(link.name for link in cls)})"
            )
        raise ValueError(f"a link must be an integer 0..5 or a name, not {value!r}")


# Ethernet-chip offset of each board inside its triad's 12x12 patch.
_OFFSETS: dict[int, Chip] = {0: (0, 0), 1: (8, 4), 2: (4, 8)}

# (dx, dy, new z) for each (z, link): the table of §5.2.
_STEPS: dict[tuple[int, Link], tuple[int, int, int]] = {
    (0, Link.east): (0, -1, 2),
    (0, Link.north_east): (0, 0, 1),
    (0, Link.north): (0, 0, 2),
    (0, Link.west): (-1, 0, 1),
    (0, Link.south_west): (-1, -1, 2),
    (0, Link.south): (-1, -1, 1),
    (1, Link.east): (1, 0, 0),
    (1, Link.north_east): (1, 0, 2),
    (1, Link.north): (1, 1, 0),
    (1, Link.west): (0, 0, 2),
    (1, Link.south_west): (0, 0, 0),
    (1, Link.south): (0, -1, 2),
    (2, Link.east): (0, 0, 1),
    (2, Link.north_east): (1, 1, 0),
    (2, Link.north): (0, 1, 1),
    (2, Link.west): (0, 1, 0),
    (2, Link.south_west): (-1, 0, 1),
    (2, Link.south): (0, 0, 0),
}

BOARD_CHIPS: tuple[Chip, ...] = tuple(
    (lx, ly) for ly in range(8) for lx in range(8) if -3 <= lx - ly <= 4
)
"""The 48 chips of a SpiNN-5 board, relative to its Ethernet chip (bottom-left)."""


def _build_patch_map() -> tuple[tuple[int, ...], ...]:
    """The z of the board owning each chip of a triad's 12x12 patch, indexed [ty][tx]."""
    patch = [[-1] * 12 for _ in range(12)]
    for z, (ox, oy) in _OFFSETS.items():
        for lx, ly in BOARD_CHIPS:
            patch[(oy + ly) % 12][(ox + lx) % 12] = z
    # Three boards of 48 chips tile the 144 chips of the patch exactly.
    assert all(z >= 0 for row in patch for z in row)
    return tuple(tuple(row) for row in patch)


_PATCH_Z = _build_patch_map()


def ethernet_chip(board: Board) -> Chip:
    """The machine chip of a board's Ethernet chip: ``(12x + ox[z], 12y + oy[z])``.

    Any z other than 1 or 2 is treated as 0, as the reference does.
    """
    x, y, z = board
    ox, oy = _OFFSETS.get(z, (0, 0))
    return (12 * x + ox, 12 * y + oy)


def neighbour(board: Board, link: Link | int, width: int, height: int) -> tuple[Board, bool, bool]:
    """The board across ``link`` in a ``width``x``height``-triad torus.

    Returns:
        ``(board, crossed_x_seam, crossed_y_seam)``.
    """
    x, y, z = board
    dx, dy, nz = _STEPS[(z, Link(link))]
    nx, ny = x + dx, y + dy
    wx, wy = nx % width, ny % height
    return (wx, wy, nz), wx != nx, wy != ny


def chip_to_board(chip: Chip, width: int, height: int) -> tuple[Board, Chip]:
    """The board owning a machine chip, and the chip's board-local coordinates (§5.3).

    The chip is taken modulo the machine's size in chips (``12·width`` x ``12·height``).
    """
    wc, hc = 12 * width, 12 * height
    cx, cy = chip[0] % wc, chip[1] % hc
    z = _PATCH_Z[cy % 12][cx % 12]
    ox, oy = _OFFSETS[z]
    lx, ly = (cx % 12 - ox) % 12, (cy % 12 - oy) % 12
    ex, ey = (cx - lx) % wc, (cy - ly) % hc
    return (ex // 12, ey // 12, z), (lx, ly)


def allocation_size(boards: Iterable[Board], width: int, height: int) -> tuple[int, int]:
    """The size in chips of the set of ``boards`` in a ``width``x``height``-triad machine.

    One board is 8x8. Otherwise each axis is 12 chips per triad spanned, plus 4 unless
    some link between two of the boards crosses that axis's wrap-around seam (§5.4).
    The span is taken component-wise (this fixes the reference's quirk §9 #6).
    """
    members = set(boards)
    if not members:
        raise ValueError("an allocation needs at least one board")
    if len(members) == 1:
        return (8, 8)
    xs = [b[0] for b in members]
    ys = [b[1] for b in members]
    wrap_x = wrap_y = False
    for board in members:
        for link in Link:
            other, crossed_x, crossed_y = neighbour(board, link, width, height)
            if other in members:
                wrap_x = wrap_x or crossed_x
                wrap_y = wrap_y or crossed_y
        if wrap_x and wrap_y:
            break
    chips_w = 12 * (max(xs) - min(xs) + 1) + (0 if wrap_x else 4)
    chips_h = 12 * (max(ys) - min(ys) + 1) + (0 if wrap_y else 4)
    return (chips_w, chips_h)


def job_connections(boards: Iterable[Board]) -> list[tuple[Chip, Board]]:
    """Each board's Ethernet chip relative to the lexicographically smallest board (§5.5).

    No wrap-around is applied. The list is sorted by chip.
    """
    members = sorted(set(boards))
    if not members:
        return []
    ox, oy, oz = members[0]
    return sorted((ethernet_chip((x - ox, y - oy, z - oz)), (x, y, z)) for x, y, z in members)


def job_origin(job_boards: Iterable[Board]) -> Board:
    """The component-wise minimum of a job's boards (used by ``where_is``)."""
    members = list(job_boards)
    if not members:
        raise ValueError("a job origin needs at least one board")
    return (min(b[0] for b in members), min(b[1] for b in members), min(b[2] for b in members))


def job_chip(
    board: Board, board_chip: Chip, job_boards: Iterable[Board], job_width: int, job_height: int
) -> Chip:
    """The job-relative chip of ``board_chip`` on ``board``, which belongs to the job (§5.8)."""
    jx, jy, jz = job_origin(job_boards)
    x, y, z = board
    ex, ey = ethernet_chip((x - jx, y - jy, z - jz))
    return ((ex + board_chip[0]) % job_width, (ey + board_chip[1]) % job_height)


def standard_ip(base_ip: str, cabinet: int, frame: int, board: int) -> str:
    """The standard IP of a board's Ethernet chip (§5.6).

    ``base + cabinet·0.0.5.0 + frame·0.0.1.0 + board·0.0.0.8 + 0.0.0.1``.

    Raises:
        ValueError: if ``base_ip`` is not an IPv4 address or the result overflows.
    """
    base = ipaddress.IPv4Address(base_ip)
    offset = cabinet * 5 * 256 + frame * 256 + board * 8 + 1
    try:
        return str(base + offset)
    except ipaddress.AddressValueError as exc:
        raise ValueError(f"{base_ip} + offset {offset} is not an IPv4 address") from exc


def default_board_locations(
    width: int, height: int, cabinet: int = 0, frame: int = 0
) -> dict[Board, Location]:
    """Physical positions filling frames of 24 boards, 5 frames per cabinet.

    Boards are taken in x, y, z order; the layout starts at ``(cabinet, frame, 0)``.
    """
    first_frame = cabinet * FRAMES_PER_CABINET + frame
    locations: dict[Board, Location] = {}
    index = 0
    for x in range(width):
        for y in range(height):
            for z in range(3):
                frames = first_frame + index // BOARDS_PER_FRAME
                locations[(x, y, z)] = (
                    frames // FRAMES_PER_CABINET,
                    frames % FRAMES_PER_CABINET,
                    index % BOARDS_PER_FRAME,
                )
                index += 1
    return locations


@dataclass(frozen=True)
class Machine:
    """One machine: its triad grid, faults, and where each board is and answers.

    ``dead_links`` holds one-way ``(x, y, z, link)`` entries as seen from the sender.
    The mappings are copied into read-only views on construction.
    """

    name: str
    tags: frozenset[str]
    width: int
    height: int
    dead_boards: frozenset[Board] = frozenset()
    dead_links: frozenset[tuple[int, int, int, int]] = frozenset()
    board_locations: Mapping[Board, Location] = field(default_factory=dict, hash=False, repr=False)
    board_ips: Mapping[Board, str] = field(default_factory=dict, hash=False, repr=False)
    _by_location: Mapping[Location, Board] = field(
        init=False, repr=False, compare=False, hash=False
    )
    _live: tuple[Board, ...] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # the dataclass is frozen
        set_(self, "tags", frozenset(self.tags))
        set_(self, "dead_boards", frozenset(tuple(b) for b in self.dead_boards))
        set_(self, "dead_links", frozenset(tuple(lk) for lk in self.dead_links))
        set_(
            self,
            "board_locations",
            MappingProxyType({tuple(b): tuple(loc) for b, loc in self.board_locations.items()}),
        )
        set_(self, "board_ips", MappingProxyType(dict(self.board_ips)))
        self._validate()
        set_(
            self,
            "_by_location",
            MappingProxyType({loc: b for b, loc in self.board_locations.items()}),
        )
        set_(self, "_live", tuple(b for b in self.boards() if b not in self.dead_boards))

    def __reduce__(self) -> tuple[object, ...]:
        # The read-only views cannot be pickled; rebuild from plain dicts instead.
        return (
            Machine,
            (
                self.name,
                self.tags,
                self.width,
                self.height,
                self.dead_boards,
                self.dead_links,
                dict(self.board_locations),
                dict(self.board_ips),
            ),
        )

    def __copy__(self) -> Machine:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, object]) -> Machine:
        return self  # immutable

    def _validate(self) -> None:
        what = f"machine {self.name!r}"
        if (
            not isinstance(self.width, int)
            or not isinstance(self.height, int)
            or self.width < 1
            or self.height < 1
        ):
            raise ValueError(
                f"{what}: width and height must be positive integers, "
                f"not {self.width!r} x {self.height!r}"
            )
        for board in sorted(self.dead_boards):
            if not self._in_range(board):
                raise ValueError(f"{what}: dead board {board} is outside the machine")
        for entry in sorted(self.dead_links):
            if len(entry) != 4 or not self._in_range(entry[:3]) or not 0 <= entry[3] <= 5:
                raise ValueError(f"{what}: dead link {entry} is outside the machine")
        seen: dict[Location, Board] = {}
        for board, loc in sorted(self.board_locations.items()):
            if not self._in_range(board):
                raise ValueError(f"{what}: board {board} with a location is outside the machine")
            if len(loc) != 3 or any(v < 0 for v in loc):
                raise ValueError(f"{what}: board {board} has a bad location {loc}")
            if loc in seen:
                raise ValueError(f"{what}: boards {seen[loc]} and {board} share the location {loc}")
            seen[loc] = board
        for board in sorted(self.board_ips):
            if not self._in_range(board):
                raise ValueError(f"{what}: board {board} with an IP is outside the machine")
        for board in self.boards():
            if board in self.dead_boards:
                continue
            if board not in self.board_locations:
                raise ValueError(f"{what}: live board {board} has no location")
            if board not in self.board_ips:
                raise ValueError(f"{what}: live board {board} has no IP address")

    def _in_range(self, board: tuple[int, ...]) -> bool:
        x, y, z = board
        return 0 <= x < self.width and 0 <= y < self.height and 0 <= z < 3

    def boards(self) -> list[Board]:
        """Every board position, live or dead, in x, y, z order."""
        return [(x, y, z) for x in range(self.width) for y in range(self.height) for z in range(3)]

    def live_boards(self) -> list[Board]:
        """The boards that are not dead, in x, y, z order."""
        return list(self._live)

    def is_live(self, board: Board) -> bool:
        """True if ``board`` is inside the machine and not dead."""
        return self._in_range(board) and board not in self.dead_boards

    def link_is_dead(self, board: Board, link: Link | int) -> bool:
        """True if the link is listed as dead or leads to a dead board."""
        if (*board, int(link)) in self.dead_links:
            return True
        other, _, _ = neighbour(board, link, self.width, self.height)
        return other in self.dead_boards

    def location(self, board: Board) -> Location | None:
        """The physical position of ``board``, or None (out of range, or dead without one)."""
        return self.board_locations.get(board)

    def board_at(self, location: Location) -> Board | None:
        """The board at a physical position, or None."""
        return self._by_location.get(location)

    def ip(self, board: Board) -> str | None:
        """The IP address of a board's Ethernet chip, or None."""
        return self.board_ips.get(board)

    @property
    def is_single_board(self) -> bool:
        """True for a 1x1-triad machine with exactly one live board."""
        return self.width == 1 and self.height == 1 and len(self._live) == 1


Resolved = tuple[Board, Chip, Chip]
"""``(board, machine chip, board-local chip)`` as found by the ``resolve_*`` helpers."""


def resolve_chip(machine: Machine, cx: int, cy: int) -> Resolved | None:
    """Resolve a machine chip (wrapped modulo the machine) to a live, located board."""
    wc, hc = 12 * machine.width, 12 * machine.height
    chip = (cx % wc, cy % hc)
    board, local = chip_to_board(chip, machine.width, machine.height)
    if not machine.is_live(board) or machine.location(board) is None:
        return None
    return board, chip, local


def resolve_logical(machine: Machine, x: int, y: int, z: int) -> Resolved | None:
    """Resolve logical coordinates as the reference does: they wrap, and z ∉ {1, 2} means 0."""
    return resolve_chip(machine, *ethernet_chip((x, y, z)))


def resolve_physical(machine: Machine, cabinet: int, frame: int, board: int) -> Resolved | None:
    """Resolve a physical position to its live board."""
    found = machine.board_at((cabinet, frame, board))
    if found is None:
        return None
    return resolve_logical(machine, *found)


def resolve_job_chip(
    machine: Machine, job_boards: Iterable[Board], cx: int, cy: int
) -> Resolved | None:
    """Resolve a job-relative chip; None unless it lands on one of the job's boards."""
    members = set(job_boards)
    if not members:
        return None
    ox, oy = ethernet_chip(job_origin(members))
    found = resolve_chip(machine, cx + ox, cy + oy)
    if found is None or found[0] not in members:
        return None
    return found
