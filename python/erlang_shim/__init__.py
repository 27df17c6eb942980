"""Pure-Python half of the ``erlang`` module that Python code running under
erlang_python imports.

The native half (the functions that reach the VM: ``call``, ``send``, the output
hook...) is a plain module the native core builds for each interpreter and puts in
``sys.modules`` before importing this package; :func:`install` adds the classes
(``Pid``, ``Ref``, ``SharedDict``, the exceptions, in ``_types``), what is easier to
write in Python, and wires ``sys.stdout``/``sys.stderr`` to the VM.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from typing import Any, Awaitable, Dict, Iterable, Optional, Union

import erlang
from erlang_shim import _types

__all__ = ["Atom", "ErlangFunction", "atom", "install", "sleep"]


class Atom(str):
    """A ``str`` that crosses to Erlang as an atom instead of a binary."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"erlang.Atom({str.__repr__(self)})"


def atom(name: str) -> Atom:
    """Return ``name`` as an :class:`Atom`.

    The VM creates a bounded number of new atoms from Python data (app env
    ``atom_limit``); past it, new names arrive in Erlang as binaries.
    """
    if not isinstance(name, str):
        raise TypeError(f"atom name must be str, not {type(name).__name__}")
    return Atom(name)


class ErlangFunction:
    """A callable for the Erlang function registered under ``name``.

    ``erlang.name(*args)`` and ``from erlang import name`` give one of these;
    calling it is ``erlang.call(name, *args)``.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any) -> Any:
        return erlang.call(self.name, *args)

    def __repr__(self) -> str:
        return f"<Erlang function {self.name!r}>"


def _resolve_future(
    future: "asyncio.Future[Any]", error: Optional[BaseException], value: Any
) -> None:
    """Complete an ``erlang.async_call`` future in its own loop's thread.

    Scheduled with ``call_soon_threadsafe`` when the answer of a call made
    in a loop other than the context's arrives; a future cancelled meanwhile
    is left alone.
    """
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _module_getattr(name: str) -> ErlangFunction:
    """``erlang.<name>`` for functions registered with ``py:register_function``."""
    if not name.startswith("__") and erlang._is_registered(name):
        return ErlangFunction(name)
    raise AttributeError(f"module 'erlang' has no attribute {name!r}")


def sleep(seconds: float) -> Union[None, Awaitable[None]]:
    """Wait ``seconds``.

    Inside a coroutine running on an event loop this answers an awaitable
    (``await erlang.sleep(0.1)``) and blocks nothing; in synchronous code it
    waits at once, without holding the GIL, and answers ``None``.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        erlang._sleep(seconds)
        return None
    return asyncio.sleep(seconds)


class ErlangOutput(io.TextIOBase):
    """A text stream whose writes reach the Erlang side.

    Output of a request goes to the group leader of the Erlang process that
    made it; output with no such process goes to the VM's standard output.
    The Erlang side forwards whole lines: an unfinished line goes out when
    its request ends, on ``flush()``, or shortly after it was written.
    """

    def __init__(self, stream: int, name: str) -> None:
        super().__init__()
        self._stream = stream
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def encoding(self) -> str:
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if text:
            erlang._write(self._stream, text)
        return len(text)

    def flush(self) -> None:
        # Lines are held on the Erlang side until they end; this sends an unfinished
        # one (a prompt, a progress dot) now.
        erlang._flush()


def _activate_paths(python_path: Iterable[str], venv: Optional[str]) -> None:
    front = list(python_path)
    if venv:
        # The configured venv is the one Python runs in, so venv_info reports it, as
        # 2.3.1 reports the venv it runs in; deactivate_venv undoes it like any other.
        from erlang_shim._admin import activate_configured_venv

        activate_configured_venv(os.path.abspath(venv), front)
    else:
        sys.path[:] = front + [p for p in sys.path if p not in front]


MODULE_DOC = """Reach the Erlang VM from Python code run by erlang_python.

Calling Erlang
    call(name, *args)       run the Erlang function registered as ``name``
                            (``py:register_function/2,3``) and answer its result
    <name>(*args)           the same, as ``erlang.name(...)`` or
                            ``from erlang import name``
    ErlangError             raised when the Erlang function fails; ``.reason``
                            holds the Erlang reason

Messages and processes
    send(pid, term)         send a message; ProcessError if the process is dead
    whereis(name)           the pid registered under ``name``, or None
    Pid, Ref                Erlang pids and references (hashable, comparable)
    Atom, atom(name)        a str that crosses to Erlang as an atom

Tracing (``py:enable_tracing/0``, ``py:get_traces/0``)
    Span(name, **attrs)     context manager and decorator; event(), set_attribute()
    trace(name=None)        decorator: each call runs in a span named ``name`` or
                            ``module.qualname``

Waiting
    sleep(seconds)          awaitable inside coroutines; in synchronous code a
                            wait that does not hold the GIL

Shared state (also seen by ``py:state_*`` in Erlang)
    state_get(key, default=None), state_set(key, value), state_delete(key),
    state_keys(), state_clear(), state_incr(key, n=1), state_decr(key, n=1)
    SharedDict              a mapping shared with Erlang (``py:shared_dict_new/0``)

Values cross as in the conversion tables of the erlang_python docs: str is an
Erlang binary, int any size, None is ``none``, dict a map, and so on.
"""


def _no_fork(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError(
        "os.fork() would copy the whole Erlang VM into the child process; "
        "start programs with subprocess, or use multiprocessing's 'spawn' context"
    )


def _guard_fork() -> None:
    """Python code must not copy the VM: fork and forkpty raise instead."""
    for name in ("fork", "forkpty"):
        if hasattr(os, name):
            setattr(os, name, _no_fork)


def install(python_path: Iterable[str] = (), venv: Optional[str] = None) -> None:
    """Complete the ``erlang`` module and route standard output to the VM."""
    from erlang_shim._span import Span, trace

    erlang.__doc__ = MODULE_DOC
    for name in _types.__all__:
        setattr(erlang, name, getattr(_types, name))
    erlang.Span = Span
    erlang.trace = trace
    erlang.Atom = Atom
    erlang.atom = atom
    erlang.ErlangFunction = ErlangFunction
    erlang.sleep = sleep
    erlang.__getattr__ = _module_getattr
    _guard_fork()
    sys.stdout = ErlangOutput(1, "<erlang stdout>")
    sys.stderr = ErlangOutput(2, "<erlang stderr>")
    _activate_paths(python_path, venv)


def _kit_types() -> Dict[str, type]:
    """The classes the native core converts and raises with, by name (read once per
    interpreter, when it is set up, into the interpreter's own registry)."""
    kit: Dict[str, type] = {name: getattr(_types, name) for name in _types.__all__}
    kit["Atom"] = Atom
    return kit
