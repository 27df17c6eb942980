"""``erlang.Span`` and ``erlang.trace``: tracing spans recorded for
``py:get_traces/0`` while ``py:enable_tracing/0`` is on."""

from __future__ import annotations

import contextvars
import functools
import inspect
from types import TracebackType
from typing import Any, Callable, Optional, Type, TypeVar, Union, overload

import erlang

F = TypeVar("F", bound=Callable[..., Any])

# The innermost open span of the running code; asyncio tasks copy it, so spans opened
# in a task are children of the span that was open where the task was created.
_current: contextvars.ContextVar[Optional[Any]] = contextvars.ContextVar(
    "erlang_current_span", default=None
)


class Span:
    """A timed, named operation: ``with erlang.Span("fetch", url=url) as span:``.

    Also a decorator (``@erlang.Span("parse")``) for functions and coroutine
    functions, and an async context manager. An exception leaving the span marks
    it failed. While tracing is disabled a span records nothing and costs little.
    """

    def __init__(self, name: str, **attributes: Any) -> None:
        self.name = name
        self.attributes = attributes
        self._handle: Optional[Any] = None
        self._token: Optional[contextvars.Token[Optional[Any]]] = None

    def __enter__(self) -> "Span":
        self._handle = erlang._span_start(self.name, _current.get(), self.attributes)
        if self._handle is not None:
            self._token = _current.set(self._handle)
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool:
        if self._handle is not None:
            # The text becomes the span's end_attrs "exception"; the class name is kept
            # in it because the status itself is only the atom `error`.
            error = None if exc_type is None else f"{exc_type.__name__}: {exc}"
            erlang._span_end(self._handle, error)
            if self._token is not None:
                _current.reset(self._token)
        self._handle = None
        self._token = None
        return False

    async def __aenter__(self) -> "Span":
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool:
        return self.__exit__(exc_type, exc, tb)

    def event(self, name: str, **attributes: Any) -> None:
        """Record a point in time inside the span."""
        if self._handle is not None:
            erlang._span_event(self._handle, name, attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        if self._handle is not None:
            erlang._span_set_attribute(self._handle, key, value)

    def __call__(self, func: F) -> F:
        name, attributes = self.name, self.attributes
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def traced_async(*args: Any, **kwargs: Any) -> Any:
                with Span(name, **attributes):
                    return await func(*args, **kwargs)

            return traced_async  # type: ignore[return-value]

        @functools.wraps(func)
        def traced(*args: Any, **kwargs: Any) -> Any:
            with Span(name, **attributes):
                return func(*args, **kwargs)

        return traced  # type: ignore[return-value]


@overload
def trace(name: Optional[str] = None) -> Callable[[F], F]: ...


@overload
def trace(name: F) -> F: ...


def trace(name: Union[None, str, F] = None) -> Union[F, Callable[[F], F]]:
    """Decorator: run each call of the function in a span.

    ``@erlang.trace()`` names the span ``module.qualname`` of the function;
    ``@erlang.trace("name")`` names it. Works on functions and coroutine
    functions; an exception ends the span with status ``error`` and is re-raised.
    ``@erlang.trace`` without parentheses works too.
    """
    if callable(name):
        return _traced(name, None)
    span_name = name

    def decorate(func: F) -> F:
        return _traced(func, span_name)

    return decorate


def _traced(func: F, name: Optional[str]) -> F:
    if name is None:
        name = f"{func.__module__}.{func.__qualname__}"
    return Span(name)(func)
