"""Separation losses of the mask-based HFRA family (Sound-of-Pixels / CLIPSep binary masks)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from avsep.audio.mixing import SpectralBatch


def weighted_bce(logits: torch.Tensor, batch: SpectralBatch) -> torch.Tensor:
    """Binary-mask BCE weighted by clamp(log1p(|X| warped), 1e-3, 10), averaged over every bin."""
    w = batch.weight.expand_as(logits)
    return F.binary_cross_entropy_with_logits(logits, batch.gt_masks, weight=w)
