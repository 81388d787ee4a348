"""The base of the reply records in :mod:`spalloc.models`, and the parsers of their fields.

:class:`Reply` makes a record out of a server reply: the reply itself, as a read-only
``dict``, carrying typed attributes parsed from it, and able to go back from typed values
to the reply the server would have sent. The functions below read one field of a reply,
raising :class:`~spalloc.exceptions.ProtocolError` that names the field when its type is
wrong. Like :mod:`spalloc.models`, this module stays off :mod:`typing` and dataclasses
(start-up time of the command-line tools).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from spalloc.exceptions import ProtocolError

TYPE_CHECKING = False  # not typing's: that import costs start-up time (mypy sees True)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, ClassVar, Self, TypeVar, dataclass_transform

    # What type checkers see: a read-only mapping (at run time a dict that refuses changes).
    _ReplyBase = Mapping[str, Any]
    _R = TypeVar("_R", bound="Reply")
else:
    _ReplyBase = dict

    def dataclass_transform(**options):
        """typing's marker for type checkers, without typing (it changes nothing at run time)."""
        return lambda cls: cls


__all__ = [
    "Coord2",
    "Coord3",
    "Link",
    "Reply",
    "as_board",
    "as_chip",
    "as_ints",
    "get_boards",
    "get_float",
    "get_int",
    "get_power",
    "get_text",
    "lists",
    "malformed",
    "rebuild",
    "reply_list",
    "reply_object",
]

Coord2 = tuple[int, int]
Coord3 = tuple[int, int, int]
Link = tuple[int, int, int, int]


# --------------------------------------------------------------------------- the shared base


@dataclass_transform(frozen_default=True)
class Reply(_ReplyBase):
    """A server reply: the object as sent, read-only, with typed attributes parsed from it.

    Subclasses declare their typed fields as annotations (in order: ``Cls(*fields)`` and
    ``Cls(**fields)`` build one from typed values) and, in ``_to_wire``, how a typed value
    goes back to its JSON form where the two differ.
    """

    _fields: ClassVar[tuple[str, ...]] = ()
    _to_wire: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._fields = tuple(cls.__annotations__)  # its own (never a base's, since 3.10)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        name, fields = type(self).__name__, self._fields
        if len(args) > len(fields):
            raise TypeError(f"{name}() takes {len(fields)} arguments but {len(args)} were given")
        values = dict(zip(fields, args, strict=False))
        for key, value in kwargs.items():
            if key not in fields:
                raise TypeError(f"{name}() got an unexpected keyword argument {key!r}")
            if key in values:
                raise TypeError(f"{name}() got multiple values for argument {key!r}")
            values[key] = value
        missing = [key for key in fields if key not in values]
        if missing:
            raise TypeError(f"{name}() missing arguments: {', '.join(missing)}")
        _fill(self, values, {key: self._wire_value(key, values[key]) for key in fields})

    @classmethod
    def _from_reply(cls, reply: Mapping[str, Any], **values: Any) -> Self:
        """The record holding *reply* as sent, with typed *values* parsed from it."""
        return rebuild(cls, values, reply)

    @classmethod
    def _wire_value(cls, key: str, value: Any) -> Any:
        convert = cls._to_wire.get(key)
        return value if convert is None or value is None else convert(value)

    def _replace(self, **changes: Any) -> Self:
        """A copy with some typed values changed (their wire form changes with them)."""
        unknown = changes.keys() - set(self._fields)
        if unknown:
            raise ValueError(f"{type(self).__name__} has no fields {sorted(unknown)}")
        values = {key: getattr(self, key) for key in self._fields}
        values.update(changes)
        content = dict(self)
        content.update((key, self._wire_value(key, value)) for key, value in changes.items())
        return rebuild(type(self), values, content)

    @property
    def raw(self) -> Mapping[str, Any]:
        """The reply as the server sent it (a read-only view: the record is that reply)."""
        return MappingProxyType(self)

    def __repr__(self) -> str:
        # The typed view: the reply itself is one dict() away.
        fields = ", ".join(f"{key}={getattr(self, key)!r}" for key in self._fields)
        return f"{type(self).__name__}({fields})"

    def __reduce__(self) -> tuple[Any, ...]:
        # dict's own pickling would refill the record through the refused __setitem__.
        values = {key: getattr(self, key) for key in self._fields}
        return (rebuild, (type(self), values, dict(self)))

    if TYPE_CHECKING:
        # Mapping's abstract methods, which dict provides at run time.
        def __getitem__(self, key: str) -> Any: ...
        def __iter__(self) -> Iterator[str]: ...
        def __len__(self) -> int: ...
    else:

        def _read_only(self, *args, **kwargs):
            raise TypeError(
                f"a {type(self).__name__} is a read-only reply; "
                "dict(...) makes a copy that can be changed"
            )

        __setitem__ = __delitem__ = __ior__ = _read_only
        clear = pop = popitem = setdefault = update = _read_only

        def __setattr__(self, name, value):
            raise AttributeError(
                f"a {type(self).__name__} cannot be changed (_replace(...) makes a changed copy)"
            )

        __delattr__ = __setattr__


def _fill(record: Any, values: Mapping[str, Any], content: Mapping[str, Any]) -> None:
    # The one place a record is written: typed values as attributes, the reply as the dict.
    for key in record._fields:
        object.__setattr__(record, key, values[key])
    dict.update(record, content)


def rebuild(cls: type[_R], values: Mapping[str, Any], content: Mapping[str, Any]) -> _R:
    # A record without __init__ (which would build the content from the typed values).
    record = cls.__new__(cls)
    _fill(record, values, content)
    return record


def lists(value: Any) -> list[Any]:
    """Tuples back to JSON arrays, at every depth (coordinates, lists of them)."""
    return [lists(item) if isinstance(item, tuple) else item for item in value]


# --------------------------------------------------------------------------- field parsers


def malformed(key: str, reply: str, value: Any) -> ProtocolError:
    return ProtocolError(f"malformed {key!r} in a {reply} reply from the server: {value!r}")


def reply_object(value: Any, reply: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProtocolError(f"unexpected {reply} reply from the server: {value!r}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def get_float(obj: Mapping[str, Any], key: str, reply: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if not _is_number(value):
        raise malformed(key, reply, value)
    return float(value)


def _as_int(value: Any, key: str, reply: str) -> int:
    # Integral floats pass (some JSON encoders write 3.0); 2.5 or "3" is not a count.
    if not _is_number(value) or value != int(value):
        raise malformed(key, reply, value)
    return int(value)


def get_int(obj: Mapping[str, Any], key: str, reply: str) -> int | None:
    value = obj.get(key)
    return None if value is None else _as_int(value, key, reply)


def get_text(obj: Mapping[str, Any], key: str, reply: str) -> str | None:
    # A number can still be shown as text; a list or an object cannot.
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, (int, float)):
        raise malformed(key, reply, value)
    return str(value)


def get_power(obj: Mapping[str, Any], reply: str) -> bool | None:
    value = obj.get("power")
    if value is None or isinstance(value, bool):
        return value
    if value in (0, 1) and _is_number(value):
        return bool(value)
    raise malformed("power", reply, value)


def as_ints(value: Any, n: int, key: str, reply: str) -> list[int]:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise malformed(key, reply, value)
    return [_as_int(v, key, reply) for v in value]


def as_chip(value: Any, key: str, reply: str) -> Coord2:
    x, y = as_ints(value, 2, key, reply)
    return (x, y)


def as_board(value: Any, key: str, reply: str) -> Coord3:
    x, y, z = as_ints(value, 3, key, reply)
    return (x, y, z)


def get_boards(obj: Mapping[str, Any], key: str, reply: str) -> tuple[Coord3, ...] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise malformed(key, reply, value)
    return tuple(as_board(item, key, reply) for item in value)


def reply_list(value: Any, reply: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProtocolError(f"unexpected {reply} reply from the server: {value!r}")
    return value
