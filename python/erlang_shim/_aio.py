"""Coroutine helpers the contexts run on their event loops (internal).

The Python half of the loop driver (``src/actors/loop_driver.rs``): the task factory
that marks tasks with their request, and the helpers that start tasks, collect
iterables and wind a loop down. The driver alone touches asyncio's private API.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import time
import weakref
from itertools import islice
from typing import Any, AsyncIterable, Awaitable, Callable, Iterable, Iterator, List

# Items of a synchronous iterable collected per turn of the loop: few enough that one
# turn is short even for C iterators (which never let an interruption in), so a
# cancelled collection stops within a turn.
SYNC_BATCH = 1024


def task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task:
    """The contexts' task factory: a task inherits the request of the task that created
    it (`_erlang_request`), so a timed-out request can be interrupted in any of its tasks
    (the interrupter reads the mark of the loop's current task)."""
    task = asyncio.Task(coro, loop=loop, **kwargs)
    parent = asyncio.current_task(loop)
    if parent is not None:
        task._erlang_request = getattr(parent, "_erlang_request", 0)
    return task


def track_servers(loop: asyncio.AbstractEventLoop) -> None:
    """Make `loop` remember the servers it creates (``loop.create_server``,
    ``create_unix_server``, and what calls them: ``asyncio.start_server``, aiohttp's
    sites), so that a stopping context can close them: asyncio keeps no list of them,
    and a server nobody closes keeps its listening socket as long as it lives."""
    servers: "weakref.WeakSet[asyncio.AbstractServer]" = weakref.WeakSet()
    loop._erlang_servers = servers  # type: ignore[attr-defined]
    for name in ("create_server", "create_unix_server"):
        if hasattr(loop, name):
            setattr(loop, name, _tracking(loop, name, servers))


def _tracking(
    loop: asyncio.AbstractEventLoop, name: str, servers: "weakref.WeakSet[Any]"
) -> Callable[..., Awaitable[Any]]:
    """`loop.<name>`, adding the server it makes to `servers`. It reaches the loop
    through a weak reference and the class's function: a bound method stored on the
    loop would make the loop part of a reference cycle, freed only by the collector."""
    create = getattr(type(loop), name)
    owner = weakref.ref(loop)

    @functools.wraps(create)
    async def tracked(*args: Any, **kwargs: Any) -> Any:
        server = await create(owner(), *args, **kwargs)
        servers.add(server)
        return server

    return tracked


def start_task(loop: asyncio.AbstractEventLoop, awaitable: Any, request: int) -> asyncio.Future:
    """`awaitable` as a task on `loop`, marked as request `request`'s."""
    task = asyncio.ensure_future(awaitable, loop=loop)
    try:
        task._erlang_request = request
    except AttributeError:
        pass
    return task


def first_batch(iterator: Iterator[Any]) -> List[Any]:
    """Up to `SYNC_BATCH` items; fewer means the iterator is exhausted."""
    return list(islice(iterator, SYNC_BATCH))


async def collect_rest(items: List[Any], iterator: Iterator[Any]) -> List[Any]:
    """`items` followed by the rest of `iterator`, a batch per turn of the loop, so that
    cancelling the collection (its caller timed out or died) stops it."""
    while True:
        batch = list(islice(iterator, SYNC_BATCH))
        items.extend(batch)
        if len(batch) < SYNC_BATCH:
            return items
        await asyncio.sleep(0)



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


# How long a stopping context lets its cancelled tasks and async generators finish.
WIND_DOWN_SECONDS = 1.0


def wind_down(loop: asyncio.AbstractEventLoop) -> None:
    """Before a stopping context closes its loop: close the servers it created (their
    listening sockets go at once, so the port can be bound again), cancel every task
    still on it and let them run their ``finally`` blocks and cleanup, finalize async
    generators and let the finalizers they scheduled run, then close the connections
    (transports) still open on it, all within `WIND_DOWN_SECONDS`. Their callers were
    answered already; without this the tasks would be destroyed pending (asyncio warns
    on stderr), their cleanup skipped, and sockets left open until Python collects
    their objects (connections hang, a restarted server finds its port in use)."""
    deadline = time.monotonic() + WIND_DOWN_SECONDS

    def settle(tasks: List[asyncio.Future]) -> None:
        left = deadline - time.monotonic()
        if tasks and left > 0:
            loop.run_until_complete(asyncio.wait(tasks, timeout=left))

    def cancel_pending() -> List[asyncio.Future]:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        return pending

    for server in list(getattr(loop, "_erlang_servers", ())):
        _quietly(server.close)
    settle(cancel_pending())
    # An async generator that only a cancelled task's coroutine held is closed when it is
    # freed: the context steps the loop itself, so asyncio's async generator hooks (and
    # `shutdown_asyncgens`) never saw it. From CPython 3.12 on, such a coroutine's frame
    # objects and its CancelledError hold each other (through the traceback and the frames'
    # callers), so the generator lives on after its task until the cycle collector runs:
    # collect now, while its `finally` can still reach Erlang. (On 3.11 reference counting
    # freed it with the task.) No reference to the tasks may be left in this frame here.
    gc.collect()
    loop.run_until_complete(loop.shutdown_asyncgens())
    # A generator dropped while its task ended scheduled its `aclose()` as a new task.
    settle([task for task in asyncio.all_tasks(loop) if not task.done()])
    close_transports(loop)
    for task in asyncio.all_tasks(loop):
        task.cancel()


def close_transports(loop: asyncio.AbstractEventLoop) -> None:
    """Close every connection still open on `loop` (accepted by its servers or opened
    from it): ``close()`` first, which sends what is buffered, then ``abort()`` for
    those a turn of the loop did not finish, and a turn for their protocols'
    ``connection_lost``. The loop's table of its socket transports is private asyncio
    (checked by the loop driver when the context starts)."""
    transports = [t for t in list(loop._transports.values()) if t is not None]  # type: ignore[attr-defined]
    if not transports:
        return
    for transport in transports:
        if not transport.is_closing():
            _quietly(transport.close)
    _turns(loop, 2)
    for transport in transports:
        _quietly(transport.abort)
    _turns(loop, 2)


def _quietly(close: Callable[[], Any]) -> None:
    """`close()`; one object that fails to close must not keep the others open (nobody
    is left to tell: the callers were answered)."""
    try:
        close()
    except Exception:
        pass


def _turns(loop: asyncio.AbstractEventLoop, n: int) -> None:
    """Let `loop` run its ready callbacks about `n` times."""
    for _ in range(n):
        loop.run_until_complete(asyncio.sleep(0))
