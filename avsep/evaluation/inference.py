"""Separation with a trained model, callable outside the workflow.

``predict`` works on batches of fixed-length mixtures (used by evaluation); ``separate`` takes a
mixture waveform of any length plus one visual input per source and returns one waveform per source,
processing consecutive windows of ``clip_samples``.
"""

from __future__ import annotations

import numpy as np
import torch

from avsep.audio.frontend import FrontendConfig, masked_istft, unwarp
from avsep.audio.mixing import spectral_batch
from avsep.models.hfra.separator import AVSeparator


@torch.no_grad()
def predict(
    model: AVSeparator,
    mixture: torch.Tensor,
    visual: torch.Tensor,
    cfg: FrontendConfig,
    threshold: float | None = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixtures (B, L) and per-source visual input (B, N, ...) -> (estimates (B, N, L), warped masks).

    Masks are sigmoid outputs, unwarped to linear frequency and, when ``threshold`` is set, binarised
    (the Sound-of-Pixels evaluation of binary-mask models).
    """
    model.eval()
    b, n = visual.shape[:2]
    dummy = mixture.new_zeros(b, n, mixture.shape[-1])
    batch = spectral_batch(dummy, mixture, cfg)
    probs = torch.sigmoid(model(batch.log_mag, visual)["logits"])  # (B, N, W, T)
    lin = unwarp(probs, cfg)  # (B, N, F, T)
    est = torch.stack([masked_istft(lin[:, j], batch.mix_spec, cfg, cfg.clip_samples, threshold) for j in range(n)], dim=1)
    return est, probs


def separate(
    model: AVSeparator,
    mixture: np.ndarray,
    visual: torch.Tensor,
    cfg: FrontendConfig,
    threshold: float | None = 0.5,
) -> np.ndarray:
    """Separate a mono mixture of any length (L,) given visual input (N, ...) -> (N, L).

    The mixture is cut into consecutive windows of ``cfg.clip_samples`` (the last one zero-padded), each
    window separated with the same visual input, and the estimates concatenated.
    """
    if mixture.ndim != 1:
        raise ValueError(f"separate expects a mono waveform (L,), got shape {mixture.shape}")
    if not np.all(np.isfinite(mixture)):
        raise ValueError("separate: the mixture contains NaN or inf")
    length = mixture.shape[0]
    win = cfg.clip_samples
    n_win = max(1, -(-length // win))
    padded = np.zeros(n_win * win, dtype=np.float32)
    padded[:length] = mixture
    windows = torch.from_numpy(padded.reshape(n_win, win))
    vis = visual.unsqueeze(0).expand(n_win, *visual.shape)
    est, _ = predict(model, windows, vis, cfg, threshold)
    return est.permute(1, 0, 2).reshape(visual.shape[0], -1)[:, :length].numpy()

