"""Audio front-end shared by every model: STFT, log-frequency warp, masks and ISTFT.

Reference facts (Sound-of-Pixels / CLIPSep / HFRA code): clips of 65,535 samples at 11,025 Hz; STFT with
n_fft 1022, hop 256, Hann window, centred -> 512 frequency bins x 256 frames; magnitudes warped to a
256-row log-frequency grid with ``grid_sample(align_corners=True)`` where output row i reads linear bin
(H-1)(21^(i/255) - 1)/20; predicted masks are unwarped back to the 512 linear bins and applied to the
mixture magnitude, and waveforms are rebuilt with the mixture phase.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from avsep.audio.config import FrontendConfig


@functools.lru_cache(maxsize=8)
def _window(n_fft: int) -> torch.Tensor:
    return torch.hann_window(n_fft, dtype=torch.float64).float()


def stft(wave: torch.Tensor, cfg: FrontendConfig) -> torch.Tensor:
    """Complex STFT of ``wave`` (..., samples) -> (..., n_freq, n_frames)."""
    shape = wave.shape[:-1]
    flat = wave.reshape(-1, wave.shape[-1])
    spec = torch.stft(
        flat,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop,
        window=_window(cfg.n_fft).to(wave.device),
        center=True,
        return_complex=True,
    )
    return spec.reshape(*shape, spec.shape[-2], spec.shape[-1])


def istft(spec: torch.Tensor, cfg: FrontendConfig, length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`stft`: (..., n_freq, n_frames) complex -> (..., length)."""
    shape = spec.shape[:-2]
    flat = spec.reshape(-1, spec.shape[-2], spec.shape[-1])
    wave = torch.istft(
        flat,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop,
        window=_window(cfg.n_fft).to(spec.device),
        center=True,
        length=length if length is not None else cfg.clip_samples,
    )
    return wave.reshape(*shape, wave.shape[-1])


def masked_istft(mask: torch.Tensor, spec: torch.Tensor, cfg: FrontendConfig, length: int | None = None,
                 threshold: float | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Waveforms of linear-frequency masks applied to a mixture STFT, with the mixture phase: ISTFT(M x X).

    ``mask`` and ``spec`` broadcast (e.g. ``(B, N, E, F, T)`` masks and a ``(B, 1, E, F, T)`` mixture). With
    ``threshold`` the mask is binarised first (``M > threshold``); ``dtype`` casts the masked spectrogram
    (the baselines multiply in float64 and invert in complex64). Every separator's estimates go through here.
    """
    if threshold is not None:
        mask = (mask > threshold).to(mask.dtype)
    masked = mask * spec
    if dtype is not None:
        masked = masked.to(dtype)
    return istft(masked, cfg, length=length)


def warp_positions(n_linear: int, n_warp: int) -> torch.Tensor:
    """Linear-bin position read by each warped row: (H-1)(21^(i/(W-1)) - 1)/20."""
    i = torch.arange(n_warp, dtype=torch.float64)
    return (n_linear - 1) * (torch.pow(21.0, i / (n_warp - 1)) - 1.0) / 20.0


def unwarp_positions(n_linear: int, n_warp: int) -> torch.Tensor:
    """Warped-row position read by each linear bin (the inverse map of :func:`warp_positions`)."""
    f = torch.arange(n_linear, dtype=torch.float64)
    return (n_warp - 1) * torch.log1p(20.0 * f / (n_linear - 1)) / math.log(21.0)


def _resample_rows(x: torch.Tensor, rows: torch.Tensor, n_in: int) -> torch.Tensor:
    """Sample x (B, C, n_in, T) at fractional row positions ``rows`` with bilinear grid_sample."""
    b, _, _, t = x.shape
    gy = (2.0 * rows / (n_in - 1) - 1.0).to(x.dtype).to(x.device)
    gx = torch.linspace(-1.0, 1.0, t, dtype=x.dtype, device=x.device)
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)  # (rows, T, 2) as (x, y)
    grid = grid.unsqueeze(0).expand(b, -1, -1, -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def warp(mag: torch.Tensor, cfg: FrontendConfig) -> torch.Tensor:
    """Linear-frequency (B, C, n_freq, T) -> log-frequency (B, C, warp_bins, T)."""
    return _resample_rows(mag, warp_positions(mag.shape[-2], cfg.warp_bins), mag.shape[-2])


def unwarp(x: torch.Tensor, cfg: FrontendConfig) -> torch.Tensor:
    """Log-frequency (B, C, warp_bins, T) -> linear-frequency (B, C, n_freq, T)."""
    return _resample_rows(x, unwarp_positions(cfg.n_freq, x.shape[-2]), x.shape[-2])


def mask_weight(warped_mix_mag: torch.Tensor) -> torch.Tensor:
    """Per-bin weight of the binary-mask BCE: clamp(log1p(|X| warped), 1e-3, 10)."""
    return torch.clamp(torch.log1p(warped_mix_mag), 1e-3, 10.0)

