"""The classes Python sees for Erlang values and errors: ``erlang.Pid``,
``erlang.Ref``, ``erlang.SharedDict`` and the exceptions ``Interrupted``,
``ErlangError`` and ``ProcessError``.

They are plain Python classes, made afresh by every interpreter that imports the
shim, so that no object of one interpreter is ever used by another (the native
core finds them through the interpreter's own registry, ``src/interp_kit.rs``).
Values are only ever made by the native core: Python code cannot construct a
``Pid`` or ``Ref`` from arbitrary bytes, and none of the classes can be subclassed
(the core checks exact types when it converts them back to Erlang).
"""

from __future__ import annotations

from typing import Any, Iterator, List, NoReturn, Optional, Tuple

import erlang

__all__ = ["Pid", "Ref", "SharedDict", "Interrupted", "ErlangError", "ProcessError"]

# External term format tags read by ``Pid.__repr__``.
_PID_EXT = 88
_NEW_PID_EXT = 103
_ATOM_EXT = 100
_ATOM_UTF8_EXT = 118
_SMALL_ATOM_UTF8_EXT = 119


class Interrupted(BaseException):
    """Raised inside Python code whose Erlang caller gave up (timeout or cancel)."""

    __module__ = "erlang"


class ErlangError(Exception):
    """An Erlang function called from Python failed; ``reason`` holds the Erlang reason."""

    __module__ = "erlang"


class ProcessError(Exception):
    """The Erlang process a message or call was meant for is not alive."""

    __module__ = "erlang"


def _frozen(self: object, name: str, *_args: Any) -> NoReturn:
    raise AttributeError(f"'erlang.{type(self).__name__}' object attribute '{name}' is read-only")


def _not_picklable(self: object) -> NoReturn:
    raise TypeError(f"cannot pickle 'erlang.{type(self).__name__}' object")


# Set once the classes below are defined: from then on none of them can be subclassed.
_sealed = False


class _Sealed:
    """Base of the value classes: read-only, not picklable, not subclassable."""

    __slots__ = ()
    __setattr__ = _frozen
    __delattr__ = _frozen
    __reduce__ = _not_picklable  # type: ignore[assignment]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if _sealed:
            raise TypeError(f"type 'erlang.{cls.__bases__[0].__name__}' is not an acceptable base type")
        super().__init_subclass__(**kwargs)


class _Term(_Sealed):
    """An Erlang value kept as its external term format (``_etf``): equal when the
    bytes are, hashable."""

    __slots__ = ("_etf",)
    _etf: bytes

    def __new__(cls, *_args: Any, **_kwargs: Any) -> NoReturn:
        raise TypeError(f"cannot create 'erlang.{cls.__name__}' instances")

    @classmethod
    def _from_etf(cls, etf: bytes) -> Any:
        """The value whose external format is ``etf`` (for the native core only)."""
        value = object.__new__(cls)
        object.__setattr__(value, "_etf", etf)
        return value

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._etf == other._etf  # type: ignore[attr-defined, no-any-return]

    def __ne__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._etf != other._etf  # type: ignore[attr-defined, no-any-return]

    def __hash__(self) -> int:
        return hash(self._etf)


class Pid(_Term):
    """An Erlang process identifier. Hashable, comparable, and converts back to the same pid."""

    __slots__ = ()
    __module__ = "erlang"

    def __repr__(self) -> str:
        numbers = _pid_numbers(self._etf)
        if numbers is None:
            return "<erlang.Pid>"
        return f"<erlang.Pid <0.{numbers[0]}.{numbers[1]}>>"


class Ref(_Term):
    """An Erlang reference. Hashable, comparable, and converts back to the same reference."""

    __slots__ = ()
    __module__ = "erlang"

    def __repr__(self) -> str:
        return f"<erlang.Ref {self._etf[::-1][:6].hex()}>"


def _pid_numbers(etf: bytes) -> Optional[Tuple[int, int]]:
    """The process number and serial of a pid in the external term format."""
    if len(etf) < 4 or etf[1] not in (_PID_EXT, _NEW_PID_EXT):
        return None
    tag = etf[2]
    if tag in (_ATOM_UTF8_EXT, _ATOM_EXT):
        if len(etf) < 5:
            return None
        after_node = 5 + int.from_bytes(etf[3:5], "big")
    elif tag == _SMALL_ATOM_UTF8_EXT:
        after_node = 4 + etf[3]
    else:
        return None
    if len(etf) < after_node + 8:
        return None
    number = int.from_bytes(etf[after_node : after_node + 4], "big")
    serial = int.from_bytes(etf[after_node + 4 : after_node + 8], "big")
    return number, serial


class SharedDict(_Sealed):
    """A dictionary shared between Erlang and Python (``py:shared_dict_new/0``).

    Keys and values are converted like call arguments; the dictionary is gone once
    its Erlang owner exits or it is destroyed, after which any use raises
    ``RuntimeError``. ``SharedDict()`` makes one with no Erlang owner, which lives
    while it is referenced.
    """

    __slots__ = ("_handle",)
    __module__ = "erlang"
    # A capsule holding the native table's handle.
    _handle: Any

    def __new__(cls) -> "SharedDict":
        return cls._wrap(erlang._shared_dict_new())

    @classmethod
    def _wrap(cls, handle: Any) -> "SharedDict":
        """The dictionary behind ``handle`` (for the native core only)."""
        value = object.__new__(cls)
        object.__setattr__(value, "_handle", handle)
        return value

    def __getitem__(self, key: Any) -> Any:
        return erlang._shared_dict_getitem(self._handle, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        erlang._shared_dict_setitem(self._handle, key, value)

    def __delitem__(self, key: Any) -> None:
        erlang._shared_dict_delitem(self._handle, key)

    def __contains__(self, key: Any) -> bool:
        return erlang._shared_dict_contains(self._handle, key)  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return erlang._shared_dict_len(self._handle)  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[Any]:
        return iter(erlang._shared_dict_keys(self._handle))

    def keys(self) -> List[Any]:
        return erlang._shared_dict_keys(self._handle)  # type: ignore[no-any-return]

    def values(self) -> List[Any]:
        return [value for _, value in erlang._shared_dict_items(self._handle)]

    def items(self) -> List[Tuple[Any, Any]]:
        return erlang._shared_dict_items(self._handle)  # type: ignore[no-any-return]

    def get(self, key: Any, default: Any = None) -> Any:
        return erlang._shared_dict_get(self._handle, key, default)

    def __repr__(self) -> str:
        return erlang._shared_dict_repr(self._handle)  # type: ignore[no-any-return]


_sealed = True
