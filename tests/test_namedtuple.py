"""spalloc._namedtuple.NamedTuple builds what typing.NamedTuple builds, without typing."""

from __future__ import annotations

import pickle
import subprocess
import sys
import typing

import pytest

from spalloc._namedtuple import NamedTuple


class Point(NamedTuple):
    """A point."""

    x: int
    y: int = 0
    label: str | None = None

    @property
    def norm1(self) -> int:
        """Manhattan length."""
        return abs(self.x) + abs(self.y)

    @classmethod
    def origin(cls) -> Point:
        return cls(0)

    def moved(self, dx: int) -> Point:
        return self._replace(x=self.x + dx)


class TypingPoint(typing.NamedTuple):
    """A point."""

    x: int
    y: int = 0
    label: str | None = None


def test_same_tuple_as_typing() -> None:
    ours, theirs = Point(1, 2), TypingPoint(1, 2)
    assert ours == theirs == (1, 2, None) and isinstance(ours, tuple)
    assert Point._fields == TypingPoint._fields == ("x", "y", "label")
    assert Point._field_defaults == TypingPoint._field_defaults == {"y": 0, "label": None}
    assert list(Point.__annotations__) == list(TypingPoint.__annotations__)
    assert typing.get_type_hints(Point) == typing.get_type_hints(TypingPoint)
    assert (Point.__name__, Point.__qualname__, Point.__module__) == ("Point", "Point", __name__)
    assert Point.__doc__ == TypingPoint.__doc__ == "A point."
    assert repr(Point(3, label="a")) == "Point(x=3, y=0, label='a')"
    assert Point(3)._asdict() == {"x": 3, "y": 0, "label": None}
    assert Point._make([4, 5, "b"]) == Point(4, 5, "b")
    assert not hasattr(Point(1), "__dict__")  # still slotted


def test_body_members_are_kept() -> None:
    assert Point(3, -4).norm1 == 7
    assert Point.origin() == Point(0)
    assert Point(1).moved(2) == Point(3)
    assert Point.norm1.__doc__ == "Manhattan length."


def test_immutable_and_picklable() -> None:
    point = Point(1, 2, "p")
    with pytest.raises(AttributeError):
        point.x = 5  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(point)) == point


def test_errors_as_typing() -> None:
    with pytest.raises(TypeError, match="Non-default"):

        class Bad(NamedTuple):
            x: int = 0
            y: int  # type: ignore[misc]

    with pytest.raises(AttributeError, match="_replace"):

        class Clash(NamedTuple):
            x: int

            def _replace(self) -> None:  # type: ignore[misc]
                pass

    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]


def test_typing_is_not_imported() -> None:
    code = (
        "import sys\nbefore = set(sys.modules)\nfrom spalloc._namedtuple import NamedTuple\n"
        "class P(NamedTuple):\n    x: int\n"
        "print('typing' in set(sys.modules) - before, P(1))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["False", "P(x=1)"]
