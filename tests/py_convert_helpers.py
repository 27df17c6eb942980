"""Python helpers for py_convert_SUITE: they report what Python received from Erlang
and build values for the Python -> Erlang direction.

Deeply nested values are walked iteratively, so that depth-10,000 values never hit
Python's recursion limit here.
"""

from __future__ import annotations

from typing import Any


def identity(value: Any) -> Any:
    """Return ``value`` unchanged (a round trip Erlang -> Python -> Erlang)."""
    return value


def type_name(value: Any) -> str:
    """The name of ``value``'s exact type, e.g. ``'int'`` or ``'Pid'``."""
    return type(value).__name__


def describe(value: Any) -> tuple[str, str]:
    """``(type name, repr)`` of ``value``."""
    return type(value).__name__, repr(value)


def element_types(value: list[Any]) -> list[str]:
    """The exact type name of each element of ``value``."""
    return [type(item).__name__ for item in value]


def dict_items(value: dict[Any, Any]) -> list[tuple[str, Any, str, Any]]:
    """``(key type, key, value type, value)`` for each entry, sorted by key repr."""
    return sorted(
        ((type(k).__name__, k, type(v).__name__, v) for k, v in value.items()),
        key=lambda entry: repr(entry[1]),
    )


def codepoints(text: str) -> list[int]:
    """The code points of ``text``, to check it arrived as the intended characters."""
    return [ord(ch) for ch in text]


def from_codepoints(points: list[int]) -> str:
    """The ``str`` made of ``points``."""
    return "".join(chr(p) for p in points)


def same_object(first: Any, second: Any) -> bool:
    """Whether two values compare equal and hash alike in Python."""
    return first == second and hash(first) == hash(second)


def list_depth(value: Any) -> int:
    """How many single-element lists are nested, ``[[[]]]`` being 3 deep."""
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    return depth


def deep_list(depth: int) -> list[Any]:
    """``depth`` single-element lists nested in each other, the innermost empty."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def deep_dict(depth: int) -> dict[str, Any]:
    """``depth`` dicts nested under the key ``'k'``, the innermost empty."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def deep_tuple_depth(value: Any) -> int:
    """How many single-element tuples are nested, ``((),)`` being 2 deep."""
    depth = 0
    while isinstance(value, tuple):
        depth += 1
        value = value[0] if value else None
    return depth


def deep_tuple(depth: int) -> tuple[Any, ...]:
    """``depth`` single-element tuples nested in each other, the innermost empty."""
    value: tuple[Any, ...] = ()
    for _ in range(depth - 1):
        value = (value,)
    return value


class Labelled:
    """An object with no Erlang counterpart: it crosses as its ``str()``."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return f"labelled: {self.text}"


def labelled(text: str) -> Labelled:
    """A :class:`Labelled` holding ``text``."""
    return Labelled(text)
