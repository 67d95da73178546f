"""Frozen pretrained encoders whose embeddings are cached before training.

- :mod:`avsep.encoders.clip`: open_clip ViT-B-32 image embeddings (HFRA's visual input, CLIPSep's query);
- :mod:`avsep.encoders.clap`: CLAP (HTSAT, unfused) audio embeddings through transformers'
  ``ClapAudioModelWithProjection`` (HFRA's alignment target).

Both return L2-normalised 512-d float32 embeddings and carry a weights label (a named tag or hub id,
``file:<name>@sha256:<12 hex>`` / ``dir:<name>@sha256:<12 hex>`` for local weights, or ``random(seed=N)``)
that every cache records. Loading ``random`` or a local path never touches the network.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


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
