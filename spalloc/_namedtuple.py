"""``NamedTuple`` without importing :mod:`typing`: for modules on the command-line start-up path.

Type checkers see :class:`typing.NamedTuple` itself. At run time, the class statement
``class Point(NamedTuple): x: int; y: int = 0`` builds the same thing typing would: a
:func:`collections.namedtuple` with the annotated fields (in order), their defaults, and the
class body's methods, properties and docstring copied on. What it skips is typing's checking
of every annotation, which with ``from __future__ import annotations`` means building a
``ForwardRef`` per field, and the import of :mod:`typing` itself, both visible in the start-up
time of a one-shot tool such as ``spalloc-ps``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # (mypy takes any name TYPE_CHECKING as true)

__all__ = ["NamedTuple"]

if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    from collections import namedtuple as _namedtuple

    # As typing: these belong to the tuple and may not be replaced by the class body.
    _PROHIBITED = frozenset(
        {
            "__new__",
            "__init__",
            "__slots__",
            "__getnewargs__",
            "_fields",
            "_field_defaults",
            "_make",
            "_replace",
            "_asdict",
            "_source",
        }
    )
    _SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})

    class _NamedTupleMeta(type):
        def __new__(mcls, typename, bases, namespace):
            if not bases:  # NamedTuple itself
                return super().__new__(mcls, typename, bases, namespace)
            if len(bases) != 1:
                raise TypeError("can only inherit from NamedTuple")
            fields = dict(namespace.get("__annotations__", {}))
            defaults = []
            for name in fields:
                if name in namespace:
                    defaults.append(namespace[name])
                elif defaults:
                    raise TypeError(
                        f"Non-default namedtuple field {name} cannot follow default field(s)"
                    )
            cls = _namedtuple(
                typename, fields, defaults=defaults, module=namespace.get("__module__")
            )
            cls.__annotations__ = cls.__new__.__annotations__ = fields
            for key, value in namespace.items():
                if key in _PROHIBITED:
                    raise AttributeError(f"Cannot overwrite NamedTuple attribute {key}")
                if key not in _SPECIAL and key not in fields:
                    setattr(cls, key, value)
            return cls

    class NamedTuple(metaclass=_NamedTupleMeta):
        """Base of a named tuple class (see the module docstring)."""
