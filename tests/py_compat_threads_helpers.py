"""Python helpers for py_compat_threads_SUITE: the ``erlang`` module used from
threads that Python code starts itself, and ``erlang.async_call`` awaited in
asyncio loops that the user's code runs."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import erlang

_late_go = threading.Event()


def _in_thread(work: Callable[[], Any]) -> Any:
    """Run ``work`` in a thread of its own, join it, and answer its result."""
    out: list[Any] = []
    worker = threading.Thread(target=lambda: out.append(work()))
    worker.start()
    worker.join()
    return out[0]


def thread_join(x: int) -> int:
    """One call from a ``threading.Thread``; the result is used further."""
    return _in_thread(lambda: erlang.call("times_ten", x)) + 1


def pool_map(threads: int, calls: int) -> list[list[int]]:
    """``threads`` workers start together, each making ``calls`` calls."""
    start = threading.Barrier(threads)

    def work(i: int) -> list[int]:
        start.wait()
        return [erlang.call("add", 1000 * i, j) for j in range(calls)]

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(work, range(threads)))


def chained_in_thread() -> int:
    """Three calls in one expression (attribute form), then more Python."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(
            lambda: erlang.times_ten(erlang.times_ten(erlang.times_ten(1)))
        )
        return future.result() + 1


def error_in_one_thread() -> list[Any]:
    """Thread 2 calls a failing function; the others must not notice."""

    def work(i: int) -> Any:
        try:
            if i == 2:
                return erlang.call("fail", i)
            return ("ok", erlang.call("times_ten", i))
        except erlang.ErlangError as exc:
            return ("error", exc.reason, str(exc))

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(work, range(4)))


def start_late_caller(pid: erlang.Pid) -> None:
    """Start a thread that calls Erlang after this request has returned."""

    def late() -> None:
        _late_go.wait(10)
        runner = erlang.call("whoami")
        erlang.send(pid, ("late", runner, erlang.call("times_ten", 4)))

    _late_go.clear()
    threading.Thread(target=late, daemon=True).start()


def release_late_caller() -> None:
    _late_go.set()


def call_after_stop(pid: erlang.Pid) -> None:
    """A thread that calls once the application has stopped, and reports."""

    def after() -> None:
        deadline = time.monotonic() + 10
        while erlang.whereis("py_callbacks") is not None:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        try:
            erlang.call("times_ten", 1)
            outcome: tuple[str, str] = ("called", "")
        except Exception as exc:
            outcome = (type(exc).__name__, str(exc))
        erlang.send(pid, outcome)

    threading.Thread(target=after, daemon=True).start()


def call_blocking_in_thread() -> tuple[str, str]:
    """Call a function whose runner will be killed while this thread waits."""

    def work() -> tuple[str, str]:
        try:
            erlang.call("block")
            return ("returned", "")
        except erlang.ProcessError as exc:
            return (type(exc).__name__, str(exc))

    return _in_thread(work)


def other_functions_in_thread(pid: erlang.Pid) -> dict[str, Any]:
    """send, whereis, state, SharedDict and Span from a thread."""

    def work() -> dict[str, Any]:
        erlang.send(pid, ("from_thread", 1))
        erlang.state_set("thread_key", 10)
        shared = erlang.SharedDict()
        shared["k"] = "v"
        with erlang.Span("in_thread", n=1):
            pass
        return {
            "whereis": erlang.whereis("py_callbacks"),
            "incr": erlang.state_incr("thread_key", 5),
            "get": erlang.state_get("thread_key"),
            "shared": shared["k"],
        }

    return _in_thread(work)


async def _gather_calls(n: int) -> list[int]:
    return list(
        await asyncio.gather(*(erlang.async_call("times_ten", i) for i in range(n)))
    )


async def _async_error() -> tuple[str, Any]:
    try:
        await erlang.async_call("fail", 7)
    except erlang.ErlangError as exc:
        return ("error", exc.reason)
    return ("no error", None)


def async_in_asyncio_run(n: int) -> list[Any]:
    """``asyncio.run`` inside a synchronous request, on the context's thread."""
    return [asyncio.run(_gather_calls(n)), asyncio.run(_async_error())]


def async_in_thread_loop(n: int) -> list[Any]:
    """A loop of its own in a Python thread."""
    return _in_thread(lambda: [asyncio.run(_gather_calls(n)), asyncio.run(_async_error())])


def async_without_loop_in_thread() -> tuple[str, str]:
    """``erlang.async_call`` with no running loop, in a thread."""

    def work() -> tuple[str, str]:
        try:
            erlang.async_call("times_ten", 1)
            return ("returned", "")
        except RuntimeError as exc:
            return (type(exc).__name__, str(exc))

    return _in_thread(work)


def many_async_in_asyncio_run(n: int) -> int:
    """``n`` calls in flight at once in a loop of the request's own."""
    return sum(asyncio.run(_gather_calls(n)))


async def _blocked_then_timeout() -> str:
    try:
        await asyncio.wait_for(erlang.async_call("block"), 0.2)
    except asyncio.TimeoutError:
        return "timeout"
    return "returned"


async def _blocked_runner_killed() -> tuple[str, str]:
    try:
        await erlang.async_call("block")
    except erlang.ProcessError as exc:
        return (type(exc).__name__, str(exc))
    return ("returned", "")


def async_cancelled_in_thread_loop() -> str:
    """A future given up by ``wait_for`` in a thread's loop; its answer comes later."""
    return _in_thread(lambda: asyncio.run(_blocked_then_timeout()))


def async_runner_killed_in_thread_loop() -> tuple[str, str]:
    return _in_thread(lambda: asyncio.run(_blocked_runner_killed()))
