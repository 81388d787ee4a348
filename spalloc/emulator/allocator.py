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

import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

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


def area_to_rect(area: int, width: int, height: int,
                 min_ratio: float) -> tuple[int, int] | None:
    """A ``w x h`` triad rectangle covering ``area`` triads in a ``width x height`` space (§6.5).

    Returns None when there is no such rectangle (including ``area < 1``).

    Raises:
        ValueError: if ``min_ratio`` is negative.
    """
    if min_ratio < 0.0:
        raise ValueError("Aspect ratio cannot be negative.")
    if area < 1 or width < 1 or height < 1 or area > width * height:
        return None
    if min_ratio > 1.0:
        min_ratio = 1.0 / min_ratio
    # The squarest exact factorisation, landscape (w >= h).
    h = next(d for d in range(math.isqrt(area), 0, -1) if area % d == 0)
    w = area // h
    if float(h) / float(w) < min_ratio:
        # Too thin: cover a little more area with a rounder shape.
        wf = math.sqrt(float(area) / float(min_ratio))
        h = math.ceil(float(area) / wf)
        w = max(math.ceil(float(area) / float(h)), h)
    # Lay the long side along the short side of the space, leaving the biggest strip free.
    if width > height and w > h:
        w, h = h, w
    if w <= width and h <= height:
        return (w, h)
    if w > width:
        w = width
        h = math.ceil(float(area) / float(w))
    else:
        h = height
        w = math.ceil(float(area) / float(h))
    if float(min(w, h)) / float(max(w, h)) >= min_ratio:
        return (w, h)
    return None


# --------------------------------------------------------------------------------------
# The pack tree (§6.4)

_Accept = Callable[[int, int, int, int], bool]


class _Node:
    """A rectangle of triads: a free or taken leaf, or split into two children.

    ``mw``, ``mh`` and ``ma`` are the largest width, height and area of any free leaf
    below (each on its own). They only prune subtrees where the reference's search would
    find no leaf big enough and so never call the filter: the choices are unchanged, but
    a busy machine is not walked node by node on every attempt.
    """

    __slots__ = ("children", "h", "ma", "mh", "mw", "taken", "w", "x", "y")

    def __init__(self, x: int, y: int, w: int, h: int) -> None:
        self.x, self.y, self.w, self.h = x, y, w, h
        self.taken = False
        self.children: tuple[_Node, _Node] | None = None
        self.mw, self.mh, self.ma = w, h, w * h

    def contains(self, x: int, y: int) -> bool:
        return self.x <= x < self.x + self.w and self.y <= y < self.y + self.h

    def hsplit(self, y: int) -> tuple[_Node, _Node]:
        """Cut below row ``y``: (bottom, top)."""
        self.children = (_Node(self.x, self.y, self.w, y - self.y),
                         _Node(self.x, y, self.w, self.h - (y - self.y)))
        return self.children

    def vsplit(self, x: int) -> tuple[_Node, _Node]:
        """Cut left of column ``x``: (left, right)."""
        self.children = (_Node(self.x, self.y, x - self.x, self.h),
                         _Node(x, self.y, self.w - (x - self.x), self.h))
        return self.children

    def ordered_children(self) -> tuple[_Node, _Node]:
        """Smaller area first; on a tie the bottom/left child first."""
        assert self.children is not None
        first, second = self.children
        if second.w * second.h < first.w * first.h:
            return second, first
        return first, second

    def refresh(self) -> None:
        """Recompute the free-leaf summary from the children (or the leaf itself)."""
        if self.children is not None:
            a, b = self.children
            self.mw, self.mh, self.ma = max(a.mw, b.mw), max(a.mh, b.mh), max(a.ma, b.ma)
        elif self.taken:
            self.mw = self.mh = self.ma = 0
        else:
            self.mw, self.mh, self.ma = self.w, self.h, self.w * self.h

    def refresh_all(self) -> None:
        if self.children is not None:
            for child in self.children:
                child.refresh_all()
        self.refresh()


class _PackTree:
    """Binary space partition of the triad grid, as the reference builds it."""

    def __init__(self, width: int, height: int) -> None:
        self.root = _Node(0, 0, width, height)

    # -- placing rectangles --

    def alloc(self, w: int, h: int, accept: _Accept,
              anywhere: bool) -> tuple[int, int] | None:
        """Place a ``w x h`` rectangle; returns its bottom-left triad or None."""
        def fits(node: _Node) -> bool:
            return node.mw >= w and node.mh >= h

        def size(_leaf: _Node) -> tuple[int, int] | None:
            return (w, h)
        found = self._place(self.root, fits, size, accept)
        if found is None and anywhere:
            found = self._place_anywhere(fits, size, accept)
        return None if found is None else (found[0], found[1])

    def alloc_area(self, area: int, min_ratio: float, accept: _Accept,
                   anywhere: bool) -> tuple[int, int, int, int] | None:
        """Place at least ``area`` triads, shaped per free leaf; returns (x, y, w, h) or None."""
        def fits(node: _Node) -> bool:
            return node.ma >= area

        def size(leaf: _Node) -> tuple[int, int] | None:
            return area_to_rect(area, leaf.w, leaf.h, min_ratio)
        found = self._place(self.root, fits, size, accept)
        if found is None and anywhere:
            found = self._place_anywhere(fits, size, accept)
        return found

    def _place(self, node: _Node, fits: Callable[[_Node], bool],
               size: Callable[[_Node], tuple[int, int] | None],
               accept: _Accept) -> tuple[int, int, int, int] | None:
        if node.taken or not fits(node):
            return None
        if node.children is not None:
            for child in node.ordered_children():
                found = self._place(child, fits, size, accept)
                if found is not None:
                    node.refresh()
                    return found
            return None
        wh = size(node)
        if wh is None:
            return None
        w, h = wh
        if w > node.w or h > node.h:
            return None
        for x, y in _corners(node, w, h):
            if accept(x, y, w, h):
                _carve_corner(node, x, y, w, h)
                return (x, y, w, h)
        return None

    def _place_anywhere(self, fits: Callable[[_Node], bool],
                        size: Callable[[_Node], tuple[int, int] | None],
                        accept: _Accept) -> tuple[int, int, int, int] | None:
        for leaf in self._free_leaves(self.root, fits):
            wh = size(leaf)
            if wh is None:
                continue
            w, h = wh
            if w > leaf.w or h > leaf.h:
                continue
            corners = set(_corners(leaf, w, h))
            for y in range(leaf.y, leaf.y + leaf.h - h + 1):
                for x in range(leaf.x, leaf.x + leaf.w - w + 1):
                    if (x, y) not in corners and accept(x, y, w, h):
                        _carve_anywhere(leaf, x, y, w, h)
                        self.root.refresh_all()  # rare path: a full pass is fine
                        return (x, y, w, h)
        return None

    def _free_leaves(self, node: _Node, fits: Callable[[_Node], bool]) -> Iterator[_Node]:
        """Free leaves that pass ``fits``, in the order the placement visits them."""
        if node.taken or not fits(node):
            return
        if node.children is None:
            yield node
            return
        for child in node.ordered_children():
            yield from self._free_leaves(child, fits)

    # -- single triads --

    def request(self, x: int, y: int) -> bool:
        """Take exactly triad ``(x, y)``, splitting towards the side with most room."""
        node = self.root
        if not node.contains(x, y):
            return False
        path: list[_Node] = []
        while True:
            path.append(node)
            if node.children is not None:
                node = node.children[0] if node.children[0].contains(x, y) else node.children[1]
                continue
            if node.taken:
                return False
            if node.w == 1 and node.h == 1:
                node.taken = True
                for on_path in reversed(path):
                    on_path.refresh()
                return True
            left = x - node.x
            right = node.x + node.w - x - 1
            above = node.y + node.h - y - 1
            below = y - node.y
            largest = max(left, right, above, below)
            if left == largest:
                node.vsplit(x)
            elif right == largest:
                node.vsplit(x + 1)
            elif above == largest:
                node.hsplit(y + 1)
            else:
                node.hsplit(y)

    # -- freeing --

    def free(self, x: int, y: int) -> None:
        """Free the taken leaf whose corner is ``(x, y)``, merging free siblings back."""
        if not self._free(self.root, x, y):
            raise ValueError(f"no allocated region starts at triad ({x}, {y})")

    def _free(self, node: _Node, x: int, y: int) -> bool:
        if node.children is None:
            if (node.x, node.y) != (x, y) or not node.taken:
                return False
            node.taken = False
            node.refresh()
            return True
        for child in node.children:
            if child.contains(x, y):
                if not self._free(child, x, y):
                    return False
                if all(c.children is None and not c.taken for c in node.children):
                    node.children = None
                node.refresh()
                return True
        return False


def _corners(leaf: _Node, w: int, h: int) -> list[tuple[int, int]]:
    """The corner positions of a ``w x h`` rectangle in ``leaf``, in the reference's order."""
    out: list[tuple[int, int]] = []
    for x in (leaf.x, leaf.x + leaf.w - w):
        for y in (leaf.y, leaf.y + leaf.h - h):
            if (x, y) not in out:
                out.append((x, y))
    return out


def _carve_corner(leaf: _Node, x: int, y: int, w: int, h: int) -> None:
    """Mark a corner-placed rectangle taken, splitting the leaf as the reference does."""
    if w == leaf.w and h == leaf.h:
        leaf.taken = True
        leaf.refresh()
        return
    # Split along the axis that keeps the larger free strip.
    if leaf.h - h > leaf.w - w:
        bottom, top = leaf.hsplit(y if y != leaf.y else y + h)
        part = bottom if y == leaf.y else top
    else:
        left, right = leaf.vsplit(x if x != leaf.x else x + w)
        part = left if x == leaf.x else right
    middle = part
    if part.w != w:
        left, right = part.vsplit(x if x != part.x else part.x + w)
        part = left if x == part.x else right
    elif part.h != h:
        bottom, top = part.hsplit(y if y != part.y else part.y + h)
        part = bottom if y == part.y else top
    part.taken = True
    part.refresh()
    middle.refresh()
    leaf.refresh()


def _carve_anywhere(leaf: _Node, x: int, y: int, w: int, h: int) -> None:
    """Mark any rectangle inside ``leaf`` taken, cutting off one side at a time."""
    node = leaf
    while (node.x, node.y, node.w, node.h) != (x, y, w, h):
        if node.x < x:
            node = node.vsplit(x)[1]
        elif node.w > w:
            node = node.vsplit(x + w)[0]
        elif node.y < y:
            node = node.hsplit(y)[1]
        else:
            node = node.hsplit(y + h)[0]
    node.taken = True


# --------------------------------------------------------------------------------------
# The allocator


@dataclass
class _Region:
    """The outcome of an accepted region test."""

    boards: frozenset[Board]
    periphery: frozenset[tuple[Board, Link]]


class _RegionFilter:
    """Pack-tree filter running the region test; remembers the last accepted region."""

    def __init__(self, allocator: MachineAllocator, request: AllocationRequest,
                 expected: int | None) -> None:
        self._allocator = allocator
        self._request = request
        self._expected = expected
        self.last: _Region | None = None

    def __call__(self, x: int, y: int, w: int, h: int) -> bool:
        request = self._request
        expected = self._expected if self._expected is not None else 3 * w * h
        region = self._allocator._region(x, y, w, h, expected, request.max_dead_boards,
                                         request.max_dead_links, request.require_torus)
        if region is None:
            return False
        self.last = region
        return True


class MachineAllocator:
    """Places requests on one machine and takes boards back; one instance per machine."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self._tree = _PackTree(machine.width, machine.height)
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
            positions = {(0, 0), (m.width - w, 0), (0, m.height - h),
                         (m.width - w, m.height - h)}
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
            xywh = self._tree.alloc_area(triads, request.min_ratio, accept,
                                         self._may_search_anywhere(request))
            placed = None if xywh is None else (xywh[0], xywh[1])
        if placed is None:
            return None
        region = accept.last
        assert region is not None
        return self._record(region.boards, region.periphery, ("triads", *placed, 0))

    def _filter(self, request: AllocationRequest, expected: int | None) -> _RegionFilter:
        """The §6.3 region test for ``request`` as a pack-tree filter."""
        return _RegionFilter(self, request, expected)

    def _region(self, x: int, y: int, w: int, h: int, expected: int,
                max_dead_boards: int | None, max_dead_links: int | None,
                require_torus: bool) -> _Region | None:
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

    def _record(self, boards: frozenset[Board], periphery: frozenset[tuple[Board, Link]],
                handle: tuple[str, int, int, int]) -> Allocation:
        width, height = allocation_size(boards, self.machine.width, self.machine.height)
        allocation = Allocation(self.machine, tuple(sorted(boards)), width, height,
                                periphery, handle)
        self._live.add(allocation)
        for board in boards:
            self._owners[board] = allocation
        return allocation
