"""Python helpers for py_harden_wedge_SUITE: code that exits, spins or never ends,
run on a context's loop or as a stream, to check that the context survives it."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, AsyncIterator, Iterator

import erlang


class Halt(BaseException):
    """A BaseException of the user's own (not an Exception)."""


# --- exits -------------------------------------------------------------------------

async def exit_after_await(code: int) -> None:
    await asyncio.sleep(0)
    sys.exit(code)


async def raise_base(kind: str, text: str) -> None:
    await asyncio.sleep(0)
    if kind == "keyboard":
        raise KeyboardInterrupt(text)
    if kind == "generator_exit":
        raise GeneratorExit(text)
    raise Halt(text)


async def agen_exit(code: int) -> AsyncIterator[int]:
    yield 1
    yield 2
    sys.exit(code)


def gen_exit(code: int) -> Iterator[int]:
    yield 1
    sys.exit(code)


def schedule_exit(code: int) -> str:
    """A bare callback on the loop (no task, nobody to answer) that exits."""
    asyncio.get_event_loop().call_soon(sys.exit, code)
    return "scheduled"


def add(a: int, b: int) -> int:
    return a + b


def to_thread_add(a: int, b: int) -> int:
    """`asyncio.to_thread` in a loop of its own: fails once the interpreter began to
    finalize (threads can no longer register at exit)."""
    return asyncio.run(asyncio.to_thread(add, a, b))


async def to_thread_add_async(a: int, b: int) -> int:
    return await asyncio.to_thread(add, a, b)


# --- spinning ----------------------------------------------------------------------

def spin() -> None:
    while True:
        pass


async def spin_async() -> None:
    while True:
        pass


async def spin_in_child() -> None:
    """The busy loop runs in a task the request's own task created."""
    await asyncio.gather(spin_async())


def gen_spin_in_next() -> Iterator[int]:
    yield 1
    while True:
        pass


async def sleep_value(seconds: float, value: Any) -> Any:
    await asyncio.sleep(seconds)
    return value


def pending_tasks() -> int:
    loop = asyncio.get_event_loop()
    return sum(1 for t in asyncio.all_tasks(loop) if not t.done())


# --- nesting -------------------------------------------------------------------------

def via_helper(n: int) -> int:
    """Ask Erlang for a value that a helper process gets from this very context."""
    return erlang.call("wedge_via_helper", n) * 2


def recurse(n: int) -> Any:
    """A call chain through Erlang back into this context, `n` levels deep."""
    if n == 0:
        return "bottom"
    return erlang.call("wedge_recurse", n)


def set_recursion_limit(n: int) -> None:
    sys.setrecursionlimit(n)


async def block_in_erlang() -> Any:
    """A coroutine that calls an Erlang function synchronously (the loop waits too)."""
    await asyncio.sleep(0)
    return erlang.call("wedge_block")


# --- stopping ------------------------------------------------------------------------

async def sleep_then_mark(key: str) -> None:
    """Sleep for good; when cancelled, record `key` in the shared state (its cleanup ran).
    `key` + "_started" says the coroutine runs."""
    erlang.state_set(key + "_started", True)
    try:
        await asyncio.sleep(600)
    finally:
        erlang.state_set(key, "cleaned up")


async def counting_agen(key: str) -> AsyncIterator[int]:
    """An async generator that records `key` when it is finalized."""
    try:
        n = 0
        while True:
            yield n
            n += 1
    finally:
        erlang.state_set(key, "finalized")


async def hold_agen(key: str) -> int:
    """Start an async generator, take one item and keep it suspended until cancelled."""
    gen = counting_agen(key)
    first = await gen.__anext__()
    erlang.state_set(key + "_started", True)
    await asyncio.sleep(600)
    return first
