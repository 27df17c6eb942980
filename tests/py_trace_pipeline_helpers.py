"""Python helpers for py_trace_pipeline_SUITE: the Python steps of traced pipelines."""

from __future__ import annotations

import asyncio
from typing import Any, Iterator

import erlang


def outer(x: int) -> Any:
    """Python -> Erlang: the Erlang function ``tp_inner`` calls ``leaf`` again."""
    return erlang.call("tp_inner", x)


def outer_in_span(x: int) -> Any:
    """``erlang.call`` made inside an ``erlang.Span``: the call span is its child."""
    with erlang.Span("prepare", x=x):
        return erlang.call("tp_inner", x)


def leaf(x: int) -> int:
    with erlang.Span("leaf.work", x=x):
        return x * 2


async def async_outer(x: int) -> Any:
    """A coroutine whose Erlang step is awaited; the task keeps the request's span."""
    await asyncio.sleep(0)
    return await erlang.async_call("tp_inner", x)


def items(n: int) -> Iterator[int]:
    for i in range(n):
        with erlang.Span("item", i=i):
            pass
        yield i


def fail() -> None:
    raise ValueError("bad input")


def spin() -> None:
    while True:
        pass


async def sleeper(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "woke"


def many_spans(n: int) -> int:
    for i in range(n):
        with erlang.Span("s"):
            pass
    return n


def traceparent_seen() -> Any:
    """What ``py:current_traceparent/0`` answers inside an Erlang function."""
    return erlang.call("tp_current")
