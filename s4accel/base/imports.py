"""The project's import graph, read from the source with :mod:`ast` (nothing is imported).

Used by the simulator runner (its build key covers every project module an elaborated design
imports) and by the test of the import direction (``tests/test_imports.py``).
"""

from __future__ import annotations

import ast
import importlib.util
from functools import cache
from pathlib import Path

__all__ = ["LAYERS", "layer_of", "module_file", "module_imports", "closure"]

#: The layers, bottom first: a module may import only from its own layer or the ones below.
#: ``s4accel.base`` holds the shared definitions; ``s4accel.cli`` and ``s4accel.__main__`` sit
#: on top of everything.
LAYERS = ("s4accel.base", "s4accel.hw", "s4accel.sw", "s4accel.sim", "s4accel.cli")


def layer_of(module: str) -> int | None:
    """Index of ``module``'s layer in :data:`LAYERS` (``s4accel`` itself and
    ``s4accel.__main__`` count as base and CLI); None outside the project."""
    if module == "s4accel":
        return 0
    if module == "s4accel.__main__":
        return LAYERS.index("s4accel.cli")
    for i, root in enumerate(LAYERS):
        if module == root or module.startswith(root + "."):
            return i
    return None


@cache
def module_file(module: str) -> Path | None:
    """The source file of a project module, or None if there is no such module."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def module_imports(module: str, path: Path | None = None) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every import in ``module``'s source, at any depth
    (function-level imports too), relative ones resolved; ``from X import name`` yields
    ``X.name`` where that is a module, else ``X``."""
    path = path or module_file(module)
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[:len(parts) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for a in node.names:
                sub = f"{target}.{a.name}"
                is_module = sub.startswith("s4accel") and module_file(sub) is not None
                out.append((node.lineno, sub if is_module else target))
    return out


def closure(module: str) -> list[str]:
    """``module`` and every project module it imports, directly or not, sorted."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen or module_file(name) is None:
            continue
        seen.add(name)
        todo += [m for _, m in module_imports(name) if m.startswith("s4accel")]
        # a package's __init__ runs before any of its modules
        parent = name.rpartition(".")[0]
        if parent:
            todo.append(parent)
    return sorted(seen)
