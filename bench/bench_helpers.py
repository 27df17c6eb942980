"""Python helpers for bench/run_bench.escript (imported through the `python_path` app env).

Everything here is deliberately tiny: the benchmarks measure the Erlang <-> Python
bridge, not Python.
"""

import asyncio
import itertools
import operator
import time

_MIB = b"x" * 1048576


def mib():
    """A cached 1 MiB bytes object (the same object every call)."""
    return _MIB


def spin(seconds):
    """Hold the GIL-running thread busy in pure Python for `seconds`; answers the
    number of loop iterations (always > 0)."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


def add_loop(n):
    """Floor: nanoseconds per operator.add(1, 2) called in a Python loop, n times."""
    add = operator.add
    t0 = time.perf_counter_ns()
    for _ in range(n):
        add(1, 2)
    t1 = time.perf_counter_ns()
    return (t1 - t0) / n


tick = itertools.count().__next__


def reset_ticks():
    """For the cast scenario: each cast calls `tick` (a C method, as cheap as
    operator.add); a final call of `tick` answers how many ran before it."""
    global tick
    tick = itertools.count().__next__


def gather_floor(n, ms):
    """Floor: milliseconds of wall time for asyncio.gather of n coroutines that each
    sleep `ms` milliseconds, on a fresh plain asyncio loop (asyncio.run)."""
    async def main():
        t0 = time.perf_counter()
        results = await asyncio.gather(*[async_sleep(ms) for _ in range(n)])
        elapsed = time.perf_counter() - t0
        assert results == [ms] * n
        return elapsed

    return asyncio.run(main()) * 1000


def count_gen(n):
    """Generator for py:stream_start/3: yields 0, 1, ..., n - 1."""
    return (i for i in range(n))


async def async_sleep(ms):
    """Coroutine for py:async_gather/1: sleeps `ms` milliseconds, answers `ms`."""
    await asyncio.sleep(ms / 1000)
    return ms


def callback_loop(name, n):
    """Python -> Erlang -> Python: calls the Erlang function registered as `name`
    (which adds its two arguments) n times and checks every answer; answers n."""
    import erlang
    for i in range(n):
        r = erlang.call(name, i, 1)
        if r != i + 1:
            raise AssertionError(f"erlang.call({name!r}, {i}, 1) answered {r!r}")
    return n


def trim_heap() -> bool:
    """Give freed heap memory back to the OS (glibc `malloc_trim`), so that the soak's
    RSS readings show memory in use, not memory the allocator keeps for reuse (the
    library raises glibc's trim threshold to 64 MiB). False where there is no glibc."""
    import ctypes

    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


_MATRIX = None


def float_matrix():
    """A cached 1000x1000 float64 numpy array (0.0, 1.0, ... row by row); numpy is
    imported on first use only."""
    global _MATRIX
    if _MATRIX is None:
        import numpy

        _MATRIX = numpy.arange(1_000_000, dtype=numpy.float64).reshape(1000, 1000)
    return _MATRIX
