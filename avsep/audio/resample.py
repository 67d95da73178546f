"""Polyphase resampling of whole signals by the exact ratio of two integer rates."""

from __future__ import annotations

import math

import numpy as np


def resample_exact(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """``x`` (1-D) resampled from ``rate_in`` to ``rate_out`` Hz by ``scipy.signal.resample_poly`` with the reduced
    ratio ``up / down`` (float64); ``x`` itself where the rates are equal."""
    g = math.gcd(int(rate_in), int(rate_out))
    up, down = int(rate_out) // g, int(rate_in) // g
    if up == down:
        return np.asarray(x)
    from scipy.signal import resample_poly  # here, not at import (0.5 s of every job's start)

    return resample_poly(np.asarray(x, dtype=np.float64), up, down)
