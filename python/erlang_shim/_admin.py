"""Interpreter-wide services behind ``py:gc/0,1``, ``py:memory_stats/0``,
``py:tracemalloc_*``, ``py:reload/1``, ``py:dup_fd/1`` and the venv functions
(internal)."""

from __future__ import annotations

import gc as _gc
import importlib
import os
import site
import sys
from typing import Any, Dict, List, Optional

# `tracemalloc` is imported where it is used: its C half refuses to load in a
# sub-interpreter with its own GIL, and the shim must load there.

_saved_path: Optional[List[str]] = None
_active_venv: Optional[Dict[str, str]] = None


def collect(generation: int = 2) -> int:
    return _gc.collect(generation)


def memory_stats() -> Dict[str, Any]:
    stats: Dict[str, Any] = {
        "gc_stats": _gc.get_stats(),
        "gc_count": _gc.get_count(),
        "gc_threshold": _gc.get_threshold(),
    }
    import tracemalloc
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        stats["traced_memory_current"] = current
        stats["traced_memory_peak"] = peak
    return stats


def tracemalloc_start(frames: int = 1) -> None:
    import tracemalloc
    tracemalloc.start(frames)


def tracemalloc_stop() -> None:
    import tracemalloc
    tracemalloc.stop()


def reload(module: str) -> bool:
    """Reload `module` if it is imported; answer whether it was."""
    loaded = sys.modules.get(module)
    if loaded is None:
        return False
    importlib.reload(loaded)
    return True


def dup_fd(fd: int) -> int:
    return os.dup(fd)


def _site_packages(venv: str) -> str:
    lib = os.path.join(venv, "lib")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [os.path.join(lib, version, "site-packages")]
    if os.path.isdir(lib):
        candidates += [os.path.join(lib, d, "site-packages") for d in sorted(os.listdir(lib))]
    for candidate in candidates:
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(f"no site-packages under venv {venv!r}")


def put_venv_first(venv: str, base: List[str]) -> str:
    """Make sys.path the venv's site-packages (and what its .pth files add)
    followed by `base`; answer the site-packages directory."""
    packages = _site_packages(venv)
    sys.path[:] = base
    site.addsitedir(packages)
    added = [p for p in sys.path if p not in base]
    sys.path[:] = added + base
    return packages


def _remember(venv: str, packages: str, base: List[str]) -> None:
    global _saved_path, _active_venv
    _saved_path = base
    _active_venv = {"venv_path": venv, "site_packages": packages}


def activate_venv(venv: str) -> None:
    """Put the venv's site-packages (and what its .pth files add) first on sys.path."""
    venv = os.path.abspath(venv)
    base = list(_saved_path) if _saved_path is not None else list(sys.path)
    packages = put_venv_first(venv, base)
    _remember(venv, packages, base)


def activate_configured_venv(venv: str, front: List[str]) -> None:
    """At start-up: the app env ``python_path`` entries first, then the venv's
    packages, then the interpreter's own path. ``deactivate_venv`` keeps ``front``."""
    base = front + [p for p in sys.path if p not in front]
    packages = put_venv_first(venv, base)
    sys.path[:] = front + [p for p in sys.path if p not in front]
    _remember(venv, packages, base)


def deactivate_venv() -> None:
    global _saved_path, _active_venv
    if _saved_path is not None:
        sys.path[:] = _saved_path
    _saved_path = None
    _active_venv = None


def venv_info() -> Dict[str, Any]:
    """2.3.1's shape: ``{"active": False}``, or ``active``, ``venv_path``,
    ``site_packages`` and the current ``sys_path``."""
    if _active_venv is None:
        return {"active": False}
    return {"active": True, **_active_venv, "sys_path": list(sys.path)}
