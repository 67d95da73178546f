"""Seeding and CPU determinism."""

from __future__ import annotations

import hashlib
import os
import random

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
    torch.use_deterministic_algorithms(True, warn_only=False)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
