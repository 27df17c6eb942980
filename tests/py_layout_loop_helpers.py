"""Python helpers for py_layout_loop_SUITE: code that re-enters a context (calls Erlang,
starts tasks) from the places where the context is busy with its own asyncio
bookkeeping: the check for pending timers, a task's done-callback, a finalizer that runs
when a stream ends.

What they saw is recorded in ``EVENTS`` and read back with ``events()``.
"""

from __future__ import annotations

import asyncio
from typing import Any, List

import erlang

EVENTS: List[str] = []


def events() -> List[str]:
    return list(EVENTS)


def reset() -> None:
    EVENTS.clear()


async def add_later(a: int, b: int) -> int:
    await asyncio.sleep(0.01)
    return a + b


# ----------------------------------------------------------------- the timer-heap hook


class _ReenteringHeap(list):
    """The loop's timer heap, whose length the context reads between mailbox messages to
    know whether the loop has work. The first read calls Erlang, which starts an async
    request on this same context while the context is in the middle of that check."""

    armed = True

    def __len__(self) -> int:
        if _ReenteringHeap.armed:
            _ReenteringHeap.armed = False
            try:
                EVENTS.append("hook:" + str(erlang.call("layout_start_async")))
            except BaseException as e:  # noqa: BLE001 - recorded for the test to show
                EVENTS.append("hook_error:" + type(e).__name__ + ":" + str(e))
        return super().__len__()


def arm_timer_heap_hook() -> bool:
    """Replace the running context's timer heap with the re-entering one."""
    loop = asyncio.get_event_loop()
    loop._scheduled = _ReenteringHeap(loop._scheduled)
    return True


# ----------------------------------------------------------------- done-callbacks


async def with_reentering_done_callback(tag: str) -> str:
    """A task whose done-callback calls Erlang and starts another task."""

    async def later() -> None:
        await asyncio.sleep(0)
        EVENTS.append("later:" + tag)

    def done(_task: asyncio.Future) -> None:
        EVENTS.append("callback:" + tag + ":" + str(erlang.call("layout_echo", tag)))
        asyncio.ensure_future(later())

    asyncio.current_task().add_done_callback(done)
    await asyncio.sleep(0)
    return tag


# ----------------------------------------------------------------- finalizers


class _CallsErlangWhenFreed:
    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __del__(self) -> None:
        try:
            answer = erlang.call("layout_echo", self.tag)
            future = erlang.async_call("layout_echo", self.tag)
            future.cancel()
            EVENTS.append("del:" + self.tag + ":" + str(answer))
        except BaseException as e:  # noqa: BLE001 - recorded for the test to show
            EVENTS.append("del_error:" + type(e).__name__ + ":" + str(e))


def items_with_finalizer(tag: str, n: int):
    """A generator holding an object whose finalizer calls Erlang: it runs when the
    generator's frame is freed (it ends, or the stream is cancelled and it is closed)."""
    keep = _CallsErlangWhenFreed(tag)  # noqa: F841 - freed with the generator's frame
    for i in range(n):
        yield i


async def async_items_with_finalizer(tag: str, n: int):
    keep = _CallsErlangWhenFreed(tag)  # noqa: F841 - freed with the generator's frame
    for i in range(n):
        await asyncio.sleep(0)
        yield i
