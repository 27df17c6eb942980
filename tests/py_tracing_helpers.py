"""Python helpers for py_tracing_SUITE."""

from __future__ import annotations

import asyncio
from typing import Any

import erlang


async def pipeline(n: int) -> list[Any]:
    """A root span whose child spans run in concurrent asyncio tasks."""
    async def step(i: int) -> int:
        with erlang.Span("step", index=i):
            await asyncio.sleep(0.01)
            return i

    with erlang.Span("pipeline", n=n):
        return list(await asyncio.gather(*(step(i) for i in range(n))))


@erlang.Span("decorated_async", kind="coroutine")
async def decorated_async() -> str:
    await asyncio.sleep(0)
    return "done"


@erlang.Span("decorated_sync")
def decorated_sync(x: int) -> int:
    if x < 0:
        raise ValueError("negative")
    return x * 2
