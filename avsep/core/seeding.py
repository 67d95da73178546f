"""Seeding and CPU determinism."""

from __future__ import annotations

import hashlib
import os
import random
import sys
from typing import Any

import numpy as np


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from any parts (strings, ints), independent of PYTHONHASHSEED."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def rng(*parts: object) -> np.random.Generator:
    """A numpy Generator seeded from ``parts``."""
    return np.random.default_rng(derive_seed(*parts))


def seed_everything(seed: int, threads: int | None = None) -> None:
    """Seed python, numpy and torch and make torch deterministic on CPU."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    deterministic_algorithms(torch)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))


def deterministic_algorithms(torch: Any, warn_only: bool = False) -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=...)`` without its import of ``torch._inductor`` (2 s
    in every job; nothing in avsep compiles with inductor). If inductor is already loaded, the public call sets its
    flag too. ``warn_only``: an op without a deterministic kernel warns instead of raising (GPU training: the
    bilinear upsampling and grid-sampling backward passes); on the CPU every op avsep runs is deterministic.

    Deterministic mode also fills every new tensor with NaN (a debugging aid that makes reads of uninitialised
    memory visible; a tenth of a CPU training step went to these fills): it is turned off, results are the same.
    """
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=warn_only)
    else:
        setter(True, warn_only=warn_only)
    torch.utils.deterministic.fill_uninitialized_memory = False
