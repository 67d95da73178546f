"""Tests of the audio-only baselines (avsep.evaluation.baselines): NMF-MFCC and RPCA on made mixtures.

SDR improvement = SDR(estimate, ref) - SDR(mixture, ref), per source, with the best (max mean
SDR) assignment of estimates to references, measured with avsep.evaluation.metrics.bss_eval_sources.
"""

from __future__ import annotations

import numpy as np
import pytest

from avsep.evaluation.baselines import evaluate_permuted, kmeans, nmf, nmf_mfcc_separate, rpca, rpca_separate
from avsep.evaluation.metrics import bss_eval_sources

SR = 11025
N = 3 * SR


def _gate(spans: list[tuple[float, float]]) -> np.ndarray:
    """0/1 envelope on the given (start, end) seconds, edges smoothed over 40 ms."""
    t = np.arange(N) / SR
    env = np.zeros(N)
    for start, end in spans:
        env[(t >= start) & (t < end)] = 1.0
    kernel = np.hanning(441)
    return np.convolve(env, kernel / kernel.sum(), mode="same")


def _two_tones() -> np.ndarray:
    """(2, N): a low harmonic tone (196 Hz, 7 partials) and a high pure tone (1318.5 Hz), overlapping."""
    t = np.arange(N) / SR
    low = sum(np.sin(2 * np.pi * 196.0 * k * t) / k for k in range(1, 8))
    high = np.sin(2 * np.pi * 1318.5 * t)
    return 0.3 * np.stack([low * _gate([(0.0, 1.2), (1.8, 3.0)]), high * _gate([(0.6, 2.4)])])


def _tone_and_blips() -> np.ndarray:
    """(2, N): [sparse short tone blips at random pitches, sustained 110 Hz harmonic tone].

    The sparse source is made of 60 ms Hann-windowed sine blips (one every 150 ms, 300-3000 Hz):
    few time-frequency bins each and different spectra, i.e. sparse and high-rank. Broadband clicks
    or noise bursts are *not* used: an impulse train has a flat magnitude spectrum in every frame it
    touches (rank one), so RPCA legitimately puts it in the low-rank part.
    """
    rng = np.random.default_rng(0)
    t = np.arange(N) / SR
    tone = 0.3 * sum(np.sin(2 * np.pi * 110.0 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 11))
    blips = np.zeros(N)
    length = int(0.06 * SR)
    for start in np.arange(0.05, 2.9, 0.15):
        i = int(start * SR)
        f = rng.uniform(300.0, 3000.0)
        blips[i : i + length] += np.sin(2 * np.pi * f * np.arange(length) / SR) * np.hanning(length)
    return np.stack([blips, tone])


def _improvement(refs: np.ndarray, est: np.ndarray) -> np.ndarray:
    """Per-source SDR improvement over the unprocessed mixture, best permutation."""
    mix = refs.sum(axis=0)
    base = bss_eval_sources(refs, np.stack([mix] * len(refs)))[0]
    scored = evaluate_permuted(refs, est)
    assert scored is not None
    return scored["sdr_src"] - base


@pytest.fixture(scope="module")
def nmf_case() -> tuple[np.ndarray, np.ndarray]:
    refs = _two_tones()
    mix = refs.sum(axis=0)
    return refs, nmf_mfcc_separate(mix, 2, SR, seed=0)


@pytest.fixture(scope="module")
def rpca_case() -> tuple[np.ndarray, np.ndarray]:
    refs = _tone_and_blips()
    mix = refs.sum(axis=0)
    return refs, rpca_separate(mix, SR)


def test_nmf_mfcc_shape_and_determinism(nmf_case: tuple[np.ndarray, np.ndarray]) -> None:
    refs, est = nmf_case
    assert est.shape == refs.shape and est.dtype == np.float64
    short = refs.sum(axis=0)[:SR]
    first = nmf_mfcc_separate(short, 2, SR, n_iter=50, seed=0)
    assert np.array_equal(first, nmf_mfcc_separate(short, 2, SR, n_iter=50, seed=0))
    assert not np.array_equal(first, nmf_mfcc_separate(short, 2, SR, n_iter=50, seed=1))
    # soft masks sum to one: the estimates add up to the resynthesised mixture
    np.testing.assert_allclose(est.sum(axis=0), refs.sum(axis=0), atol=1e-3)


def test_nmf_mfcc_improves_sdr(nmf_case: tuple[np.ndarray, np.ndarray]) -> None:
    refs, est = nmf_case
    gain = _improvement(refs, est)
    print("NMF-MFCC SDR improvement (dB):", gain)
    assert np.all(gain > 3.0), gain


def test_nmf_mfcc_other_source_counts() -> None:
    refs = _two_tones()
    out = nmf_mfcc_separate(refs.sum(axis=0)[: SR], 3, SR, n_components=6, n_iter=30, seed=1)
    assert out.shape == (3, SR)
    assert np.all(np.isfinite(out))
    with pytest.raises(ValueError):
        nmf_mfcc_separate(refs.sum(axis=0), 5, SR, n_components=4)


def test_rpca_shape_order_and_determinism(rpca_case: tuple[np.ndarray, np.ndarray]) -> None:
    refs, est = rpca_case
    assert est.shape == (2, N) and est.dtype == np.float64
    short = refs.sum(axis=0)[:SR]
    assert np.array_equal(rpca_separate(short, SR, max_iter=20), rpca_separate(short, SR, max_iter=20))
    scored = evaluate_permuted(refs, est)
    assert scored is not None
    # row 0 = sparse estimate (the blips), row 1 = low-rank estimate (the sustained tone)
    assert scored["permutation"] == (0, 1)


def test_rpca_improves_sdr(rpca_case: tuple[np.ndarray, np.ndarray]) -> None:
    refs, est = rpca_case
    gain = _improvement(refs, est)
    print("RPCA (binary mask) SDR improvement (dB):", gain)
    assert np.all(gain > 3.0), gain


def test_rpca_soft_mask_improves_sdr() -> None:
    refs = _tone_and_blips()[:, : 2 * SR]
    est = rpca_separate(refs.sum(axis=0), SR, mask="soft")
    gain = _improvement(refs, est)
    print("RPCA (soft mask) SDR improvement (dB):", gain)
    assert np.all(gain > 3.0), gain


def test_rpca_recovers_low_rank_plus_sparse() -> None:
    rng = np.random.default_rng(0)
    low = rng.standard_normal((60, 3)) @ rng.standard_normal((3, 50))
    sparse = np.where(rng.random((60, 50)) < 0.05, 10.0 * rng.standard_normal((60, 50)), 0.0)
    l_hat, s_hat, _ = rpca(low + sparse, max_iter=500)
    assert np.linalg.norm(l_hat - low) / np.linalg.norm(low) < 1e-3
    assert np.linalg.norm(s_hat - sparse) / np.linalg.norm(sparse) < 1e-3


def test_nmf_and_kmeans_units() -> None:
    rng = np.random.default_rng(0)
    v = rng.random((30, 4)) @ rng.random((4, 40))
    for beta in ("kl", "euclidean"):
        w, h = nmf(v, 4, n_iter=500, beta=beta, seed=3)  # type: ignore[arg-type]
        np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-9)
        assert np.linalg.norm(w @ h - v) / np.linalg.norm(v) < 0.05
    pts = np.concatenate([rng.normal(0, 0.1, (10, 2)), rng.normal(5, 0.1, (10, 2))])
    labels = kmeans(pts[::-1], 2, seed=0)
    assert labels.tolist() == [0] * 10 + [1] * 10
