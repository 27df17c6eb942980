"""Python helpers for py_erlang_SUITE: code that calls back into Erlang."""

from __future__ import annotations

from typing import Any

import erlang

side_effects: list[Any] = []


def call_back(name: str, *args: Any) -> Any:
    """Call the Erlang function `name` and answer what it answered."""
    return erlang.call(name, *args)


def echo_through_erlang(value: Any) -> Any:
    """Send `value` to Erlang's `echo` and back."""
    return erlang.echo(value)


def effect_then_call(tag: str) -> Any:
    """Record a side effect, then call Erlang: the effect must happen exactly once."""
    side_effects.append(tag)
    return erlang.call("after_effect", tag)


def effects() -> list[Any]:
    return list(side_effects)


def catch_erlang_error(name: str) -> tuple[str, Any, str]:
    try:
        erlang.call(name)
    except erlang.ErlangError as exc:
        return ("caught", exc.reason, str(exc))
    return ("no error", None, "")


def is_subclass_of_exception() -> bool:
    return issubclass(erlang.ErlangError, Exception)


def wait_for_erlang() -> Any:
    """Call the Erlang `hang_here`; record that the frame unwound."""
    try:
        return erlang.hang_here()
    finally:
        side_effects.append("unwound")


async def sync_call_in_coroutine(x: int) -> Any:
    """A blocking erlang.call from inside a coroutine (it holds the loop meanwhile)."""
    import asyncio

    await asyncio.sleep(0)
    return erlang.call("times_ten", x)


def send_from_thread(pid: Any, value: Any) -> None:
    """erlang.send from a Python thread of its own."""
    import threading

    worker = threading.Thread(target=erlang.send, args=(pid, value))
    worker.start()
    worker.join()


def call_from_thread() -> str:
    """erlang.call from a thread of its own works (the dispatcher runs the function)."""
    import threading

    outcome: list[str] = []

    def run() -> None:
        try:
            erlang.call("times_ten", 1)
            outcome.append("called")
        except RuntimeError as exc:
            outcome.append(type(exc).__name__)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    return outcome[0]


def generate_via_erlang(n: int) -> Any:
    """A generator whose items come from Erlang."""
    for i in range(n):
        yield erlang.call("times_ten", i)


async def async_call_back(name: str) -> Any:
    """``await erlang.async_call(name)`` on the context's loop; the failure as a pair."""
    try:
        return await erlang.async_call(name)
    except Exception as e:  # noqa: BLE001 - the test reads what it was
        return [type(e).__name__, str(e)]


def call_back_caught(name: str) -> Any:
    """``erlang.call(name)``; the failure as a pair."""
    try:
        return erlang.call(name)
    except Exception as e:  # noqa: BLE001 - the test reads what it was
        return [type(e).__name__, str(e)]
