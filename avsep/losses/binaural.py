"""The LAVSS training loss (eq. 7-8) on one batch: eq. 7 masks, mask L1/L2 and the time-domain L1."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from avsep.audio.binaural import audio_features, features_and_magnitude
from avsep.audio.frontend import FrontendConfig, masked_istft, stft, unwarp, warp
from avsep.data.binaural_batches import Batch
from avsep.models.lavss.network import LAVSSNet

GT_MODES = ("dominant", "half_mixture")


def lavss_gt_masks(
    source_mags: torch.Tensor, mix_mag: torch.Tensor | None = None, mode: str = "dominant", source_dim: int = 1
) -> torch.Tensor:
    """Binary ground-truth masks of LAVSS eq. 7, per ear, from source magnitudes.

    ``source_mags``: (B, N, ...) magnitudes (or complex spectra: their modulus is used) of every source, the
    source axis at ``source_dim``; the remaining axes are anything (e.g. ears, W, T). Compute them in the
    domain the network predicts (warped magnitudes, as :mod:`avsep.audio.mixing` does).

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



def predict_masks(model: LAVSSNet, batch: Batch, frontend: FrontendConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Sigmoid masks ``(B, N, E, W, T)`` (warped domain) and the mixture STFT ``(B, E, F, T)``."""
    cfg = model.cfg
    feats, spec = audio_features(batch.mixture, frontend, cfg.ipd, cfg.ipd_features)
    return torch.sigmoid(model(feats, batch.images, batch.boxes)), spec


def masked_waves(masks_warped: torch.Tensor, spec: torch.Tensor, frontend: FrontendConfig,
                 threshold: float | None = None) -> torch.Tensor:
    """Waveforms ``(B, N, E, L)`` = ISTFT(unwarp(mask) x mixture STFT), with the mixture phase."""
    b, n, e, w, t = masks_warped.shape
    lin = unwarp(masks_warped.reshape(b * n * e, 1, w, t), frontend).view(b, n, e, -1, t)
    return masked_istft(lin, spec.unsqueeze(1), frontend, frontend.clip_samples, threshold)


def gt_masks(src_mags: torch.Tensor) -> torch.Tensor:
    """Eq. 7 masks of ``(B, N, ...)`` source magnitudes: :func:`avsep.audio.binaural.lavss_gt_masks` (``dominant``),
    computed for two sources as ``[|X_0| >= |X_1|]`` and its complement (the same values, without an argmax)."""
    if src_mags.shape[1] != 2:
        return lavss_gt_masks(src_mags, source_dim=1)
    first = (src_mags[:, 0] >= src_mags[:, 1]).to(src_mags.dtype)
    return torch.stack([first, 1.0 - first], dim=1)


@dataclass
class LAVSSTargets:
    """What the loss of a batch needs besides the network's output (:func:`loss_targets`; none of it depends on the
    weights, so it is made with the batch, ahead of the step)."""

    feats: torch.Tensor  # (B, E, C_in, W, T) the network's audio input (avsep.audio.binaural.audio_features)
    spec: torch.Tensor  # (B, E, F, T) the mixture STFT
    gt: torch.Tensor  # (B, N, E, W, T) eq. 7 masks
    weight: torch.Tensor | None = None  # (B, 1, E, W, T) magnitude weights (weighting="magnitude")


WEIGHTINGS = ("none", "magnitude")


def _check_weighting(weighting: str) -> None:
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown mask weighting {weighting!r} (none | magnitude)")


def loss_targets(batch: Batch, frontend: FrontendConfig, ipd: bool, ipd_features: Sequence[str] = ("cos",),
                 weighting: str = "none") -> LAVSSTargets:
    """The network input, mixture STFT, eq. 7 masks and (``weighting="magnitude"``) bin weights of ``batch``, for a
    model with ``ipd``/``ipd_features``."""
    _check_weighting(weighting)
    feats, spec, mix_w = features_and_magnitude(batch.mixture, frontend, ipd, ipd_features)
    b, n, e = batch.sources.shape[:3]
    src_w = warp(stft(batch.sources, frontend).abs().reshape(b * n * e, 1, spec.shape[-2], spec.shape[-1]), frontend)
    gt = gt_masks(src_w.view(b, n, e, *src_w.shape[-2:]))
    w = None
    if weighting == "magnitude":  # the mixture's warped magnitude of the network input, (B, E, W, T) -> (B, 1, E, W, T)
        w = torch.clamp(torch.log1p(mix_w.unsqueeze(1)), 1e-3, 10.0)
    return LAVSSTargets(feats, spec, gt, w)


def loss_terms(model: LAVSSNet, batch: Batch, frontend: FrontendConfig, weighting: str = "none",
               targets: LAVSSTargets | None = None) -> dict[str, torch.Tensor]:
    """The three terms of eq. 8 for one batch (``targets``: its :func:`loss_targets`, made here if not given).

    ``weighting="none"``: :func:`avsep.audio.binaural.lavss_loss_terms` (every time-frequency bin counts the same).
    ``weighting="magnitude"``: each bin's mask error is weighted by ``clamp(log1p(|X_mix|), 1e-3, 10)`` of its
    ear (the Sound-of-Pixels weighting), i.e. ``sum w |d| / sum w`` and ``sqrt(sum w d^2 / sum w)`` per
    (source, ear): in near-silent bins the eq. 7 label is decided by noise and cannot be learnt.
    """
    _check_weighting(weighting)
    t = targets if targets is not None else loss_targets(batch, frontend, model.cfg.ipd, model.cfg.ipd_features, weighting)
    masks = torch.sigmoid(model(t.feats, batch.images, batch.boxes))
    est = masked_waves(masks, t.spec, frontend)
    terms = lavss_loss_terms(masks, t.gt, est, batch.sources)
    if weighting == "none":
        return terms
    if t.weight is None:
        raise ValueError("weighting='magnitude' needs the targets' bin weights (loss_targets(..., weighting='magnitude'))")
    w = t.weight
    d = masks - t.gt
    total = w.sum(dim=(-2, -1))  # (B, 1, E)
    l1 = (w * d.abs()).sum(dim=(-2, -1)) / total
    l2 = torch.sqrt((w * d.pow(2)).sum(dim=(-2, -1)) / total + 1e-12)
    return {"l1": l1.sum(dim=(1, 2)).mean(), "l2": l2.sum(dim=(1, 2)).mean(), "time": terms["time"]}
