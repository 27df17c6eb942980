#!/usr/bin/env python3
"""Report cycles in the Rust crate's module graph.

A module depends on another when its source names it through a `crate::` or `super::`
path (in `use` items or inline). Child modules are folded into their parent's file group
only when they live under it (`execute/locals_eval.rs` counts as `execute`), so a cycle
is reported at the level a reader sees in the module map of `docs/runtime.md`.

Usage: scripts/module_cycles.py [SRC_DIR] [--split DIR] [--allow A->B ...]
Exits 1 when a cycle remains that does not pass through an allowed edge.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# Directories whose children are shown as nodes of their own (`--split actors`); by
# default a directory is one node, as in the module map of `docs/runtime.md`.
SPLIT_DIRS: set[str] = set()


def module_of(src: Path, path: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    if not parts:
        return "crate"
    if parts[0] in SPLIT_DIRS:
        return "::".join(parts[:2])
    return parts[0]


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def references(module: str, text: str, known: set[str]) -> set[str]:
    found: set[str] = set()
    # `use crate::{a, b::c}` and `crate::a::b` paths.
    for group in re.findall(r"crate::\{([^}]*)\}", text):
        for item in group.split(","):
            found.add(item.strip().split("::")[0])
    for first, second in re.findall(r"crate::(\w+)(?:::(\w+))?", text):
        found.add(f"{first}::{second}" if f"{first}::{second}" in known else first)
    # `super::x` from a child module of a split directory names a sibling.
    if "::" in module:
        parent = module.split("::")[0]
        for group in re.findall(r"super::\{([^}]*)\}", text):
            for item in group.split(","):
                name = item.strip().split("::")[0]
                found.add(f"{parent}::{name}" if f"{parent}::{name}" in known else parent)
        for name in re.findall(r"super::(\w+)", text):
            found.add(f"{parent}::{name}" if f"{parent}::{name}" in known else parent)
    return {f for f in found if f in known and f != module}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main(argv: list[str]) -> int:
    src = Path(argv[0]) if argv and not argv[0].startswith("--") else Path("src")
    if "--split" in argv:
        SPLIT_DIRS.add(argv[argv.index("--split") + 1])
    allowed = {tuple(a.split("->")) for a in argv[argv.index("--allow") + 1:] if "->" in a} if "--allow" in argv else set()
    files = sorted(src.rglob("*.rs"))
    known = {module_of(src, f) for f in files}
    known |= {m.split("::")[0] for m in known if "::" in m}
    graph: dict[str, set[str]] = {m: set() for m in known}
    for f in files:
        module = module_of(src, f)
        text = strip_comments(f.read_text())
        refs = references(module, text, known)
        # A split directory's `mod.rs` names its children without a prefix
        # (`pub use request::Msg`); `pub mod x;` alone declares, it does not depend.
        children = [k for k in known if k.startswith(module + "::")]
        for child in children:
            name = child.split("::")[1]
            if re.search(rf"(?<![:\w]){name}::", text):
                refs.add(child)
        graph[module] |= refs
    kept = {m: {n for n in deps if (m, n) not in allowed} for m, deps in graph.items()}
    for module in sorted(graph):
        print(f"{module} -> {', '.join(sorted(graph[module])) or '(leaf)'}")
    remaining = cycles(kept)
    for component in remaining:
        print("cycle:", " <-> ".join(component))
    if allowed:
        print("allowed edges:", ", ".join(f"{a}->{b}" for a, b in sorted(allowed)))
    print("no cycles" if not remaining else f"{len(remaining)} cycle(s)")
    return 1 if remaining else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
