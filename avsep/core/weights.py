"""Weights labels: which weights made an artefact, in one format for every model and encoder.

``file:<name>@sha256:<first 12 hex>`` for a weights file, ``dir:<name>@sha256:<12 hex>`` for a weights
directory (its files hashed in a fixed order), the tag or hub id itself for named weights (downloaded on use),
``random(seed=N)`` for a frozen encoder initialised from a seed and ``random-init`` for a network whose random
start is part of its training run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

RANDOM_INIT = "random-init"


def sha256_files(paths: Iterable[Path], chunk: int = 1 << 20) -> str:
    """sha256 of the bytes of ``paths`` (in the given order; each file's name is hashed before it)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    return h.hexdigest()


def file_label(path: Path, kind: str = "file") -> str:
    """``file:<name>@sha256:<first 12 hex of the file's sha256>``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return f"{kind}:{path.name}@sha256:{h.hexdigest()[:12]}"


def weights_label(spec: str | Path, random: str = RANDOM_INIT) -> str:
    """The label of a weights spec: ``random`` (-> ``random``), a file, or a tag / hub id (as given)."""
    if str(spec) == "random":
        return random
    path = Path(spec)
    if path.is_file():
        return file_label(path)
    return str(spec)
