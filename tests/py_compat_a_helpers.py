"""Python helpers for py_compat_a_SUITE: SharedDict from Python, the
``erlang.trace`` decorator and ``erlang.whereis``."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, List, Tuple

import erlang


def destroyed_dict_errors(d: Any) -> List[Tuple[str, str, str]]:
    """Each mapping operation on `d`, with the class and text of what it raised."""
    operations: List[Tuple[str, Callable[[], Any]]] = [
        ("getitem", lambda: d["a"]),
        ("setitem", lambda: d.__setitem__("a", 1)),
        ("delitem", lambda: d.__delitem__("a")),
        ("contains", lambda: "a" in d),
        ("len", lambda: len(d)),
        ("iter", lambda: list(d)),
        ("keys", lambda: d.keys()),
        ("values", lambda: d.values()),
        ("items", lambda: d.items()),
        ("get", lambda: d.get("a")),
    ]
    raised = []
    for name, operation in operations:
        try:
            operation()
        except Exception as exc:  # noqa: BLE001 - the class is what is reported
            raised.append((name, type(exc).__name__, str(exc)))
        else:
            raised.append((name, "nothing", ""))
    return raised


@erlang.trace()
def default_name(x: int) -> int:
    with erlang.Span("inside"):
        return x + 1


@erlang.trace("custom.name")
def named(x: int) -> int:
    return x * 10


@erlang.trace
def bare(x: int) -> int:
    return -x


@erlang.trace()
def fails(text: str) -> None:
    raise ValueError(text)


@erlang.trace()
async def coroutine(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


class Service:
    @erlang.trace()
    def handle(self, x: int) -> int:
        return x + 100


def call_method(x: int) -> int:
    return Service().handle(x)


def run_traced() -> List[Any]:
    """Every traced function once, in order; the failure's exception is kept."""
    results: List[Any] = [default_name(1), named(2), bare(3), call_method(4)]
    try:
        fails("bad input")
    except ValueError as exc:
        results.append(str(exc))
    return results


def whereis_all(name: str) -> List[Any]:
    """``erlang.whereis`` given `name` as str, bytes and erlang.Atom."""
    return [erlang.whereis(name), erlang.whereis(name.encode("utf-8")),
            erlang.whereis(erlang.atom(name))]
