"""Python helpers for py_ext_SUITE: small real workloads on stdlib C extensions
(sqlite3, asyncio) that take and return plain data, so the suite checks results.
"""

from __future__ import annotations

import asyncio
import sqlite3


def sqlite_round_trip(rows: list[tuple[int, str, float]]) -> list[tuple[int, str, float]]:
    """Store ``rows`` in a fresh in-memory table and select them back ordered by id."""
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL)")
        connection.executemany("INSERT INTO items VALUES (?, ?, ?)", rows)
        connection.commit()
        return connection.execute("SELECT id, name, price FROM items ORDER BY id").fetchall()
    finally:
        connection.close()


def sqlite_aggregate(prices: list[float]) -> tuple[int, float, float]:
    """``(count, sum, max)`` of ``prices`` computed by SQLite."""
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("CREATE TABLE prices (value REAL)")
        connection.executemany("INSERT INTO prices VALUES (?)", [(p,) for p in prices])
        return connection.execute("SELECT COUNT(*), SUM(value), MAX(value) FROM prices").fetchone()
    finally:
        connection.close()


async def _square_later(n: int) -> int:
    await asyncio.sleep(0)
    return n * n


async def _sum_of_squares(numbers: list[int]) -> int:
    squares = await asyncio.gather(*(_square_later(n) for n in numbers))
    return sum(squares)


def sum_of_squares(numbers: list[int]) -> int:
    """Sum of the squares of ``numbers``, each squared in its own asyncio task."""
    return asyncio.run(_sum_of_squares(numbers))


async def _ordered_events(delays: list[float]) -> list[int]:
    finished: list[int] = []

    async def wait_then_record(index: int, delay: float) -> None:
        await asyncio.sleep(delay)
        finished.append(index)

    await asyncio.gather(*(wait_then_record(i, d) for i, d in enumerate(delays)))
    return finished


def completion_order(delays: list[float]) -> list[int]:
    """Indexes of ``delays`` in the order their asyncio sleeps finished."""
    return asyncio.run(_ordered_events(delays))
