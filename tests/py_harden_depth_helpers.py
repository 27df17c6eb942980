"""Python helpers for py_harden_depth_SUITE: self-containing and deep values, values
converted on threads of their own, re-entrant chains and slow conversions."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable

import erlang
import numpy as np


def numpy_self() -> Any:
    """A 0-d object array holding itself: `tolist()` answers the array again."""
    a = np.empty((), dtype=object)
    a[()] = a
    return a


def numpy_self_in_list() -> Any:
    """A 1-d object array whose only item is itself."""
    a = np.empty(1, dtype=object)
    a[0] = a
    return a


def dict_self() -> dict[str, Any]:
    d: dict[str, Any] = {}
    d["self"] = d
    return d


class SelfList(list):
    """A list subclass whose `__iter__` and `__str__` give itself."""

    def __iter__(self) -> Any:
        return iter([self])

    def __str__(self) -> str:
        return str(self)


def list_subclass_self() -> SelfList:
    s = SelfList()
    s.append(s)
    return s


def nested_frozensets(levels: int) -> frozenset[Any]:
    """`levels` frozensets, each holding the next; the innermost is empty."""
    value: frozenset[Any] = frozenset()
    for _ in range(levels - 1):
        value = frozenset([value])
    return value


class StoresItself:
    """`str()` stores the object itself in the shared state: a conversion run inside a
    conversion, through `__str__`, again and again."""

    def __str__(self) -> str:
        erlang.state_set("harden_self", self)
        return "never"


def str_stores_itself(recursion_limit: int) -> StoresItself:
    sys.setrecursionlimit(recursion_limit)
    return StoresItself()


def nested_lists(levels: int) -> list[Any]:
    """`levels` lists, each holding the next; the innermost is empty."""
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def list_depth(value: Any) -> int:
    """How many lists are nested in `value` (counted without recursion)."""
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    return depth


def in_thread(work: Callable[[], Any], stack_size: int = 0) -> Any:
    """Run `work` on a new `threading.Thread` (default stack, or `stack_size` bytes) and
    answer its result, or `(ClassName, message)` of what it raised."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as e:  # noqa: BLE001 - the test wants whatever it was
            result.append((type(e).__name__, str(e)))

    old = threading.stack_size(stack_size) if stack_size else None
    try:
        thread = threading.Thread(target=run)
        thread.start()
    finally:
        if old is not None:
            threading.stack_size(old)
    thread.join()
    return result[0]


def send_deep_from_thread(pid: erlang.Pid, levels: int, stack_size: int = 0) -> Any:
    """`erlang.send` a `levels`-deep list from a thread of its own."""
    value = nested_lists(levels)
    return in_thread(lambda: erlang.send(pid, value), stack_size)


def state_round_trip_from_thread(key: str, levels: int, stack_size: int = 0) -> Any:
    """On a thread: store a `levels`-deep list, read it back, answer its depth."""
    value = nested_lists(levels)

    def work() -> int:
        erlang.state_set(key, value)
        return list_depth(erlang.state_get(key))

    return in_thread(work, stack_size)


def state_get_depth_from_thread(key: str, stack_size: int = 0) -> Any:
    """On a thread: the depth of the list stored (by Erlang) under `key`."""
    return in_thread(lambda: list_depth(erlang.state_get(key)), stack_size)


def chain(levels: int) -> int:
    """Python -> Erlang -> Python ... `levels` times; an error ends the chain there."""
    if levels == 0:
        return 0
    return 1 + erlang.call("harden_chain", levels - 1)


def chain_reach(level: int, limit: int, recursion_limit: int) -> Any:
    """Nest `erlang.call` up to `limit` levels; answer how deep it got and the
    `RecursionError` that stopped it, if any."""
    sys.setrecursionlimit(recursion_limit)
    if level == limit:
        return [level, None]
    try:
        return erlang.call("harden_reach", level + 1, limit, recursion_limit)
    except RecursionError as e:
        return [level, str(e)]


def fail_chain(levels: int, message_size: int) -> int:
    """Like `chain`, but the innermost level raises a `message_size`-character error."""
    if levels == 0:
        raise ValueError("x" * message_size)
    return 1 + erlang.call("harden_fail_chain", levels - 1, message_size)


def raise_long(size: int) -> None:
    raise ValueError("y" * size)


def erlang_error_of(name: str, *args: Any) -> Any:
    """Call Erlang's `name`; answer `[ClassName, len(str(e)), reason]` of its failure."""
    try:
        erlang.call(name, *args)
    except Exception as e:  # noqa: BLE001 - the test checks which class it is
        return [type(e).__name__, len(str(e)), getattr(e, "reason", None)]
    return "no error"


def erlang_error_text_head(name: str, size: int) -> Any:
    """Call Erlang's `name`; answer the class, length and first `size` characters of
    the failure's message."""
    try:
        erlang.call(name)
    except Exception as e:  # noqa: BLE001 - the test checks which class it is
        return [type(e).__name__, len(str(e)), str(e)[:size]]
    return "no error"


async def async_erlang_error_of(name: str) -> Any:
    try:
        await erlang.async_call(name)
    except Exception as e:  # noqa: BLE001 - the test checks which class it is
        return [type(e).__name__, getattr(e, "reason", None)]
    return "no error"


class SlowStr:
    """Converted through `str()`, which takes `seconds` and finishes even when the
    caller gives up meanwhile (it swallows the `erlang.Interrupted` raised into it)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __str__(self) -> str:
        try:
            time.sleep(self.seconds)
        except BaseException:  # noqa: BLE001 - finishing the conversion is the point
            pass
        return "slow"


def call_with_slow_arg(seconds: float) -> Any:
    """`erlang.call` whose argument takes `seconds` to convert."""
    return erlang.call("harden_echo", SlowStr(seconds))


def raise_deep(frames: int, size: int) -> None:
    """Raise a `size`-character `ValueError` from `frames` nested calls."""
    if frames > 0:
        raise_deep(frames - 1, size)
    raise ValueError("tb-marker " + "z" * size)
