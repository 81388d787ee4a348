"""Board allocation for one machine: the reference server's placement rules (PROTOCOL.md §6).

Pure and deterministic: no clocks, no threads, no I/O. The server owns the queues, the
quarantine after power-off and the locking; it asks a :class:`MachineAllocator` whether a
request could ever fit (:meth:`~MachineAllocator.feasible`), to place it now
(:meth:`~MachineAllocator.allocate`) and to take boards back (:meth:`~MachineAllocator.free`).

What is reproduced from the reference:

* the region test of §6.3 (reachable live boards from the corner board, ``max_dead_boards``
  measured against *n* for n-board requests, quirk §9 #22; link classification;
  ``require_torus``; ``max_dead_links``);
* the pack tree of §6.4 (corner order, split rules, smallest child first, merge on free),
  with n-board requests sized by :func:`area_to_rect` at each free leaf;
* single boards as in §6.6 (carved triads handed out in insertion order, a full triad
  re-inserted at the end when a board comes back, specific boards carving exactly their
  triad with the tree's "side with most room" splits).

Documented differences (improvements) from the reference:

* **Feasibility** (quirk §9 #10): the reference only tries the four corners of the empty
  machine, so a request that fits only away from the corners (because of dead boards or
  links) is cancelled at once. Here every position of the empty machine is tried.
* **Placement fallback**: so that such a request can then actually be placed, when the
  pack tree's corner search fails for it, every other position inside each free leaf
  is tried too (same leaf order). This applies *only* to requests that the reference
  would have cancelled; every request the reference accepts is placed exactly as the
  reference places it (checked by a differential run against spalloc-server 1!7.0.0).
  On a machine without dead boards or links the two feasibility checks agree.

Known limitation kept from the reference: single-board requests carve triads with the
corner search only, so on a machine whose free leaf has an entirely dead triad at each
of its corners a single-board job waits although live boards are free elsewhere.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from spalloc.emulator._packtree import PackTree, area_to_rect
from spalloc.geometry import Board, Link, Machine, allocation_size, neighbour

__all__ = [
    "Allocation",
    "AllocationRequest",
    "MachineAllocator",
    "area_to_rect",
]

_KINDS = ("any_board", "board", "boards", "rect")


@dataclass(frozen=True)
class AllocationRequest:
    """What a job asks for, already parsed from ``create_job``'s arguments (§6.1).

    ``kind`` is ``"any_board"`` (``[]`` or ``[1]``), ``"board"`` (``[x, y, z]``),
    ``"boards"`` (``[n]``, n != 1) or ``"rect"`` (``[w, h]`` triads).
    """

    kind: Literal["any_board", "board", "boards", "rect"]
    count: int | None = None
    width: int | None = None
    height: int | None = None
    board: Board | None = None
    min_ratio: float = 0.0
    max_dead_boards: int | None = None
    max_dead_links: int | None = None
    require_torus: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown request kind {self.kind!r}")
        if self.kind == "boards" and self.count is None:
            raise ValueError("a 'boards' request needs a count")
        if self.kind == "rect" and (self.width is None or self.height is None):
            raise ValueError("a 'rect' request needs a width and a height")
        if self.kind == "board" and self.board is None:
            raise ValueError("a 'board' request needs a board")
        if not self.min_ratio >= 0.0:  # also rejects NaN
            raise ValueError("Aspect ratio cannot be negative.")

    @property
    def single(self) -> bool:
        """True for the single-board kinds."""
        return self.kind in ("any_board", "board")


@dataclass(frozen=True, eq=False)
class Allocation:
    """Boards handed to one job. Compared and hashed by identity: each is a unique handle."""

    machine: Machine
    boards: tuple[Board, ...]
    width: int
    height: int
    periphery_links: frozenset[tuple[Board, Link]]
    # ("triads", x, y, 0) or ("board", x, y, z): what to give back to the allocator.
    _handle: tuple[str, int, int, int] = field(default=("triads", 0, 0, 0), repr=False)


# --------------------------------------------------------------------------------------
# The allocator


@dataclass
class _Region:
    """The outcome of an accepted region test."""

    boards: frozenset[Board]
    periphery: frozenset[tuple[Board, Link]]


class _RegionFilter:
    """Pack-tree filter running the region test; remembers the last accepted region."""

    def __init__(
        self, allocator: MachineAllocator, request: AllocationRequest, expected: int | None
    ) -> None:
        self._allocator = allocator
        self._request = request
        self._expected = expected
        self.last: _Region | None = None

    def __call__(self, x: int, y: int, w: int, h: int) -> bool:
        request = self._request
        expected = self._expected if self._expected is not None else 3 * w * h
        region = self._allocator._region(
            x,
            y,
            w,
            h,
            expected,
            request.max_dead_boards,
            request.max_dead_links,
            request.require_torus,
        )
        if region is None:
            return False
        self.last = region
        return True


class MachineAllocator:
    """Places requests on one machine and takes boards back; one instance per machine."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self._tree = PackTree(machine.width, machine.height)
        self._dead = machine.dead_boards
        self._dead_links = frozenset(((x, y, z), link) for x, y, z, link in machine.dead_links)
        # Faults are what can make a corner fail where another position passes.
        self._faulty = bool(machine.dead_boards or machine.dead_links)
        self._any_live = bool(machine.live_boards())
        self._reference_cancels: dict[AllocationRequest, bool] = {}
        # neighbour table: board -> per link (other board, crossed a seam)
        self._links: dict[Board, tuple[tuple[Board, bool], ...]] = {}
        for board in machine.boards():
            row = []
            for link in Link:
                other, wx, wy = neighbour(board, link, machine.width, machine.height)
                row.append((other, wx or wy))
            self._links[board] = tuple(row)
        # Triads carved for single boards that still have free boards, in insertion
        # order; the values are Python sets used exactly as the reference uses them
        # (set.pop()), so that the board handed out is the same one.
        self._single: dict[tuple[int, int], set[int]] = {}
        self._single_full: set[tuple[int, int]] = set()
        self._owners: dict[Board, Allocation] = {}
        self._live: set[Allocation] = set()

    # -- public API --

    def feasible(self, request: AllocationRequest) -> bool:
        """Could ``request`` ever be met on this machine, were it empty (§6.2, improved)?"""
        m = self.machine
        if request.kind == "any_board":
            return not request.require_torus and self._any_live
        if request.kind == "board":
            assert request.board is not None
            return not request.require_torus and m.is_live(request.board)
        return self._fits_empty(request, corners_only=False)

    def _fits_empty(self, request: AllocationRequest, *, corners_only: bool) -> bool:
        """Does a rectangle or n-board request pass the region test on the empty machine?

        ``corners_only`` gives the reference's own check (quirk §9 #10).
        """
        m = self.machine
        shape = self._shape_on_empty(request)
        if shape is None:
            return False
        w, h, expected = shape
        if corners_only:
            positions = {(0, 0), (m.width - w, 0), (0, m.height - h), (m.width - w, m.height - h)}
        else:
            positions = {(x, y) for x in range(m.width - w + 1) for y in range(m.height - h + 1)}
        accept = self._filter(request, expected)
        return any(accept(x, y, w, h) for x, y in sorted(positions))

    def _may_search_anywhere(self, request: AllocationRequest) -> bool:
        """Use the placement fallback only for requests the reference would have cancelled.

        Every request the reference accepts is then placed exactly as it would place it.
        """
        if not self._faulty:
            return False
        known = self._reference_cancels.get(request)
        if known is None:
            known = not self._fits_empty(request, corners_only=True)
            if len(self._reference_cancels) >= 4096:  # bound the memo; it is only a cache
                self._reference_cancels.clear()
            self._reference_cancels[request] = known
        return known

    def allocate(self, request: AllocationRequest) -> Allocation | None:
        """Place ``request`` now, or return None (it stays queued)."""
        if request.kind == "any_board":
            if request.require_torus:
                return None
            return self._allocate_board(None)
        if request.kind == "board":
            assert request.board is not None
            if request.require_torus or not self.machine.is_live(request.board):
                return None
            return self._allocate_board(request.board)
        return self._allocate_triads(request)

    def free(self, allocation: Allocation) -> None:
        """Give an allocation's boards back at once.

        Raises:
            ValueError: if it is not a live allocation of this allocator.
        """
        if allocation not in self._live:
            raise ValueError("not a live allocation of this machine")
        self._live.discard(allocation)
        for board in allocation.boards:
            self._owners.pop(board, None)
        kind, x, y, z = allocation._handle
        if kind == "triads":
            self._tree.free(x, y)
            return
        triad = (x, y)
        if triad in self._single_full:
            self._single_full.discard(triad)
            self._single[triad] = set()  # re-inserted at the end of the order
        self._single[triad].add(z)
        if self._single[triad] == self._live_z(x, y):
            del self._single[triad]
            self._tree.free(x, y)

    def board_owner_map(self) -> dict[Board, Allocation]:
        """Which allocation holds each allocated board."""
        return dict(self._owners)

    def owner(self, board: Board) -> Allocation | None:
        """The allocation holding ``board``, if any."""
        return self._owners.get(board)

    def allocations(self) -> list[Allocation]:
        """Every live allocation (in no particular order)."""
        return list(self._live)

    # -- triad rectangles --

    def _shape_on_empty(self, request: AllocationRequest) -> tuple[int, int, int | None] | None:
        """(w, h, expected boards) on the empty machine, or None if impossible."""
        m = self.machine
        if request.kind == "rect":
            assert request.width is not None and request.height is not None
            w, h = request.width, request.height
            if not (0 < w <= m.width and 0 < h <= m.height):
                return None
            if request.require_torus and (w, h) != (m.width, m.height):
                return None
            return w, h, None
        triads = self._triads(request)
        if triads is None:
            return None
        rect = area_to_rect(triads, m.width, m.height, request.min_ratio)
        if rect is None:
            return None
        return rect[0], rect[1], request.count

    def _triads(self, request: AllocationRequest) -> int | None:
        """Triads for an n-board request, or None when it can never be met."""
        assert request.count is not None
        triads = -(-request.count // 3)
        if triads < 1:
            return None
        if request.require_torus and triads != self.machine.width * self.machine.height:
            return None
        return triads

    def _allocate_triads(self, request: AllocationRequest) -> Allocation | None:
        m = self.machine
        if request.kind == "rect":
            assert request.width is not None and request.height is not None
            w, h = request.width, request.height
            if w < 1 or h < 1 or (request.require_torus and (w, h) != (m.width, m.height)):
                return None
            accept = self._filter(request, None)
            placed = self._tree.alloc(w, h, accept, self._may_search_anywhere(request))
        else:
            triads = self._triads(request)
            if triads is None:
                return None
            accept = self._filter(request, request.count)
            xywh = self._tree.alloc_area(
                triads, request.min_ratio, accept, self._may_search_anywhere(request)
            )
            placed = None if xywh is None else (xywh[0], xywh[1])
        if placed is None:
            return None
        region = accept.last
        assert region is not None
        return self._record(region.boards, region.periphery, ("triads", *placed, 0))

    def _filter(self, request: AllocationRequest, expected: int | None) -> _RegionFilter:
        """The §6.3 region test for ``request`` as a pack-tree filter."""
        return _RegionFilter(self, request, expected)

    def _region(
        self,
        x: int,
        y: int,
        w: int,
        h: int,
        expected: int,
        max_dead_boards: int | None,
        max_dead_links: int | None,
        require_torus: bool,
    ) -> _Region | None:
        """§6.3: the boards a ``w x h`` rectangle at ``(x, y)`` would get, or None."""
        dead, dead_links, links = self._dead, self._dead_links, self._links
        # 1. Live boards reachable from the corner board over working links, inside.
        boards: set[Board] = set()
        todo: deque[Board] = deque([(x, y, 0)])
        while todo:
            board = todo.popleft()
            if board in dead or board in boards:
                continue
            boards.add(board)
            for link, (other, _) in enumerate(links[board]):
                if (board, link) in dead_links:
                    continue
                if x <= other[0] < x + w and y <= other[1] < y + h:
                    todo.append(other)
        # 2. Dead boards (n-board requests count against n: quirk §9 #22).
        if not boards:
            return None
        if max_dead_boards is not None and expected - len(boards) > max_dead_boards:
            return None
        # 3. Link classification.
        torus = False
        dead_inside = dead_wrap = 0
        periphery: list[tuple[Board, Link]] = []
        for board in boards:
            for link, (other, wrapped) in enumerate(links[board]):
                if other in boards:
                    is_dead = (board, link) in dead_links
                    if wrapped:
                        torus = True
                        dead_wrap += is_dead
                    else:
                        dead_inside += is_dead
                else:
                    periphery.append((board, Link(link)))
        # 4. and 5.
        if require_torus and not torus:
            return None
        if max_dead_links is not None:
            count = dead_inside + (dead_wrap if require_torus else 0)
            if count > max_dead_links:
                return None
        return _Region(frozenset(boards), frozenset(periphery))

    # -- single boards (§6.6) --

    def _live_z(self, x: int, y: int) -> set[int]:
        return {z for z in range(3) if (x, y, z) not in self._dead}

    def _allocate_board(self, board: Board | None) -> Allocation | None:
        if board is None:
            if not self._single:
                placed = self._tree.alloc(1, 1, self._has_live_board, self._faulty)
                if placed is None:
                    return None
                self._single[placed] = self._live_z(*placed)
            triad = next(iter(self._single))
            available = self._single[triad]
            z = available.pop()
        else:
            x, y, z = board
            triad = (x, y)
            available = self._single.get(triad, set())
            if z not in available:
                if not self._tree.request(x, y):
                    return None
                available = self._single[triad] = self._live_z(x, y)
            available.remove(z)
        if not available:
            del self._single[triad]
            self._single_full.add(triad)
        chosen = (triad[0], triad[1], z)
        periphery = frozenset((chosen, link) for link in Link)
        return self._record(frozenset([chosen]), periphery, ("board", *chosen))

    def _has_live_board(self, x: int, y: int, _w: int, _h: int) -> bool:
        return any((x, y, z) not in self._dead for z in range(3))

    # -- bookkeeping --

    def _record(
        self,
        boards: frozenset[Board],
        periphery: frozenset[tuple[Board, Link]],
        handle: tuple[str, int, int, int],
    ) -> Allocation:
        width, height = allocation_size(boards, self.machine.width, self.machine.height)
        allocation = Allocation(
            self.machine, tuple(sorted(boards)), width, height, periphery, handle
        )
        self._live.add(allocation)
        for board in boards:
            self._owners[board] = allocation
        return allocation
