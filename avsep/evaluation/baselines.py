"""Non-learned, audio-only separation baselines of the HFRA tables: NMF-MFCC and RPCA.

Both methods work on the magnitude of the mixture STFT computed with the shared front-end
(:mod:`avsep.audio.frontend`: Hann window, n_fft 1022, hop 256, centred) and rebuild every estimate by
masking the complex mixture STFT (i.e. with the mixture phase) and inverting it with
:func:`avsep.audio.frontend.istft`.

* :func:`nmf_mfcc_separate` -- NMF-MFCC (Spiertz & Gnann, 2009), the baseline of Sound-of-Pixels
  and of HFRA Tables 1/2: NMF of the mixture magnitude, clustering of the NMF components into
  ``n_sources`` groups by the MFCCs of their spectral bases (k-means), Wiener-like soft masks.
* :func:`rpca_separate` -- robust PCA (Huang et al., 2012, "Singing-voice separation from monaural
  recordings using robust principal component analysis"), the RPCA row of HFRA Table 1:
  principal component pursuit by the inexact augmented Lagrange multiplier method splits the
  magnitude into a low-rank (repetitive accompaniment) and a sparse part; binary (Huang's) or soft
  time-frequency masks.

**Scoring with permutation.** Neither method is conditioned on a video frame, so an estimate
carries no information about *which* reference it belongs to. Their rows must therefore be scored
with the assignment of estimates to references that maximises the mean SDR over the sources
(:func:`evaluate_permuted`). Note that this is *not* what ``mir_eval``'s
``compute_permutation=True`` does (it maximises the mean SIR); the visually conditioned models are
scored without permutation (:func:`avsep.evaluation.metrics.evaluate_mixture`).
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

import numpy as np
import torch

from avsep.audio.frontend import FrontendConfig, masked_istft, stft
from avsep.audio.waveform import as_waveform
from avsep.evaluation.metrics import evaluate_mixture

__all__ = [
    "evaluate_permuted",
    "kmeans",
    "mel_filterbank",
    "mfcc_of_bases",
    "nmf",
    "nmf_mfcc_separate",
    "rpca",
    "rpca_separate",
]

_EPS = 1e-12


# --------------------------------------------------------------------------- STFT helpers


def _config(sample_rate: int, n_fft: int, hop: int, length: int) -> FrontendConfig:
    return FrontendConfig(sample_rate=sample_rate, clip_samples=length, n_fft=n_fft, hop=hop)


def _mixture_stft(x: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """Complex STFT (n_freq, n_frames) of ``x`` with the shared front-end."""
    spec = stft(torch.from_numpy(x.astype(np.float32)), cfg)
    return spec.numpy().astype(np.complex128)


def _masked_istft(masks: np.ndarray, spec: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """Waveforms (n_masks, L) from masks (n_masks, F, T) applied to the mixture STFT ``spec``."""
    est = masked_istft(torch.from_numpy(masks), torch.from_numpy(spec[None]), cfg, cfg.clip_samples, dtype=torch.complex64)
    return est.numpy().astype(np.float64)


# --------------------------------------------------------------------------- NMF


def nmf(
    v: np.ndarray,
    n_components: int,
    n_iter: int = 200,
    beta: Literal["kl", "euclidean"] = "kl",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative matrix factorisation ``v ~= w @ h`` by Lee & Seung multiplicative updates.

    Parameters
    ----------
    v:
        Non-negative matrix (F, T) (here a magnitude spectrogram).
    n_components:
        Number of components K.
    n_iter:
        Number of update sweeps (each updates ``h`` then ``w``).
    beta:
        ``"kl"`` (generalised Kullback-Leibler divergence) or ``"euclidean"`` (squared Frobenius).
    seed:
        Seed of the uniform random initialisation (the only randomness).

    Returns
    -------
    (w, h):
        Bases (F, K), each column scaled to unit sum, and activations (K, T) rescaled so that
        ``w @ h`` is unchanged by the normalisation.
    """
    v = np.asarray(v, dtype=np.float64)
    if np.any(v < 0):
        raise ValueError("NMF input must be non-negative")
    rng = np.random.default_rng(seed)
    n_freq, n_frames = v.shape
    scale = np.sqrt(max(v.mean(), _EPS) / n_components)
    w = rng.uniform(0.1, 1.0, size=(n_freq, n_components)) * scale
    h = rng.uniform(0.1, 1.0, size=(n_components, n_frames)) * scale
    for _ in range(n_iter):
        if beta == "kl":
            h *= (w.T @ (v / (w @ h + _EPS))) / (w.sum(axis=0)[:, None] + _EPS)
            w *= ((v / (w @ h + _EPS)) @ h.T) / (h.sum(axis=1)[None, :] + _EPS)
        elif beta == "euclidean":
            h *= (w.T @ v) / (w.T @ w @ h + _EPS)
            w *= (v @ h.T) / (w @ (h @ h.T) + _EPS)
        else:
            raise ValueError(f"beta must be 'kl' or 'euclidean', got {beta!r}")
    norm = w.sum(axis=0) + _EPS
    return w / norm, h * norm[:, None]


# --------------------------------------------------------------------------- MFCC of bases


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int = 40) -> np.ndarray:
    """HTK-style triangular mel filterbank (n_mels, n_fft // 2 + 1), 0 Hz to Nyquist, unit peak."""
    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(0.0, float(_hz_to_mel(sample_rate / 2.0)), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None] - lower) / (centre - lower)
    falling = (upper - freqs[None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def mfcc_of_bases(
    w: np.ndarray,
    sample_rate: int,
    n_fft: int,
    n_mfcc: int = 13,
    n_mels: int = 40,
) -> np.ndarray:
    """MFCCs (K, n_mfcc) of the spectral bases ``w`` (F, K), one magnitude spectrum per column.

    Each basis is treated as a magnitude spectrum: power ``w**2`` -> mel filterbank -> ``log``
    (floored at 1e-10 of the largest band, as 100 dB dynamic range) -> orthonormal DCT-II; the
    coefficients 0..n_mfcc-1 are kept. Bases are unit-sum, so coefficient 0 describes spectral
    spread rather than loudness.
    """
    import scipy.fft

    mel = mel_filterbank(sample_rate, n_fft, n_mels) @ (np.asarray(w, dtype=np.float64) ** 2)
    mel = np.maximum(mel, 1e-10 * mel.max(axis=0, keepdims=True) + _EPS)
    return scipy.fft.dct(np.log(mel), type=2, norm="ortho", axis=0)[:n_mfcc].T


# --------------------------------------------------------------------------- k-means


def _kmeans_pp_init(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: first centre uniform, next ones with probability ~ squared distance."""
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        total = d2.sum()
        idx = rng.integers(len(x)) if total <= 0 else rng.choice(len(x), p=d2 / total)
        centres.append(x[idx])
    return np.asarray(centres, dtype=np.float64)


def _lloyd(x: np.ndarray, centres: np.ndarray, n_iter: int) -> tuple[np.ndarray, float]:
    """Lloyd iterations from ``centres``; an emptied cluster takes the point farthest from its centre."""
    k = len(centres)
    labels = np.zeros(len(x), dtype=np.int64)
    for it in range(n_iter):
        d2 = ((x[:, None] - centres[None]) ** 2).sum(-1)
        new = np.argmin(d2, axis=1)
        for j in range(k):
            if not np.any(new == j):
                far = int(np.argmax(d2[np.arange(len(x)), new]))
                new[far] = j
        if it > 0 and np.array_equal(new, labels):
            break
        labels = new
        centres = np.stack([x[labels == j].mean(axis=0) for j in range(k)])
    inertia = float(((x - centres[labels]) ** 2).sum())
    return labels, inertia


def kmeans(x: np.ndarray, k: int, seed: int = 0, n_init: int = 10, n_iter: int = 100) -> np.ndarray:
    """Deterministic k-means labels (N,) of the rows of ``x`` (N, D) into ``k`` non-empty clusters.

    ``n_init`` k-means++ restarts drawn from ``numpy.random.default_rng(seed)``; the run of lowest
    inertia wins (first one on ties). Labels are renumbered by first appearance, so the output does
    not depend on the arbitrary order of the centres.
    """
    x = np.asarray(x, dtype=np.float64)
    if not 1 <= k <= len(x):
        raise ValueError(f"need 1 <= k <= n_points, got k={k}, n_points={len(x)}")
    rng = np.random.default_rng(seed)
    best: tuple[np.ndarray, float] | None = None
    for _ in range(n_init):
        labels, inertia = _lloyd(x, _kmeans_pp_init(x, k, rng), n_iter)
        if best is None or inertia < best[1]:
            best = (labels, inertia)
    assert best is not None
    order = {lab: i for i, lab in enumerate(dict.fromkeys(best[0].tolist()))}
    return np.array([order[lab] for lab in best[0].tolist()], dtype=np.int64)


# --------------------------------------------------------------------------- NMF-MFCC


def nmf_mfcc_separate(
    mixture: np.ndarray,
    n_sources: int,
    sample_rate: int,
    n_components: int = 20,
    seed: int = 0,
    n_iter: int = 200,
    beta: Literal["kl", "euclidean"] = "kl",
    n_mfcc: int = 13,
    n_mels: int = 40,
    n_fft: int = 1022,
    hop: int = 256,
) -> np.ndarray:
    """Separate ``mixture`` into ``n_sources`` waveforms with NMF-MFCC (Spiertz & Gnann, 2009).

    1. ``|X|`` of the mixture STFT (front-end parameters: Hann, ``n_fft``, ``hop``, centred) is
       factorised by :func:`nmf` into ``n_components`` bases/activations (seeded by ``seed``).
    2. The MFCCs of the spectral bases (:func:`mfcc_of_bases`) are clustered into ``n_sources``
       groups by :func:`kmeans` (seeded by ``seed``, deterministic).
    3. Source ``s`` gets the Wiener-like soft mask ``M_s = sum_{k in s} w_k h_k / sum_k w_k h_k``;
       its waveform is ``istft(M_s * X)`` (mixture phase). The masks sum to 1, so the estimates
       sum to the (STFT-resynthesised) mixture.

    The order of the returned sources is arbitrary (cluster order by first NMF component): score
    them with :func:`evaluate_permuted` (best mean-SDR assignment), see the module docstring.

    Returns
    -------
    np.ndarray:
        float64 array (n_sources, len(mixture)).
    """
    x = as_waveform(mixture, "mixture")
    if not 1 <= n_sources <= n_components:
        raise ValueError(f"need 1 <= n_sources <= n_components, got {n_sources}, {n_components}")
    cfg = _config(sample_rate, n_fft, hop, len(x))
    spec = _mixture_stft(x, cfg)
    w, h = nmf(np.abs(spec), n_components, n_iter=n_iter, beta=beta, seed=seed)
    labels = kmeans(mfcc_of_bases(w, sample_rate, n_fft, n_mfcc, n_mels), n_sources, seed=seed)
    parts = np.stack([w[:, labels == s] @ h[labels == s] for s in range(n_sources)])
    masks = parts / (parts.sum(axis=0, keepdims=True) + _EPS)
    return _masked_istft(masks, spec, cfg)


# --------------------------------------------------------------------------- RPCA


def _svt(m: np.ndarray, tau: float) -> np.ndarray:
    """Singular value thresholding: ``U max(S - tau, 0) V^T``."""
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    keep = s > tau
    return (u[:, keep] * (s[keep] - tau)) @ vt[keep]


def _shrink(m: np.ndarray, tau: float) -> np.ndarray:
    """Elementwise soft thresholding."""
    return np.sign(m) * np.maximum(np.abs(m) - tau, 0.0)


def rpca(
    d: np.ndarray, lam: float | None = None, max_iter: int = 100, tol: float = 1e-7
) -> tuple[np.ndarray, np.ndarray, int]:
    """Principal component pursuit ``min |L|_* + lam |S|_1  s.t.  L + S = d`` by inexact ALM.

    Algorithm 5 of Lin, Chen & Ma (2010) with their constants: ``Y0 = d / max(|d|_2, |d|_inf /
    lam)``, ``mu0 = 1.25 / |d|_2``, ``rho = 1.5``, ``mu <= 1e7 mu0``; stops when
    ``|d - L - S|_F / |d|_F < tol`` or after ``max_iter`` iterations. ``lam`` defaults to
    ``1 / sqrt(max(d.shape))`` (Candes et al.; Huang et al. use this value).

    Returns
    -------
    (low_rank, sparse, n_iter):
        the two parts, same shape as ``d``, and the number of iterations run.
    """
    d = np.asarray(d, dtype=np.float64)
    if lam is None:
        lam = 1.0 / np.sqrt(max(d.shape))
    norm_fro = np.linalg.norm(d)
    if norm_fro == 0:
        return np.zeros_like(d), np.zeros_like(d), 0
    norm_two = np.linalg.norm(d, 2)
    y = d / max(norm_two, np.abs(d).max() / lam)
    mu, rho = 1.25 / norm_two, 1.5
    mu_max = mu * 1e7
    low, sparse = np.zeros_like(d), np.zeros_like(d)
    it = 0
    for it in range(1, max_iter + 1):
        low = _svt(d - sparse + y / mu, 1.0 / mu)
        sparse = _shrink(d - low + y / mu, lam / mu)
        resid = d - low - sparse
        y += mu * resid
        mu = min(mu * rho, mu_max)
        if np.linalg.norm(resid) / norm_fro < tol:
            break
    return low, sparse, it


def rpca_separate(
    mixture: np.ndarray,
    sample_rate: int,
    lam: float | None = None,
    max_iter: int = 100,
    tol: float = 1e-7,
    mask: Literal["binary", "soft"] = "binary",
    gain: float = 1.0,
    n_fft: int = 1022,
    hop: int = 256,
) -> np.ndarray:
    """Separate ``mixture`` into a sparse and a low-rank part with RPCA (Huang et al., 2012).

    :func:`rpca` (inexact ALM; ``lam`` defaults to ``1/sqrt(max(F, T))``) splits the mixture
    magnitude ``|X|`` (front-end STFT: Hann, ``n_fft``, ``hop``, centred) into low-rank ``L`` and
    sparse ``S``. Masks on the complex mixture STFT (mixture phase):

    * ``mask="binary"`` (Huang et al.): ``M_sparse = 1[|S| > gain * |L|]``;
    * ``mask="soft"``: ``M_sparse = |S| / (|S| + |L|)`` (0 where both vanish);

    and ``M_lowrank = 1 - M_sparse`` in both cases, so the two estimates sum to the
    (STFT-resynthesised) mixture.

    Returns
    -------
    np.ndarray:
        float64 array (2, len(mixture)): row 0 the **sparse** estimate (transient / "voice"
        part), row 1 the **low-rank** estimate (repetitive / sustained "accompaniment" part).
        The method is not visually conditioned, so the evaluation must assign the two rows to the
        references by the permutation that maximises the mean SDR (:func:`evaluate_permuted`),
        i.e. RPCA is scored *with* permutation.
    """
    x = as_waveform(mixture, "mixture")
    cfg = _config(sample_rate, n_fft, hop, len(x))
    spec = _mixture_stft(x, cfg)
    low, sparse, _ = rpca(np.abs(spec), lam=lam, max_iter=max_iter, tol=tol)
    a_s, a_l = np.abs(sparse), np.abs(low)
    if mask == "binary":
        m_sparse = (a_s > gain * a_l).astype(np.float64)
    elif mask == "soft":
        m_sparse = np.where(a_s + a_l > 0, a_s / np.maximum(a_s + a_l, _EPS), 0.0)
    else:
        raise ValueError(f"mask must be 'binary' or 'soft', got {mask!r}")
    return _masked_istft(np.stack([m_sparse, 1.0 - m_sparse]), spec, cfg)


# --------------------------------------------------------------------------- evaluation


def evaluate_permuted(references: np.ndarray, estimates: np.ndarray) -> dict[str, Any] | None:
    """Score a mixture with the best assignment of estimates to references (max mean SDR).

    Every permutation ``p`` of the estimates is scored with :func:`avsep.evaluation.metrics.evaluate_mixture`
    (``estimates[p[j]]`` against ``references[j]``); the one with the highest mean SDR wins (the
    first in ``itertools.permutations`` order on ties). This is the protocol for the audio-only
    baselines (:func:`nmf_mfcc_separate`, :func:`rpca_separate`), whose outputs are unordered.

    Returns
    -------
    dict or None:
        ``evaluate_mixture``'s dict for the winning permutation plus ``"permutation"`` (tuple:
        the estimate index used for each reference); ``None`` when the mixture is skipped by the
        silence rule (which does not depend on the order).
    """
    est = np.asarray(estimates)
    best: dict[str, Any] | None = None
    for perm in itertools.permutations(range(est.shape[0])):
        row = evaluate_mixture(references, est[list(perm)])
        if row is None:
            return None
        if best is None or row["sdr"] > best["sdr"]:
            best = {**row, "permutation": perm}
    return best
