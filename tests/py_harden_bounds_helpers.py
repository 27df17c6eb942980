"""Python helpers for py_harden_bounds_SUITE: stream producers that count what they
made, bulk writers to stdout, span makers, and shared-state readers."""

from __future__ import annotations

import logging
import sys
from typing import Any, Iterator

import erlang

_PRODUCED: dict[str, int] = {}


def count(n: int) -> Iterator[int]:
    yield from range(n)


def tracked(tag: str, n: int) -> Iterator[int]:
    """0..n-1, counting in `produced(tag)` what was made."""
    _PRODUCED[tag] = 0
    for i in range(n):
        _PRODUCED[tag] = i + 1
        yield i


def produced(tag: str) -> int:
    return _PRODUCED.get(tag, 0)


def write_chunks(n: int, size: int) -> int:
    # Each write is one whole line, so py_output forwards it as it is (it holds
    # unfinished lines back until they end).
    chunk = "x" * (size - 1) + "\n"
    for _ in range(n):
        sys.stdout.write(chunk)
    return n * size


def log_lines(n: int, size: int) -> int:
    """n warnings of `size` characters each through Python's `logging`."""
    log = logging.getLogger("bounds")
    text = "x" * size
    for _ in range(n):
        log.warning(text)
    return n


def make_spans(n: int) -> int:
    for i in range(n):
        with erlang.Span("s", i=i):
            pass
    return n


def state_get(key: Any) -> Any:
    return erlang.state_get(key, "missing")


def state_set(key: Any, value: Any) -> None:
    erlang.state_set(key, value)


def state_key_count() -> int:
    return len(erlang.state_keys())


def dict_items(d: Any) -> list:
    return sorted(d.items(), key=repr)


def dict_get(d: Any, key: Any) -> Any:
    return d.get(key, "missing")


def dict_set(d: Any, key: Any, value: Any) -> None:
    d[key] = value
