"""Python ``logging`` records forwarded to the Erlang ``logger`` (internal;
``py:configure_logging/0,1`` installs it)."""

from __future__ import annotations

import logging
from typing import Optional

import erlang

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR, "critical": logging.CRITICAL}


def _erlang_level(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


class ErlangHandler(logging.Handler):
    """Sends each record to the Erlang logger with its level, logger name,
    module, function and line as metadata."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            erlang._log(_erlang_level(record.levelno), record.name, record.module,
                        record.funcName or "", record.lineno, message)
        except Exception:  # a handler must never raise into the code that logged
            self.handleError(record)


def configure(level: str = "debug", fmt: Optional[str] = None) -> None:
    """Route the root logger to Erlang at `level`, replacing earlier Erlang handlers."""
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {sorted(_LEVELS)}, not {level!r}")
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, ErlangHandler)]:
        root.removeHandler(handler)
    handler = ErlangHandler(level=_LEVELS[level])
    handler.setFormatter(logging.Formatter(fmt or "%(message)s"))
    root.addHandler(handler)
    root.setLevel(_LEVELS[level])
