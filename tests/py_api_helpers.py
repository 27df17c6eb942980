"""Python helpers for py_call_SUITE and py_runtime_SUITE."""

from __future__ import annotations

import time
from typing import Any

calls: list[Any] = []
freed: list[str] = []


def identity(value: Any) -> Any:
    return value


def kw(a: int, b: int = 0, *, scale: int = 1) -> int:
    return (a + b) * scale


def record(value: Any) -> None:
    """Remember a value (lets casts be observed)."""
    calls.append(value)


def recorded() -> list[Any]:
    return list(calls)


def clear() -> None:
    calls.clear()
    freed.clear()


def raise_value_error(message: str) -> None:
    raise ValueError(message)


def sleep_then(seconds: float, value: Any) -> Any:
    time.sleep(seconds)
    return value


def spin(seconds: float) -> int:
    """Busy Python bytecode for `seconds` (holds the GIL between switch intervals)."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


class FreedProbe:
    """Records its tag in `freed` when garbage collected."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __del__(self) -> None:
        freed.append(self.tag)


def freed_tags() -> list[str]:
    return list(freed)


class Counter:
    def __init__(self, start: int = 0) -> None:
        self.value = start

    def incr(self, by: int = 1) -> int:
        self.value += by
        return self.value
