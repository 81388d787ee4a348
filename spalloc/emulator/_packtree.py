"""The pack tree that places triad rectangles (PROTOCOL.md §6.4), and ``area_to_rect`` (§6.5).

Private to :mod:`spalloc.emulator.allocator`, which decides *whether* a region is acceptable
(the region test of §6.3); this module decides *where* to look, in the reference server's
order, and keeps track of which parts of the triad grid are taken.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

__all__ = ["Accept", "PackTree", "area_to_rect"]


def area_to_rect(area: int, width: int, height: int, min_ratio: float) -> tuple[int, int] | None:
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

Accept = Callable[[int, int, int, int], bool]


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
        self.children = (
            _Node(self.x, self.y, self.w, y - self.y),
            _Node(self.x, y, self.w, self.h - (y - self.y)),
        )
        return self.children

    def vsplit(self, x: int) -> tuple[_Node, _Node]:
        """Cut left of column ``x``: (left, right)."""
        self.children = (
            _Node(self.x, self.y, x - self.x, self.h),
            _Node(x, self.y, self.w - (x - self.x), self.h),
        )
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


class PackTree:
    """Binary space partition of the triad grid, as the reference builds it."""

    def __init__(self, width: int, height: int) -> None:
        self.root = _Node(0, 0, width, height)

    # -- placing rectangles --

    def alloc(self, w: int, h: int, accept: Accept, anywhere: bool) -> tuple[int, int] | None:
        """Place a ``w x h`` rectangle; returns its bottom-left triad or None."""

        def fits(node: _Node) -> bool:
            return node.mw >= w and node.mh >= h

        def size(_leaf: _Node) -> tuple[int, int] | None:
            return (w, h)

        found = self._place(self.root, fits, size, accept)
        if found is None and anywhere:
            found = self._place_anywhere(fits, size, accept)
        return None if found is None else (found[0], found[1])

    def alloc_area(
        self, area: int, min_ratio: float, accept: Accept, anywhere: bool
    ) -> tuple[int, int, int, int] | None:
        """Place at least ``area`` triads, shaped per free leaf; returns (x, y, w, h) or None."""

        def fits(node: _Node) -> bool:
            return node.ma >= area

        def size(leaf: _Node) -> tuple[int, int] | None:
            return area_to_rect(area, leaf.w, leaf.h, min_ratio)

        found = self._place(self.root, fits, size, accept)
        if found is None and anywhere:
            found = self._place_anywhere(fits, size, accept)
        return found

    def _place(
        self,
        node: _Node,
        fits: Callable[[_Node], bool],
        size: Callable[[_Node], tuple[int, int] | None],
        accept: Accept,
    ) -> tuple[int, int, int, int] | None:
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

    def _place_anywhere(
        self,
        fits: Callable[[_Node], bool],
        size: Callable[[_Node], tuple[int, int] | None],
        accept: Accept,
    ) -> tuple[int, int, int, int] | None:
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
