"""Binaural audio features, ground-truth masks and the training loss of LAVSS.

LAVSS (location-guided audio-visual spatial audio separation) feeds each ear B in {L, R} of the binaural
mixture to one shared U-Net as a 2 x F x T input: the warped log magnitude of that ear's mixture channel
and the warped ``cos(IPD)`` with ``IPD = angle(X_L) - angle(X_R)`` (paper eq. 4). Because cosine is even
the IPD channel is the same for both ears; only the magnitude channel differs.

Conventions (the rest of ``avsep`` uses the same):

* channel 0 of a stereo tensor is the **left** ear, channel 1 the **right** ear;
* the magnitude input is ``log(warp(|X|) + 1e-10)`` exactly as :func:`avsep.mixing.spectral_batch`;
* a source on the right reaches the right ear first (:func:`avsep.data.spatial.spatialize`), so the left
  channel is a delayed copy ``x_L(t) = x_R(t - d)``, ``X_L = X_R exp(-j 2 pi f d / sr)`` and the IPD is
  ``-2 pi f d / sr`` (wrapped): **negative at low frequencies for a source on the right**.

Ground truth (paper eq. 7) and loss (paper eq. 8) are documented on :func:`lavss_gt_masks` and
:func:`lavss_loss`.
"""

from __future__ import annotations

import math

import torch

from .frontend import FrontendConfig, stft, warp

LOG_EPS = 1e-10
GT_MODES = ("dominant", "half_mixture")


def ipd(spec_l: torch.Tensor, spec_r: torch.Tensor) -> torch.Tensor:
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


def binaural_stft(stereo_wave: torch.Tensor, cfg: FrontendConfig) -> torch.Tensor:
    """Complex STFT of a stereo batch ``(B, 2, L)`` -> ``(B, 2, n_freq, n_frames)`` (left, right)."""
    if stereo_wave.dim() != 3 or stereo_wave.shape[1] != 2:
        raise ValueError(f"expected a stereo batch (B, 2, L), got {tuple(stereo_wave.shape)}")
    return stft(stereo_wave, cfg)


def binaural_features(stereo_wave: torch.Tensor, cfg: FrontendConfig) -> torch.Tensor:
    """LAVSS network input of a binaural mixture ``(B, 2, L)`` -> ``(B, 2 ears, 2 channels, W, T)``.

    For ear ``e`` (0 left, 1 right): channel 0 is ``log(warp(|X_e|) + 1e-10)``, channel 1 is
    ``warp(cos(IPD))`` (identical for both ears). ``W = cfg.warp_bins``. The ears are meant to be folded into
    the batch (``.flatten(0, 1)``) since the separation network is shared across ears.
    """
    spec = binaural_stft(stereo_wave, cfg)  # (B, 2, F, T)
    b = spec.shape[0]
    log_mag = torch.log(warp(spec.abs(), cfg) + LOG_EPS)  # (B, 2, W, T): the ears act as channels
    cos_ipd = warp(torch.cos(ipd(spec[:, 0], spec[:, 1])).unsqueeze(1), cfg)  # (B, 1, W, T)
    cos_ipd = cos_ipd.expand(b, 2, *cos_ipd.shape[-2:])
    return torch.stack([log_mag, cos_ipd], dim=2)


def lavss_gt_masks(
    source_mags: torch.Tensor, mix_mag: torch.Tensor | None = None, mode: str = "dominant", source_dim: int = 1
) -> torch.Tensor:
    """Binary ground-truth masks of LAVSS eq. 7, per ear, from source magnitudes.

    ``source_mags``: (B, N, ...) magnitudes (or complex spectra: their modulus is used) of every source, the
    source axis at ``source_dim``; the remaining axes are anything (e.g. ears, W, T). Compute them in the
    domain the network predicts (warped magnitudes, as :mod:`avsep.mixing` does).

    Eq. 7 reads ``M_n = [X_n >= X_m]``. Taken literally with ``X_m`` the mixture it is almost all zeros
    (``|X_n| >= |X_1 + X_2|`` only where the sources cancel), and the paper then speaks of the "ratio between
    the source and the mixture spectrograms", so it is read here as in the Sound-of-Pixels code the paper
    builds on:

    * ``mode="dominant"`` (default): ``M_n = [|X_n| >= |X_m|]`` for every other source ``m``, i.e. a one-hot of
      ``argmax_n |X_n|`` (ties go to the lowest index), so the N masks partition every bin: for two sources
      they are exact complements.
    * ``mode="half_mixture"``: ``M_n = [|X_n| > 0.5 |X_mix|]`` (Sound-of-Pixels / :func:`spectral_batch`);
      needs ``mix_mag`` shaped like one source (source axis removed). Not guaranteed to be complementary.
    """
    mags = source_mags.abs() if source_mags.is_complex() else source_mags
    if mode == "dominant":
        winner = mags.argmax(dim=source_dim, keepdim=True)
        idx = torch.arange(mags.shape[source_dim], device=mags.device)
        idx = idx.view(*([1] * source_dim), -1, *([1] * (mags.dim() - source_dim - 1)))
        return (idx == winner).to(mags.dtype if mags.is_floating_point() else torch.float32)
    if mode == "half_mixture":
        if mix_mag is None:
            raise ValueError("mode='half_mixture' needs mix_mag")
        mix = mix_mag.abs() if mix_mag.is_complex() else mix_mag
        return (mags > 0.5 * mix.unsqueeze(source_dim)).to(mags.dtype)
    raise ValueError(f"unknown mode {mode!r}; expected one of {GT_MODES}")


def lavss_loss_terms(
    pred_masks: torch.Tensor,
    gt_masks: torch.Tensor,
    est_wave: torch.Tensor,
    ref_wave: torch.Tensor,
    squared_l2: bool = False,
) -> dict[str, torch.Tensor]:
    """The three terms of LAVSS eq. 8, each a scalar averaged over the batch.

    Masks are ``(B, ..., W, T)`` (e.g. ``(B, N, 2, W, T)``), waves ``(B, ..., L)`` (e.g. ``(B, N, 2, L)``); the
    axes between the batch and the last two (masks) / last one (waves) index the (source, ear) pairs that
    eq. 8 sums over. For each pair, with ``K`` the number of time-frequency bins and ``L`` the samples:

    * ``l1  = ||M_hat - M||_1 / K``                (mean absolute error),
    * ``l2  = ||M_hat - M||_2 / sqrt(K)``          (root-mean-square error: eq. 8 writes the plain, **not
      squared**, L2 norm; ``squared_l2=True`` gives ``||.||_2^2 / K``, the mean squared error, instead),
    * ``time = ||x_hat - x||_1 / L``               (mean absolute error of the waveform).

    The norms are divided by the element count (the paper gives no normalisation; raw norms would scale
    with the STFT size and clip length and dwarf each other) and summed over (source, ear) pairs as in eq. 8.
    """
    if pred_masks.shape != gt_masks.shape:
        raise ValueError(f"mask shapes differ: {tuple(pred_masks.shape)} vs {tuple(gt_masks.shape)}")
    if est_wave.shape != ref_wave.shape:
        raise ValueError(f"wave shapes differ: {tuple(est_wave.shape)} vs {tuple(ref_wave.shape)}")
    if pred_masks.dim() < 3 or est_wave.dim() < 2:
        raise ValueError("masks need (B, ..., W, T) and waves (B, ..., L)")
    b = pred_masks.shape[0]
    dm = (pred_masks - gt_masks.to(pred_masks.dtype)).reshape(b, -1, pred_masks.shape[-2] * pred_masks.shape[-1])
    k = dm.shape[-1]
    l1 = dm.abs().sum(-1) / k
    if squared_l2:
        l2 = dm.pow(2).sum(-1) / k
    else:
        # vector_norm has a zero (not NaN) gradient at an exact zero difference.
        l2 = torch.linalg.vector_norm(dm, ord=2, dim=-1) / math.sqrt(k)
    dw = (est_wave - ref_wave).reshape(b, -1, est_wave.shape[-1])
    time = dw.abs().sum(-1) / dw.shape[-1]
    return {"l1": l1.sum(-1).mean(), "l2": l2.sum(-1).mean(), "time": time.sum(-1).mean()}


def lavss_loss(
    pred_masks: torch.Tensor,
    gt_masks: torch.Tensor,
    est_wave: torch.Tensor,
    ref_wave: torch.Tensor,
    alpha: float = 0.5,
    beta: float = 0.25,
    squared_l2: bool = False,
) -> torch.Tensor:
    """``L_binaural = L_freq + beta L_time`` with ``L_freq = sum ||M_hat - M||_1 + alpha ||M_hat - M||_2``.

    LAVSS eq. 8 with the paper's ``alpha = 0.5``, ``beta = 0.25``; terms and normalisation as in
    :func:`lavss_loss_terms`. ``pred_masks`` are mask values (after the sigmoid), not logits. Zero exactly
    when the masks and the waveforms match, positive otherwise.
    """
    t = lavss_loss_terms(pred_masks, gt_masks, est_wave, ref_wave, squared_l2=squared_l2)
    return t["l1"] + alpha * t["l2"] + beta * t["time"]
