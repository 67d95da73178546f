"""Where config values come from: ``params.yaml``, ``--configfile`` files and ``--config`` KEY=VALUE pairs.

Snakemake hands a nested ``--config`` value (``--config audio="{'hop': 512}"``) over with every scalar left a
string; :func:`apply_command_line` re-reads those scalars as YAML reads ``params.yaml`` (``512`` an integer,
``0.5`` a float, ``null`` nothing, ``random`` a string), so every source is validated alike.
:func:`origin` names the source of a key for error messages: the last one that sets it wins, as in Snakemake.
``dvc exp run -S key=value`` writes ``params.yaml`` itself, so its values are ``params.yaml``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml


def typed(value: Any) -> Any:
    """A ``--config`` value with its string scalars read as YAML scalars (nested dicts and lists included)."""
    if isinstance(value, Mapping):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, str) and value:
        parsed = yaml.safe_load(value)
        return parsed if not isinstance(parsed, (dict, list)) else value
    return value


def merge(base: dict[str, Any], update: Mapping[str, Any]) -> None:
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v


def apply_command_line(config: dict[str, Any], command_line: Mapping[str, Any] | None) -> None:
    """Merge the typed ``--config`` values into ``config`` (in place; Snakemake merged them as strings)."""
    if command_line:
        merge(config, typed(dict(command_line)))


def _sets(tree: Any, path: Sequence[Any]) -> bool:
    for p in path:
        if not isinstance(tree, Mapping) or p not in tree:
            return False
        tree = tree[p]
    return True


def origin(command_line: Mapping[str, Any] | None = None,
           configfiles: Sequence[str | Path] = ()) -> Callable[[Sequence[Any]], str]:
    """A function naming the source of a key path: ``--config``, ``--configfile F`` or ``params.yaml``."""
    files = [(str(f), yaml.safe_load(Path(f).read_text()) or {}) for f in configfiles if Path(f).is_file()]

    def name(path: Sequence[Any]) -> str:
        if command_line and _sets(command_line, path):
            return "--config"
        for f, tree in reversed(files):
            if Path(f).name != "params.yaml" and _sets(tree, path):
                return f"--configfile {f}"
        return "params.yaml"

    return name
