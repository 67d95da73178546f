"""HFRA's representation alignment (eq. 6): the U-Net bottleneck, projected, against the cached CLAP embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def alignment_loss(z_audio: torch.Tensor, z_target: torch.Tensor) -> torch.Tensor:
    """HFRA eq. 6: mean over the batch of 1 - cos(z_a, z_CLAP). ``z_target`` is a fixed (cached) target."""
    if z_audio.shape != z_target.shape:
        raise ValueError(f"alignment: audio representation {tuple(z_audio.shape)} vs target {tuple(z_target.shape)}")
    return (1.0 - F.cosine_similarity(z_audio, z_target.detach(), dim=-1, eps=1e-8)).mean()
