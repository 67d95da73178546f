"""The package files a workflow script runs: the transitive closure of its ``avsep`` imports.

Snakemake reruns a job when its script changes, not when a module that script imports changes. Each rule
therefore lists, as inputs, the files this module computes from the import graph (read as text, nothing is
imported): the script's own ``avsep`` imports, theirs, and so on, with every package ``__init__.py`` on the
way (Python runs those too). Imports inside functions count: they are code the job may run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import cache
from pathlib import Path

PACKAGE = "avsep"


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _package_of(root: Path, file: Path) -> str:
    parts = list(file.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1])  # a module's package, and an __init__.py's own package


def _imports(root: Path, file: Path) -> frozenset[str]:
    """The ``avsep`` modules ``file`` imports (``from pkg import mod`` counts ``pkg.mod`` when it is a module)."""
    st = file.stat()
    return _parsed_imports(root, file, st.st_mtime_ns, st.st_size)


@cache
def _parsed_imports(root: Path, file: Path, mtime_ns: int, size: int) -> frozenset[str]:
    """:func:`_imports` of one version of ``file`` (its mtime and size key the cache: a workflow parses each
    module once, not once per rule)."""
    tree = ast.parse(file.read_text(), filename=str(file))
    in_package = file.resolve().is_relative_to((root / PACKAGE).resolve())
    pkg = _package_of(root, file) if in_package else ""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names if _module_file(root, f"{mod}.{a.name}"))
    return frozenset(m for m in found if m == PACKAGE or m.startswith(PACKAGE + "."))


@cache
def _closure(root: Path, start: Path) -> tuple[Path, ...]:
    seen: set[Path] = set()
    todo = [start]
    while todo:
        f = todo.pop()
        for mod in _imports(root, f):
            parts = mod.split(".")
            for i in range(1, len(parts) + 1):  # every package on the way runs its __init__
                mf = _module_file(root, ".".join(parts[:i]))
                if mf is None:
                    raise ImportError(f"{f}: imports {mod}, which is not a module of {root / PACKAGE}")
                if mf not in seen:
                    seen.add(mf)
                    todo.append(mf)
    return tuple(sorted(seen))


def code_files(scripts: Iterable[str | Path], root: str | Path = ".") -> list[str]:
    """The ``avsep`` files the given scripts (or package modules) import, transitively, relative to ``root``."""
    r = Path(root)
    files: set[Path] = set()
    for s in scripts:
        start = r / s
        files.update(_closure(r, start))
        if start.resolve().is_relative_to((r / PACKAGE).resolve()):
            files.add(start)
    return sorted(str(f.relative_to(r)) for f in files)
