"""Separation losses of the mask-based HFRA family: Sound-of-Pixels / CLIPSep binary-mask BCE (what HFRA's code
trains) and HFRA's eq. 4 (L1 between masked and true spectrograms)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from avsep.audio.mixing import SpectralBatch


def weighted_bce(logits: torch.Tensor, batch: SpectralBatch) -> torch.Tensor:
    """Binary-mask BCE weighted by clamp(log1p(|X| warped), 1e-3, 10), averaged over every bin."""
    w = batch.weight.expand_as(logits)
    return F.binary_cross_entropy_with_logits(logits, batch.gt_masks, weight=w)


def l1_spectrogram(logits: torch.Tensor, batch: SpectralBatch) -> torch.Tensor:
    """HFRA eq. 3-4: X_hat_i = M_i * X (sigmoid ratio masks on the warped mixture magnitude) and
    L_sep = sum_i ||X_hat_i - X_i||_1, each norm divided by the number of bins (so the scale does not grow with
    the spectrogram size) and averaged over the batch."""
    est = torch.sigmoid(logits) * batch.mix_mag
    return (est - batch.src_mag).abs().mean(dim=(-2, -1)).sum(dim=1).mean()


SEPARATION_LOSSES = {"bce": weighted_bce, "l1_spec": l1_spectrogram}
