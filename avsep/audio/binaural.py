"""Binaural audio features of LAVSS: the interaural phase difference and the network input of each ear.

LAVSS (location-guided audio-visual spatial audio separation) feeds each ear B in {L, R} of the binaural
mixture to one shared U-Net as a 2 x F x T input: the warped log magnitude of that ear's mixture channel
and the warped ``cos(IPD)`` with ``IPD = angle(X_L) - angle(X_R)`` (paper eq. 4). Because cosine is even
the IPD channel is the same for both ears; only the magnitude channel differs.

Conventions (the rest of ``avsep`` uses the same):

* channel 0 of a stereo tensor is the **left** ear, channel 1 the **right** ear;
* the magnitude input is ``log(warp(|X|) + 1e-10)`` exactly as :func:`avsep.audio.mixing.spectral_batch`;
* a source on the right reaches the right ear first (:func:`avsep.data.prepare.spatial.spatialize`), so the left
  channel is a delayed copy ``x_L(t) = x_R(t - d)``, ``X_L = X_R exp(-j 2 pi f d / sr)`` and the IPD is
  ``-2 pi f d / sr`` (wrapped): **negative at low frequencies for a source on the right**.

Ground truth (paper eq. 7) and loss (paper eq. 8) are in :mod:`avsep.losses.binaural`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from avsep.audio.frontend import FrontendConfig, stft, warp

LOG_EPS = 1e-10


def phase_difference(spec_l: torch.Tensor, spec_r: torch.Tensor) -> torch.Tensor:
    """Inter-channel phase difference ``angle(X_L) - angle(X_R)`` wrapped to ``(-pi, pi]``.

    Computed as ``angle(X_L * conj(X_R))`` (no explicit unwrapping needed). Bins where either spectrum is
    exactly zero get 0. The one value ``-pi`` that :func:`torch.angle` can return is mapped to ``+pi``.
    """
    if spec_l.shape != spec_r.shape:
        raise ValueError(f"left/right spectra differ in shape: {tuple(spec_l.shape)} vs {tuple(spec_r.shape)}")
    if not (spec_l.is_complex() and spec_r.is_complex()):
        raise TypeError("ipd expects complex spectra")
    phase = torch.angle(spec_l * spec_r.conj())
    return torch.where(phase <= -math.pi, torch.full_like(phase, math.pi), phase)


def audio_features(
    mixture: torch.Tensor, cfg: FrontendConfig, ipd: bool, ipd_features: Sequence[str] = ("cos",)
) -> tuple[torch.Tensor, torch.Tensor]:
    """Network input of a mixture ``(B, E, L)`` (E = 2 ears, or 1 for mono) -> (``(B, E, C_in, W, T)``, STFT).

    Channel 0 is ``log(warp(|X_e|) + 1e-10)``; with ``ipd`` (binaural only) the next channels are
    ``warp(cos IPD)`` / ``warp(sin IPD)`` in the order of ``ipd_features``, identical for both ears. The
    complex STFT ``(B, E, F, T)`` is returned for the masking.
    """
    feats, spec, _ = features_and_magnitude(mixture, cfg, ipd, ipd_features)
    return feats, spec


def features_and_magnitude(
    mixture: torch.Tensor, cfg: FrontendConfig, ipd: bool, ipd_features: Sequence[str] = ("cos",)
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`audio_features` and the warped magnitude ``warp(|X|)`` ``(B, E, W, T)`` its log channel is made from."""
    if mixture.dim() != 3:
        raise ValueError(f"mixture must be (B, ears, L), got {tuple(mixture.shape)}")
    spec = stft(mixture, cfg)
    b, e = spec.shape[:2]
    mag = warp(spec.abs(), cfg)
    log_mag = torch.log(mag + LOG_EPS)  # (B, E, W, T)
    chans = [log_mag]
    if ipd:
        if e != 2:
            raise ValueError(f"IPD needs two ears, the mixture has {e} channel(s)")
        phase = phase_difference(spec[:, 0], spec[:, 1])  # (B, F, T)
        fn = {"cos": torch.cos, "sin": torch.sin}
        for name in ipd_features:
            ch = warp(fn[name](phase).unsqueeze(1), cfg)  # (B, 1, W, T)
            chans.append(ch.expand(b, e, *ch.shape[-2:]))
    return torch.stack(chans, dim=2), spec, mag
