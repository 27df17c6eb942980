"""Python helpers for py_stop_SUITE: servers, connections and tasks left on a context's
event loop when the application stops, and output written in pieces.

Module globals live in the interpreter, which outlives a stop of the application: what
the cleanup code records in ``EVENTS`` is read back after the application restarted.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, List

EVENTS: List[str] = []
# What the servers' starters keep, as a program would (a global runner, a server it means
# to close later): so that nothing but the stop can close them.
KEPT: List[Any] = []


def events() -> List[str]:
    return list(EVENTS)


def reset() -> None:
    EVENTS.clear()
    KEPT.clear()


async def _hello(request: Any) -> Any:
    from aiohttp import web

    return web.Response(text="hello")


async def _hang(request: Any) -> Any:
    """A handler that never answers; records that its cleanup ran."""
    from aiohttp import web

    EVENTS.append("hang:started")
    try:
        await asyncio.sleep(3600)
    finally:
        EVENTS.append("hang:finally")
    return web.Response(text="never")


async def start_aiohttp(port: int) -> int:
    """An aiohttp server on 127.0.0.1:`port` (0: any) in this context's loop, left
    running: nothing here ever cleans it up. Answers the port."""
    from aiohttp import web

    app = web.Application()
    app.router.add_get("/hello", _hello)
    app.router.add_get("/hang", _hang)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    KEPT.append(runner)
    return runner.addresses[0][1]


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def start_echo(port: int) -> int:
    """A plain asyncio server (`loop.create_server`) that echoes; answers the port."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Echo, "127.0.0.1", port)
    KEPT.append(server)
    return server.sockets[0].getsockname()[1]


async def start_stream_server(port: int) -> int:
    """`asyncio.start_server`, whose handler echoes lines; answers the port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    KEPT.append(server)
    return server.sockets[0].getsockname()[1]


class _Client(asyncio.Protocol):
    def connection_lost(self, exc: Any) -> None:
        EVENTS.append("client:lost")


async def connect(port: int) -> bool:
    """A client connection from this loop to 127.0.0.1:`port`, left open."""
    loop = asyncio.get_running_loop()
    KEPT.append(await loop.create_connection(_Client, "127.0.0.1", port))
    return True


def write_pieces(*pieces: str) -> None:
    """Each piece is one `write()` on stdout."""
    for piece in pieces:
        sys.stdout.write(piece)


def print_words(n: int) -> None:
    """`n` lines, each printed word by word (`print` writes each word and separator)."""
    for i in range(n):
        print("line", i, "of", n)


def write_err_pieces(*pieces: str) -> None:
    for piece in pieces:
        sys.stderr.write(piece)


def write_then_flush(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
