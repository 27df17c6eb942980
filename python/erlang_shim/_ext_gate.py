"""Extension modules in a sub-interpreter context.

An extension module that uses single-phase initialisation (numpy, and many
others) keeps its state in C globals shared by every interpreter. CPython
refuses such a module in an isolated sub-interpreter, but only after its init
function has run there, and two interpreters running that function at the
same time can corrupt memory. The gate below stops the import before that:
it asks the main interpreter, which may load any module, whether the
extension is multi-phase (PEP 489) and lets only those through.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Callable, Optional, Sequence

# probe(name, origin) -> None when the extension supports sub-interpreters, else the
# text of the ImportError to raise.
Probe = Callable[[str, str], Optional[str]]


class ExtensionGate(importlib.abc.MetaPathFinder):
    """First finder of ``sys.meta_path``: finds a module with the others, and
    checks extension modules with ``probe`` before any of them loads."""

    def __init__(self, probe: Probe) -> None:
        self._probe = probe
        self._checked: dict[str, Optional[str]] = {}

    def find_spec(
        self,
        fullname: str,
        path: Optional[Sequence[str]] = None,
        target: Optional[ModuleType] = None,
    ) -> Optional[importlib.machinery.ModuleSpec]:
        spec = None
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        if spec is None or not isinstance(
            spec.loader, importlib.machinery.ExtensionFileLoader
        ):
            return spec
        origin = spec.origin or ""
        key = f"{fullname}\0{origin}"
        if key not in self._checked:
            self._checked[key] = self._probe(fullname, origin)
        refusal = self._checked[key]
        if refusal is not None:
            raise ImportError(refusal, name=fullname, path=origin)
        return spec


def install(probe: Probe) -> None:
    """Put the gate in front of this interpreter's finders (once)."""
    if not any(isinstance(f, ExtensionGate) for f in sys.meta_path):
        sys.meta_path.insert(0, ExtensionGate(probe))
