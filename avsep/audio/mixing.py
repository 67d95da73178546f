"""Mixing sources and the spectral training targets of mask-based separation."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from avsep.audio.frontend import FrontendConfig, mask_weight, stft, warp


def mix_sources(audio: torch.Tensor, gains: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sources (B, N, ..., L) scaled by ``gains`` (B, N), each clipped to [-1, 1] and divided by N.

    Returns (sources, mixture) with the mixture the sum of the returned sources.
    """
    n = audio.shape[1]
    g = gains.view(*gains.shape, *([1] * (audio.dim() - 2)))
    sources = torch.clamp(audio * g, -1.0, 1.0) / n
    return sources, sources.sum(dim=1)


@dataclass
class SpectralBatch:
    mix_spec: torch.Tensor | None  # (B, F, T) complex mixture STFT (None from avsep.engine.spectral_cache: unused in training)
    log_mag: torch.Tensor  # (B, 1, W, T) log warped mixture magnitude (network input)
    gt_masks: torch.Tensor  # (B, N, W, T) binary masks in the warped domain
    weight: torch.Tensor  # (B, 1, W, T) BCE weights
    mix_mag: torch.Tensor  # (B, 1, W, T) warped mixture magnitude (+ 1e-10)
    src_mag: torch.Tensor  # (B, N, W, T) warped source magnitudes


def spectral_batch(sources: torch.Tensor, mixture: torch.Tensor, cfg: FrontendConfig) -> SpectralBatch:
    """Targets for mono sources (B, N, L) and mixture (B, L).

    Ground truth (Sound-of-Pixels): source n's binary mask is 1 where its warped magnitude exceeds half
    the warped mixture magnitude.
    """
    b, n = sources.shape[:2]
    mix_spec = stft(mixture, cfg)
    mix_w = warp(mix_spec.abs().unsqueeze(1), cfg) + 1e-10
    src_w = warp(stft(sources, cfg).abs().flatten(0, 1).unsqueeze(1), cfg).view(b, n, *mix_w.shape[-2:])
    gt = (src_w > 0.5 * mix_w).float()
    return SpectralBatch(mix_spec=mix_spec, log_mag=torch.log(mix_w), gt_masks=gt, weight=mask_weight(mix_w),
                         mix_mag=mix_w, src_mag=src_w)
