"""Validation of 1-D waveforms given to the numpy signal tools (baselines, acoustic properties)."""

from __future__ import annotations

import numpy as np


def as_waveform(x: np.ndarray, name: str = "signal") -> np.ndarray:
    """``x`` as a finite, non-empty 1-D float64 array; ValueError naming ``name`` otherwise."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D waveform, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr
