"""The fast BSS Eval method (avsep.evaluation.metrics, ``method="fast"``) against mir_eval 0.7 and the exact method.

The fast method returns its own result only where its rounding-error estimate is
below 1e-4 dB and the references' Gram matrix is not numerically singular, and
otherwise recomputes the mixture with the exact (bitwise mir_eval) method; these
tests check both sides of that decision. mir_eval is a test-only dependency; its
import-time DeprecationWarnings are silenced.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import scipy.signal
from test_metrics import _estimates  # the exact metrics' tests' signals
from test_metrics import _references as _made_references

from avsep.evaluation import metrics, toeplitz
from avsep.evaluation.metrics import (
    aggregate,
    bss_eval_batch,
    bss_eval_sources,
    bss_eval_sources_exact,
    evaluate_batch,
    evaluate_mixture,
)

TOL_DB = 0.01


def _fast(ref: np.ndarray, est: np.ndarray) -> np.ndarray:
    """The fast method's own result; fails the test if it would fall back to the exact one."""
    out, info = metrics._fast_scores(np.asarray(ref, np.float64), np.asarray(est, np.float64))
    assert out is not None, f"fast method fell back: {info}"
    np.testing.assert_array_equal(np.stack(bss_eval_sources(ref, est)), out)  # the public default is that result
    return out


def _references(rng: np.random.Generator, n_src: int, n: int) -> np.ndarray:
    """The exact metrics' tests' references with a resonance as the fourth kind (the 4-source cases)."""
    return _made_references(rng, n_src, n, kinds=4)


def _mixture(seed: int, n_src: int = 2, n: int = 8000, leak: float = 0.2, noise: float = 0.1):
    rng = np.random.default_rng(seed)
    ref = _references(rng, n_src, n)
    return ref, _estimates(rng, ref, leak, noise)


# --------------------------------------------------------------------------- agreement with mir_eval


@pytest.mark.parametrize(
    ("n", "leak", "noise", "seed"),
    [(8000, 0.1, 0.01, 0), (16000, 0.5, 0.3, 1), (20000, 0.05, 1.0, 2), (12000, 1.0, 0.05, 3)],
)
def test_two_sources_match_mir_eval(mir_ref, n: int, leak: float, noise: float, seed: int) -> None:
    ref, est = _mixture(seed, 2, n, leak, noise)
    expected = mir_ref(ref, est)
    assert np.all(np.isfinite(expected))
    np.testing.assert_allclose(_fast(ref, est), expected, rtol=0, atol=TOL_DB)


def test_full_length_clip_matches_mir_eval(mir_ref) -> None:
    """One 65,535-sample mixture (the benchmark's length), float32 like the evaluation's waveforms."""
    ref, est = _mixture(4, 2, 65535, 0.2, 0.1)
    ref, est = ref.astype(np.float32), est.astype(np.float32)
    np.testing.assert_allclose(_fast(ref, est), mir_ref(ref, est), rtol=0, atol=TOL_DB)


@pytest.mark.parametrize("n_src", [3, 4])
def test_three_and_four_sources_match_mir_eval(mir_ref, n_src: int) -> None:
    ref, est = _mixture(20 + n_src, n_src, 10000, 0.3, 0.05)
    np.testing.assert_allclose(_fast(ref, est), mir_ref(ref, est), rtol=0, atol=TOL_DB)


def test_permuted_estimates_match_mir_eval(mir_ref) -> None:
    """Estimates of the other source: SDR and SIR very negative, still no permutation."""
    rng = np.random.default_rng(30)
    ref = _references(rng, 2, 12000)
    est = ref[::-1] + 0.05 * rng.standard_normal(ref.shape)
    expected = mir_ref(ref, est)
    assert np.all(expected[0] < -10) and np.all(expected[1] < -10)
    np.testing.assert_allclose(_fast(ref, est), expected, rtol=0, atol=TOL_DB)


def test_near_silent_sources_match_mir_eval(mir_ref) -> None:
    """A source at 1e-4 of the other's amplitude (still above the protocol's silence threshold)."""
    ref, est = _mixture(31, 2, 12000, 0.1, 0.05)
    ref[1] *= 1e-4
    est[1] *= 1e-4
    est[0] += 1e-4 * ref[1]
    row = evaluate_mixture(ref, est)
    assert row is not None
    expected = mir_ref(ref, est)
    np.testing.assert_allclose(_fast(ref, est), expected, rtol=0, atol=TOL_DB)
    np.testing.assert_allclose(np.stack([row["sdr_src"], row["sir_src"], row["sar_src"]]), expected, atol=TOL_DB)


def test_scores_do_not_depend_on_the_signals_scales() -> None:
    """Each reference and estimate may be scaled freely, down to 1e-150 and up to 1e120 (no under/overflow)."""
    ref, est = _mixture(32, 2, 8000)
    scale_ref = np.array([[1e-150], [3.0]])
    scale_est = np.array([[1e120], [1e-7]])
    np.testing.assert_allclose(_fast(ref * scale_ref, est * scale_est), _fast(ref, est), rtol=0, atol=1e-9)


@pytest.mark.parametrize("n", [300, 1000, 3000])
def test_short_signals_match_mir_eval(mir_ref, n: int) -> None:
    """Signals shorter than the filters, and single-segment correlations."""
    ref, est = _mixture(33, 2, n, 0.2, 0.1)
    np.testing.assert_allclose(np.stack(bss_eval_sources(ref, est)), mir_ref(ref, est), rtol=0, atol=TOL_DB)


def test_single_source() -> None:
    """One source: SIR is +inf, SDR equals SAR, as with the exact method."""
    rng = np.random.default_rng(34)
    ref = _references(rng, 1, 6000)
    est = ref + 0.1 * rng.standard_normal(ref.shape)
    got = _fast(ref, est)
    assert np.isinf(got[1, 0]) and got[1, 0] > 0
    assert got[0, 0] == pytest.approx(got[2, 0])
    np.testing.assert_allclose(got, np.stack(bss_eval_sources_exact(ref, est)), rtol=0, atol=TOL_DB)


# --------------------------------------------------------------------------- fallback to the exact method


def _assert_falls_back(ref: np.ndarray, est: np.ndarray, reason: str) -> None:
    out, info = metrics._fast_scores(ref, est)
    assert out is None and reason in info["reason"], info
    # the public fast method then returns the exact method's result, to the last bit
    np.testing.assert_array_equal(np.stack(bss_eval_sources(ref, est)), np.stack(bss_eval_sources_exact(ref, est)))


def test_numerically_singular_references_fall_back_to_exact(mir_ref) -> None:
    """Steeply low-passed references: mir_eval's SIR/SAR are rounding noise; only the exact method reproduces them."""
    rng = np.random.default_rng(12)
    b, a = scipy.signal.butter(8, 0.1)
    ref = scipy.signal.lfilter(b, a, rng.standard_normal((2, 16000)))
    est = ref + 0.2 * ref[::-1] + 1e-3 * rng.standard_normal((2, 16000))
    # Found by the Levinson pivot (<= 0: "not numerically positive definite") or, where the pivot stays a rounding
    # error above 0, by the inverse-eigenvalue probes ("numerically singular"); which one depends on how numba
    # vectorised the kernels (fastmath reassociation): measured both ways on one machine. Either falls back.
    _assert_falls_back(ref, est, "Gram matrix of the references")
    np.testing.assert_allclose(np.stack(bss_eval_sources(ref, est)), mir_ref(ref, est), rtol=0, atol=TOL_DB)


@pytest.mark.parametrize("taps", [[1.0], [0.5, -0.3, 0.1]], ids=["duplicate", "filtered-copy"])
def test_dependent_references_fall_back_to_exact(taps: list[float]) -> None:
    """A reference that is (a short filter of) another: the Gram matrix is singular.

    (The first reference ends in silence, so that cutting the filtered copy to the clip's
    length loses nothing; otherwise the cut tail makes the copy independent.)
    """
    rng = np.random.default_rng(35)
    ref = _references(rng, 2, 6000)
    ref[0, -8:] = 0.0
    ref[1] = scipy.signal.lfilter(taps, [1.0], ref[0])
    est = ref + 0.1 * rng.standard_normal(ref.shape)
    out, info = metrics._fast_scores(ref, est)
    assert out is None, info
    assert "singular" in info["reason"] or "positive definite" in info["reason"], info
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_array_equal(np.stack(bss_eval_sources(ref, est)), np.stack(bss_eval_sources_exact(ref, est)))


def test_near_perfect_estimates_fall_back_to_exact() -> None:
    """SAR ~140 dB: |e|^2 - |P e|^2 cancels in the fast formulas, so the exact filtering is used."""
    rng = np.random.default_rng(36)
    ref = _references(rng, 2, 6000)
    est = ref + 1e-7 * rng.standard_normal(ref.shape)
    _assert_falls_back(ref, est, "rounding")
    assert np.all(bss_eval_sources(ref, est)[2] > 100.0)


# --------------------------------------------------------------------------- protocol and batches


def test_silent_reference_or_estimate() -> None:
    """Silent sources: evaluate_mixture/evaluate_batch skip the mixture, bss_eval_* raise (naming the mixture)."""
    ref, est = _mixture(40, 2, 4000)
    silent_ref = ref.copy()
    silent_ref[1] = 0.0
    silent_est = est.copy()
    silent_est[0] = 0.0
    assert evaluate_mixture(silent_ref, est) is None
    assert evaluate_mixture(ref, silent_est) is None
    with pytest.raises(ValueError, match="reference source"):
        bss_eval_sources(silent_ref, est)
    with pytest.raises(ValueError, match=r"mixture 1: estimated source\(s\) \[0\]"):
        bss_eval_batch([ref, ref], [est, silent_est])
    rows = evaluate_batch(np.stack([ref, silent_ref, ref]), np.stack([est, est, silent_est]))
    assert rows[0] is not None and rows[1] is None and rows[2] is None
    out = aggregate(rows)
    assert (out["n_scored"], out["n_skipped"]) == (1, 2)
    assert out["sdr"] == pytest.approx(rows[0]["sdr"])


def test_batch_equals_per_mixture() -> None:
    mixtures = [_mixture(50 + i, 2, 6000, 0.1 * (i + 1), 0.05) for i in range(4)]
    refs = np.stack([m[0] for m in mixtures]).astype(np.float32)
    ests = np.stack([m[1] for m in mixtures]).astype(np.float32)
    for method in ("fast", "exact"):
        sdr, sir, sar = bss_eval_batch(refs, ests, method=method)
        assert sdr.shape == sir.shape == sar.shape == (4, 2)
        for i in range(4):
            expected = bss_eval_sources(refs[i], ests[i], method=method)
            for got, exp in zip((sdr[i], sir[i], sar[i]), expected):
                np.testing.assert_array_equal(got, exp)
    # sequences of mixtures of different lengths
    short = _mixture(60, 2, 3000)
    sdr, _, _ = bss_eval_batch([mixtures[0][0], short[0]], [mixtures[0][1], short[1]])
    np.testing.assert_array_equal(sdr[1], bss_eval_sources(*short)[0])
    rows = evaluate_batch(refs, ests)
    for i, row in enumerate(rows):
        expected_row = evaluate_mixture(refs[i], ests[i])
        assert row is not None and expected_row is not None and row.keys() == expected_row.keys()
        for key, value in expected_row.items():
            np.testing.assert_array_equal(row[key], value)


def test_batch_and_method_validation() -> None:
    ref, est = _mixture(61, 2, 3000)
    bad = est.copy()
    bad[1, 7] = np.nan
    with pytest.raises(ValueError, match="same number of mixtures"):
        bss_eval_batch([ref, ref], [est])
    with pytest.raises(ValueError, match="mixture 1: estimated signal contains non-finite"):
        bss_eval_batch([ref, ref], [est, bad])
    with pytest.raises(ValueError, match="mixture 1: every mixture must have the same number of sources"):
        bss_eval_batch([ref, ref[:1]], [est, est[:1]])
    with pytest.raises(ValueError, match="mixture 0: .*non-finite"):
        evaluate_batch([ref], [bad])
    for call in (
        lambda: bss_eval_sources(ref, est, method="mir"),
        lambda: evaluate_mixture(ref, est, method="mir"),
        lambda: bss_eval_batch([ref], [est], method="mir"),
    ):
        with pytest.raises(ValueError, match="method must be one of"):
            call()
    empty = bss_eval_batch([], [])
    assert all(a.size == 0 for a in empty)


# --------------------------------------------------------------------------- threads and fallbacks of the machinery


def test_results_do_not_depend_on_thread_settings() -> None:
    """BLAS with 1 and 2 threads, torch with 2 threads, and two Python threads at once: identical results.

    (Batched torch.linalg.solve/lu_factor returned garbage pivots with several torch threads on
    these machines; the fast method uses neither torch nor multithreaded BLAS, and this guards that.)
    """
    threadpoolctl = pytest.importorskip("threadpoolctl")
    torch = pytest.importorskip("torch")
    mixtures = [_mixture(70 + i, 2 + i % 2, 8000) for i in range(4)]
    with threadpoolctl.threadpool_limits(limits=1):
        single = [np.stack(bss_eval_sources(r, e)) for r, e in mixtures]
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with threadpoolctl.threadpool_limits(limits=2):
            multi = [np.stack(bss_eval_sources(r, e)) for r, e in mixtures]
            results: dict[int, list[np.ndarray]] = {}

            def worker(k: int) -> None:
                results[k] = [np.stack(bss_eval_sources(r, e)) for r, e in mixtures]

            threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        torch.set_num_threads(old)
    for k in range(len(mixtures)):
        np.testing.assert_array_equal(multi[k], single[k])
        np.testing.assert_array_equal(results[0][k], single[k])
        np.testing.assert_array_equal(results[1][k], single[k])


def test_dense_solver_without_numba_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without numba the block-Toeplitz systems are solved by dense Cholesky: same results to ~1e-9 dB."""
    mixtures = [_mixture(80, 2, 6000), _mixture(82, 1, 6000)]
    with_numba = [_fast(r, e) for r, e in mixtures]
    for name in ("_block_levinson_kernel", "_block_levinson_2_kernel", "_levinson_kernel", "_cross_spectra_kernel"):
        monkeypatch.setattr(toeplitz, name, None)
    for (r, e), expected in zip(mixtures, with_numba):
        np.testing.assert_allclose(_fast(r, e), expected, rtol=0, atol=1e-6)
