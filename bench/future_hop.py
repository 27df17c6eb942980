"""What completing an asyncio future costs when the loop's own thread does it (what a
context does with the answer of an ``erlang.async_call``) and when another thread hands
it over with ``call_soon_threadsafe`` (how ``pyo3-async-runtimes`` completes a Python
future from a Rust runtime's thread). Plain CPython, no erlang_python involved; see
docs/runtime.md, "Crates left out".

Usage: python3 bench/future_hop.py [resolutions per run]
"""

from __future__ import annotations

import asyncio
import queue
import statistics
import sys
import threading
import time
from typing import Awaitable, Callable, Optional, Tuple

ROUNDS = 5


async def in_loop(n: int) -> float:
    """Seconds per future completed by a callback on the loop's own thread."""
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    for i in range(n):
        future = loop.create_future()
        loop.call_soon(future.set_result, i)
        await future
    return (time.perf_counter() - start) / n


async def from_other_thread(n: int) -> float:
    """Seconds per future completed by another thread through call_soon_threadsafe."""
    loop = asyncio.get_running_loop()
    requests: queue.SimpleQueue[Optional[Tuple[asyncio.Future[int], int]]] = queue.SimpleQueue()

    def complete() -> None:
        while (item := requests.get()) is not None:
            future, value = item
            loop.call_soon_threadsafe(future.set_result, value)

    worker = threading.Thread(target=complete)
    worker.start()
    start = time.perf_counter()
    for i in range(n):
        future: asyncio.Future[int] = loop.create_future()
        requests.put((future, i))
        await future
    per_future = (time.perf_counter() - start) / n
    requests.put(None)
    worker.join()
    return per_future


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    cases: list[Tuple[str, Callable[[int], Awaitable[float]]]] = [
        ("in the loop's thread", in_loop),
        ("call_soon_threadsafe from another thread", from_other_thread),
    ]
    for name, case in cases:
        runs = [asyncio.run(case(n)) * 1e6 for _ in range(ROUNDS)]  # type: ignore[arg-type]
        spread = ", ".join(f"{r:.2f}" for r in runs)
        print(f"{name}: median {statistics.median(runs):.2f} µs per future ({spread})")


if __name__ == "__main__":
    main()
