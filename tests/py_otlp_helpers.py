"""Python helpers for py_otlp_SUITE: the Python steps of a traced pipeline."""

from __future__ import annotations

import asyncio
from typing import Any, Iterator

import erlang


def handle(order: list[int]) -> int:
    """The first Python step: validates, then asks Erlang (`otlp_price`) for the total,
    which calls `price/1` below through `py:call`."""
    with erlang.Span("handle", items=len(order)) as span:
        with erlang.Span("validate"):
            if not order:
                raise ValueError("empty order")
        total = erlang.call("otlp_price", order)
        span.set_attribute("total", total)
        span.event("priced", total=total)
    return total


def price(order: list[int]) -> int:
    """The second Python step, reached from Erlang."""
    with erlang.Span("price", currency="EUR"):
        return sum(order)


async def handle_async(order: list[int]) -> int:
    """The pipeline's asynchronous form: a check in a task of its own, then the total
    from Erlang with `erlang.async_call`."""
    async def check(i: int) -> None:
        with erlang.Span("check", index=i):
            await asyncio.sleep(0.001)

    with erlang.Span("handle_async", items=len(order)):
        await asyncio.gather(*(check(i) for i in range(len(order))))
        return await erlang.async_call("otlp_price", order)


def numbers(n: int) -> Iterator[int]:
    """A stream whose items are each made in a span."""
    with erlang.Span("numbers", n=n):
        for i in range(n):
            with erlang.Span("item", index=i):
                value = i * i
            yield value


def many_spans(n: int) -> int:
    """`n` finished spans as fast as Python makes them."""
    for _ in range(n):
        with erlang.Span("burst"):
            pass
    return n


def one_span(name: str) -> str:
    with erlang.Span(name):
        return name


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then closed)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
