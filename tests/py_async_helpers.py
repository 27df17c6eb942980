"""Python helpers for py_async_SUITE: coroutines, sync and async generators, and a
small aiohttp server and client, all run on a context's asyncio loop.

Module globals are shared by every context (one interpreter), so what a coroutine or a
generator records in ``EVENTS`` (its ``finally``, its ``CancelledError``) can be read
back with ``py:call(py_async_helpers, events, [])`` from any process.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional

import erlang

# What coroutines and generators recorded: "<what>:<tag>" strings.
EVENTS: List[str] = []
# Items each tracked generator produced, by tag.
PRODUCED: Dict[str, int] = {}
# Coroutines of `inflight` running right now, and the most seen at once.
_inflight = 0
_max_inflight = 0


def events() -> List[str]:
    return list(EVENTS)


def produced(tag: str) -> int:
    return PRODUCED.get(tag, 0)


def reset() -> None:
    global _inflight, _max_inflight
    EVENTS.clear()
    PRODUCED.clear()
    _inflight = 0
    _max_inflight = 0


# --------------------------------------------------------------------------- coroutines


async def add(a: Any, b: Any, delay: float = 0.0) -> Any:
    await asyncio.sleep(delay)
    return a + b


async def sleep_and_return(value: Any, seconds: float) -> Any:
    await asyncio.sleep(seconds)
    return value


async def erlang_sleep_and_return(value: Any, seconds: float) -> Any:
    await erlang.sleep(seconds)
    return value


async def fail_after(message: str, delay: float = 0.0) -> None:
    await asyncio.sleep(delay)
    raise ValueError(message)


async def slow_with_finally(tag: str, seconds: float) -> str:
    """Sleeps long; records its cancellation and its `finally`."""
    try:
        await asyncio.sleep(seconds)
        EVENTS.append(f"completed:{tag}")
        return "completed"
    except asyncio.CancelledError:
        EVENTS.append(f"cancelled:{tag}")
        raise
    finally:
        EVENTS.append(f"finally:{tag}")


async def inflight(value: Any, seconds: float) -> Any:
    """Counts how many of these run at the same time."""
    global _inflight, _max_inflight
    _inflight += 1
    _max_inflight = max(_max_inflight, _inflight)
    try:
        await asyncio.sleep(seconds)
        return value
    finally:
        _inflight -= 1


def max_inflight() -> int:
    return _max_inflight


async def call_erlang_concurrently(name: str, n: int) -> Dict[str, Any]:
    """`n` concurrent `erlang.async_call(name, i)` while another coroutine ticks every
    5 ms: the loop must keep running while Erlang works."""
    ticks = 0
    stop = False

    async def tick() -> None:
        nonlocal ticks
        while not stop:
            ticks += 1
            await asyncio.sleep(0.005)

    ticker = asyncio.ensure_future(tick())
    start = time.monotonic()
    results = await asyncio.gather(*(erlang.async_call(name, i) for i in range(n)))
    elapsed_ms = (time.monotonic() - start) * 1000.0
    stop = True
    await ticker
    return {"results": list(results), "elapsed_ms": elapsed_ms, "ticks": ticks}


# --------------------------------------------------------------------------- generators


def count_sync(n: int, start: int = 0) -> Iterator[int]:
    for i in range(start, start + n):
        yield i


async def count_async(n: int, start: int = 0, delay: float = 0.0) -> AsyncIterator[int]:
    for i in range(start, start + n):
        await asyncio.sleep(delay)
        yield i


def sync_fail_after(n: int, message: str) -> Iterator[int]:
    for i in range(n):
        yield i
    raise ValueError(message)


async def async_fail_after(n: int, message: str) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(0.001)
        yield i
    raise ValueError(message)


def sync_tracked(tag: str, n: Optional[int] = None) -> Iterator[int]:
    """Yields 0, 1, ... (`n` items, or forever); records its `finally`."""
    PRODUCED[tag] = 0
    try:
        i = 0
        while n is None or i < n:
            PRODUCED[tag] = i + 1
            yield i
            i += 1
    finally:
        EVENTS.append(f"finally:{tag}")


async def async_tracked(tag: str, n: Optional[int] = None, delay: float = 0.0) -> AsyncIterator[int]:
    """Async version of `sync_tracked`: awaits `delay` before each item."""
    PRODUCED[tag] = 0
    try:
        i = 0
        while n is None or i < n:
            await asyncio.sleep(delay)
            PRODUCED[tag] = i + 1
            yield i
            i += 1
    finally:
        EVENTS.append(f"finally:{tag}")


# --------------------------------------------------------------------------- aiohttp

_runner: Any = None
_session: Any = None
_session_loop: Any = None
STREAM_CHUNKS = [f"chunk-{i:02d};".encode() for i in range(20)]


async def _handle_json(request: Any) -> Any:
    from aiohttp import web

    n = int(request.query.get("n", "0"))
    return web.json_response({"n": n, "square": n * n, "name": request.query.get("name", "")})


async def _handle_stream(request: Any) -> Any:
    from aiohttp import web

    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for chunk in STREAM_CHUNKS:
        await response.write(chunk)
        await asyncio.sleep(0.005)
    await response.write_eof()
    return response


async def start_server() -> int:
    """An aiohttp server on 127.0.0.1, on an ephemeral port, in this context's loop:
    `GET /json?n=N&name=S` and `GET /stream` (chunked). Answers the port."""
    global _runner
    from aiohttp import web

    if _runner is not None:
        await stop_server()
    app = web.Application()
    app.router.add_get("/json", _handle_json)
    app.router.add_get("/stream", _handle_stream)
    runner = web.AppRunner(app)
    await runner.setup()
    # A backlog above the 200 concurrent connections of the suite (the default is 128;
    # past it, connections wait for a SYN retry, a second later).
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    _runner = runner
    return runner.addresses[0][1]


async def stop_server() -> bool:
    global _runner, _session, _session_loop
    if _session is not None:
        await _session.close()
        _session = None
        _session_loop = None
    if _runner is None:
        return False
    runner, _runner = _runner, None
    await runner.cleanup()
    return True


def _client() -> Any:
    """One client session per loop (made inside it)."""
    global _session, _session_loop
    import aiohttp

    loop = asyncio.get_running_loop()
    if _session is None or _session_loop is not loop or _session.closed:
        _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        _session_loop = loop
    return _session


async def fetch_json(port: int, n: int, name: str = "") -> Any:
    url = f"http://127.0.0.1:{port}/json"
    async with _client().get(url, params={"n": str(n), "name": name}) as response:
        response.raise_for_status()
        return await response.json()


async def fetch_chunks(port: int) -> AsyncIterator[bytes]:
    """The body of `GET /stream` as it arrives, chunk by chunk."""
    async with _client().get(f"http://127.0.0.1:{port}/stream") as response:
        response.raise_for_status()
        async for chunk in response.content.iter_any():
            yield chunk


def expected_stream_body() -> bytes:
    return b"".join(STREAM_CHUNKS)


async def await_erlang(name: str, *args: Any) -> Any:
    """`await erlang.async_call(name, *args)` and answer what Erlang answered."""
    return await erlang.async_call(name, *args)
