"""Python helpers for the ExUnit tests of the `Py` package (elixir/py/test).

Module globals are shared by every context (one interpreter), so what a generator
records in ``EVENTS`` (its ``finally``) can be read back with ``events()`` from any
process.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Dict, Iterator, List

EVENTS: List[str] = []


def events() -> List[str]:
    return list(EVENTS)


def reset() -> None:
    EVENTS.clear()


def echo(*args: Any, **kwargs: Any) -> Dict[str, Any]:
    """What the call received, with Python's view of each value's type."""
    return {
        "args": list(args),
        "kwargs": kwargs,
        "types": [type(a).__name__ for a in args],
        "kwarg_types": {k: type(v).__name__ for k, v in kwargs.items()},
    }


def nones() -> Any:
    return {None: [None, (1, None)], "k": None, "nested": {"x": [None]}}


def counter(tag: str, n: int, step: int = 1) -> Iterator[int]:
    """Yields 0, step, 2*step, ... n items; records how it ended."""
    try:
        for i in range(n):
            yield i * step
        EVENTS.append("exhausted:" + tag)
    finally:
        EVENTS.append("finally:" + tag)


async def acounter(tag: str, n: int) -> AsyncIterator[int]:
    try:
        for i in range(n):
            await asyncio.sleep(0)
            yield i
    finally:
        EVENTS.append("finally:" + tag)


def fail_after(n: int) -> Iterator[int]:
    for i in range(n):
        yield i
    raise ValueError("generator failed after %d" % n)


def slow(tag: str, seconds: float) -> Iterator[int]:
    try:
        yield 0
        time.sleep(seconds)
        yield 1
    finally:
        EVENTS.append("finally:" + tag)


def maybe_none(items: List[Any]) -> Iterator[Any]:
    yield from items
