"""Overlapping windows and overlap-add with a constant-sum synthesis window, one window in memory at a time.

A signal of any length is cut into windows of ``win`` samples (the model's clip length) every ``hop = win // 2``
samples. Each window's output is weighted by a periodic Hann window of ``2 * hop`` samples,
``w[n] = sin^2(pi n / (2 hop))`` (zero on the last sample when ``win`` is odd), and added into place. At every
sample two windows overlap and ``w[n] + w[n + hop] = sin^2 + cos^2 = 1``: an identity model gives back the
signal exactly, and a model whose output changes from one window to the next cross-fades over half a window
instead of stepping at a seam. The signal is padded with ``hop`` zeros in front (so the first sample is
covered by two windows as well) and with zeros after its end.

:class:`OverlapAdd` keeps one window of output per stem: after window ``k`` is added, its first ``hop``
samples are final and are handed out, so memory is bounded by the window, not the signal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowPlan:
    """Windows of ``win`` samples every ``hop`` over a signal of ``n_samples``, with ``hop`` zeros in front."""

    n_samples: int
    win: int

    def __post_init__(self) -> None:
        if self.win < 2:
            raise ValueError(f"window of {self.win} samples: need at least 2")
        if self.n_samples < 1:
            raise ValueError("the signal is empty")

    @property
    def hop(self) -> int:
        return self.win // 2

    @property
    def n_windows(self) -> int:
        """Windows needed so that every real sample (padded index ``hop .. hop + n - 1``) is covered twice."""
        return (self.n_samples - 1) // self.hop + 2

    def start(self, k: int) -> int:
        """First sample of window ``k`` in the signal's own index (negative: the front padding)."""
        return (k - 1) * self.hop


def synthesis_window(win: int) -> np.ndarray:
    """``(win,)`` float64: a periodic Hann window of ``2 * (win // 2)`` samples, zero-padded to ``win``."""
    hop = win // 2
    w = np.zeros(win)
    n = np.arange(2 * hop)
    w[: 2 * hop] = np.sin(np.pi * n / (2 * hop)) ** 2
    return w


def read_windows(plan: WindowPlan, read: Callable[[int, int], np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
    """``(k, window (C, win))`` for every window of ``plan``; ``read(start, n)`` returns samples
    ``[start, start + n)`` of the signal (``(C, m)``, ``m <= n`` at its end) for ``0 <= start``."""
    for k in range(plan.n_windows):
        s = plan.start(k)
        lo = max(0, s)
        hi = min(plan.n_samples, s + plan.win)
        x = read(lo, hi - lo) if hi > lo else None
        c = 1 if x is None else x.shape[0]
        out = np.zeros((c, plan.win), dtype=np.float32)
        if x is not None:
            out[:, lo - s: lo - s + x.shape[1]] = x
        yield k, out


class OverlapAdd:
    """Accumulates per-window outputs ``(..., win)`` and returns the samples that no later window touches.

    ``add(k, y)`` must be called for ``k = 0, 1, ...`` in order; it returns the final samples
    ``[start(k), start(k) + hop)`` clipped to the signal (the front padding of window 0 is dropped, and after
    the last window nothing beyond ``n_samples`` is returned).
    """

    def __init__(self, plan: WindowPlan) -> None:
        self.plan = plan
        self.window = synthesis_window(plan.win)
        self.buf: np.ndarray | None = None
        self.next_k = 0

    def add(self, k: int, y: np.ndarray) -> np.ndarray:
        if k != self.next_k:
            raise ValueError(f"window {k} added out of order (expected {self.next_k})")
        p, hop = self.plan, self.plan.hop
        if self.buf is None:
            self.buf = np.zeros((*y.shape[:-1], p.win + hop), dtype=np.float64)
        self.buf[..., : p.win] += y.astype(np.float64) * self.window
        done = self.buf[..., :hop].copy()
        self.buf[..., :-hop] = self.buf[..., hop:]
        self.buf[..., -hop:] = 0.0
        self.next_k += 1
        s = p.start(k)
        lo, hi = max(0, s), min(p.n_samples, s + hop)
        return done[..., lo - s: hi - s] if hi > lo else done[..., :0]
