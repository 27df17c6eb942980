"""The Python half of the traced request in `make demo` (examples/trace_demo.escript).

An aiohttp server runs on a context's event loop. Its handler asks Erlang for a quote
(`erlang.async_call("quote", ...)`), and the Erlang function prices the order by calling
`price/1` below with `py:call`: Python -> Erlang -> Python, each step in a span.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import erlang
from aiohttp import web

# The server's runner, kept so the server lives as long as the context's loop.
_RUNNERS: list[web.AppRunner] = []


async def start_shop() -> int:
    """Start the HTTP server on 127.0.0.1 (a port the OS picks); answers the port."""
    app = web.Application()
    app.router.add_post("/order", _order)
    runner = web.AppRunner(app)
    await runner.setup()
    # The server's callbacks keep the context it was started in, and with it this
    # call's span: started from an empty one, each request it serves is a trace of its own.
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await asyncio.get_running_loop().create_task(site.start(), context=contextvars.Context())
    _RUNNERS.append(runner)
    return int(runner.addresses[0][1])


async def _order(request: web.Request) -> web.Response:
    with erlang.Span("POST /order") as span:
        with erlang.Span("parse body"):
            body: Any = await request.json()
            items = [int(x) for x in body["items"]]
        span.set_attribute("items", len(items))
        total = await erlang.async_call("quote", items)
        span.set_attribute("total", total)
        return web.json_response({"total": total})


def price(items: list[int]) -> int:
    """Reached from Erlang's `quote`: the order's total, less a discount on big ones."""
    with erlang.Span("price", items=len(items)):
        subtotal = sum(items)
        with erlang.Span("discount") as span:
            discount = subtotal // 10 if subtotal > 100 else 0
            span.set_attribute("amount", discount)
        return subtotal - discount
