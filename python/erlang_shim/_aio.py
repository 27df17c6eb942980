"""Coroutine helpers the contexts run on their event loops (internal)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, AsyncIterable, Awaitable, Callable, Iterable, List


def is_async_iterable(value: Any) -> bool:
    return hasattr(type(value), "__aiter__")


async def collect(items: AsyncIterable[Any]) -> List[Any]:
    """Every item of an async iterable, in order."""
    return [item async for item in items]


async def _value(value: Any) -> Any:
    return value


async def gather(values: Iterable[Any]) -> List[Any]:
    """Await the awaitables among `values` concurrently; results in order."""
    awaitables = [v if inspect.isawaitable(v) else _value(v) for v in values]
    return list(await asyncio.gather(*awaitables))


async def pump(
    items: AsyncIterable[Any],
    emit: Callable[[Any], bool],
    wait_credit: Callable[[], Awaitable[None]],
) -> None:
    """Hand each item of an async iterable to `emit`; when it answers False the
    consumer is saturated, so wait for credit before producing the next one."""
    iterator = items.__aiter__()
    try:
        async for item in iterator:
            if not emit(item):
                await wait_credit()
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()
