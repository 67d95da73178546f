"""Separation metrics: BSS Eval v3 (SDR/SIR/SAR) and the reference evaluation protocol.

:func:`bss_eval_sources` is a numpy/scipy re-implementation of
``mir_eval.separation.bss_eval_sources(reference, estimated, compute_permutation=False)``
(mir_eval 0.7, i.e. BSS Eval v3 with 512-tap time-invariant distortion filters).
Each estimate ``e_j`` is projected by least squares

* onto the span of the delayed versions (delays ``0..511``) of its own reference
  ``s_j``: ``P_j e_j = s_target`` (mir_eval's ``s_true + e_spat``), and
* onto the span of the delayed versions of *all* references: ``P e_j``,

and, with ``e_interf = P e_j - P_j e_j`` and ``e_artif = e_j - P e_j`` (``e_j``
zero-padded by 511 samples)::

    SDR = 10 log10(|s_target|^2 / |e_interf + e_artif|^2)
    SIR = 10 log10(|s_target|^2 / |e_interf|^2)
    SAR = 10 log10(|s_target + e_interf|^2 / |e_artif|^2)

As in mir_eval, the normal equations are formed in the frequency domain
(``scipy.fftpack`` FFTs of size ``2**ceil(log2(n_samples + 511))``): the Gram matrix
``G`` of the delayed references from their auto/cross-correlations, the
right-hand side from the reference/estimate correlations. They are solved with
``numpy.linalg.solve`` (LU), falling back to ``numpy.linalg.lstsq`` if ``G`` is
exactly singular; the filters are applied with ``scipy.signal.fftconvolve``'s
arithmetic; a denominator of exactly 0 gives ``+inf`` dB.

**Bitwise agreement.** Every floating-point operation is the one mir_eval performs,
on the same operands in the same layout, so with the same numpy/scipy/OpenBLAS the
results are identical to the last bit, not merely close. This matters: when the
references are nearly rank-deficient over 512 lags (e.g. steeply low-passed
signals, an estimate lying in their span), ``G`` is numerically singular and the
SIR/SAR are dominated by rounding -- an algebraically equivalent implementation
(real FFTs, one LU for all sources, products computed as one 2-D array) then
differs from mir_eval by up to tens of dB, as does mir_eval itself when the
input is perturbed by 1e-15. Consequences for the code below: complex spectra are
multiplied one 1-D pair at a time (numpy's SIMD complex multiply rounds the
elements of its vector body and of its scalar tail differently, so a 2-D or
broadcast product differs in the last bit), and the all-reference system is
solved once per estimate (LAPACK solves with two right-hand sides round
differently from two single-right-hand-side solves).

What is saved compared with mir_eval (which redoes everything per source):
each reference and estimate is Fourier-transformed once, the Gram matrix (and
its diagonal blocks, the single-reference Gram matrices) is built once per
mixture, the single-reference systems are solved in one batched call, each
reference spectrum for the filtering step is computed once, and the inverse
FFTs are batched.

Deliberate differences in behaviour (not in values):

* inputs must be 2-D (mir_eval also accepts 1-D); NaN/inf raise ``ValueError``;
* a source counts as silent when it is all zeros (mir_eval tests ``sum(x) == 0``,
  which also rejects e.g. a zero-mean square wave);
* with numpy >= 2, mir_eval 0.7 itself crashes (``AttributeError``) in the two
  corner cases it handles specially (zero denominator -> ``np.Inf``, e.g. every
  single-source call; singular ``G`` -> ``np.linalg.linalg.LinAlgError``); here
  they give ``+inf`` and the least-squares fallback.

:func:`evaluate_mixture` and :func:`aggregate` implement the evaluation protocol of
the Sound-of-Pixels / CLIPSep / HFRA reference code: a mixture is skipped (not
scored) when any reference or any estimate has ``sum(|x|) <= 1e-5``; the
per-mixture score is the mean over its sources; the reported score is the mean
over scored mixtures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import scipy.fft
import scipy.fftpack

__all__ = [
    "FILTER_LENGTH",
    "SKIP_EPS",
    "aggregate",
    "bss_eval_sources",
    "evaluate_mixture",
]

#: Length (taps) of the time-invariant distortion filters of BSS Eval v3.
FILTER_LENGTH = 512

#: Default silence threshold on ``sum(|x|)`` of the reference protocol.
SKIP_EPS = 1e-5


# --------------------------------------------------------------------------- validation


def _as_signals(x: Any, name: str) -> np.ndarray:
    """``x`` as a float64 array of shape (n_src, n_samples); ValueError otherwise."""
    arr = np.asarray(x)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(
            f"{name} must be a real-valued float array (float32/float64), got dtype {arr.dtype}"
        )
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must have shape (n_src, n_samples), got {arr.ndim}-D array "
            f"of shape {arr.shape}"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(
            f"{name} must have at least one source and one sample, got shape {arr.shape}"
        )
    return arr.astype(np.float64, copy=False)


def _check_pair(reference: Any, estimated: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate dtypes, shapes and finiteness of a reference/estimate pair."""
    ref = _as_signals(reference, "reference")
    est = _as_signals(estimated, "estimated")
    if ref.shape != est.shape:
        raise ValueError(
            "reference and estimated must have the same shape (n_src, n_samples), "
            f"got reference {ref.shape} and estimated {est.shape}"
        )
    for arr, name in ((est, "estimated"), (ref, "reference")):
        finite = np.isfinite(arr)
        if not finite.all():
            bad_src = np.flatnonzero(~finite.all(axis=1)).tolist()
            n_nan = int(np.isnan(arr).sum())
            n_inf = int(np.isinf(arr).sum())
            raise ValueError(
                f"{name} signal contains non-finite values ({n_nan} NaN, {n_inf} inf) "
                f"in source(s) {bad_src}"
            )
    return ref, est


# --------------------------------------------------------------------------- BSS Eval


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a^-1 b`` by LU (as mir_eval), min-norm least squares if ``a`` is singular."""
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(a, b, rcond=None)[0]


def _safe_db(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``10 log10(num / den)`` elementwise, ``+inf`` where ``den == 0`` (mir_eval's rule)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.inf)
    ok = den != 0
    with np.errstate(divide="ignore"):
        out[ok] = 10.0 * np.log10(num[ok] / den[ok])
    return out


def bss_eval_sources(
    reference: np.ndarray, estimated: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BSS Eval v3 SDR, SIR and SAR of each estimate against its own reference.

    Equivalent to ``mir_eval.separation.bss_eval_sources(reference, estimated,
    compute_permutation=False)[:3]`` (mir_eval 0.7): estimate ``j`` is scored
    against reference ``j``, no permutation search, 512-tap distortion filters.
    The arithmetic is mir_eval's, operation for operation, so the results are
    the same to the last bit when run with the same numpy/scipy (see the module
    docstring); only redundant work is removed.

    Parameters
    ----------
    reference:
        True sources, shape (n_src, n_samples), float32 or float64.
    estimated:
        Estimated sources, same shape; row ``j`` is the estimate of reference ``j``.

    Returns
    -------
    (sdr, sir, sar):
        float64 arrays of shape (n_src,), in dB (``+inf`` where a distortion
        energy is exactly 0).

    Raises
    ------
    ValueError
        On a non-2-D input, mismatched shapes, non-real data, NaN/inf values or an
        all-zero reference or estimate (the decomposition is undefined then;
        mir_eval raises too).
    """
    ref, est = _check_pair(reference, estimated)
    for arr, name in ((ref, "reference"), (est, "estimated")):
        silent = ~np.any(arr, axis=1)
        if silent.any():
            raise ValueError(
                f"{name} source(s) {np.flatnonzero(silent).tolist()} are all zeros; "
                "BSS Eval needs non-silent references and estimates "
                "(use evaluate_mixture to skip such mixtures)"
            )

    nsrc, nsampl = ref.shape
    flen = FILTER_LENGTH
    n_out = nsampl + flen - 1  # signals are zero-padded by flen - 1 samples
    n_fft = int(2 ** np.ceil(np.log2(nsampl + flen - 1.0)))  # mir_eval's FFT size

    ref_pad = np.zeros((nsrc, n_out))
    ref_pad[:, :nsampl] = ref
    est_pad = np.zeros((nsrc, n_out))
    est_pad[:, :nsampl] = est

    # One FFT per reference and per estimate (mir_eval: nsrc + 3 per source).
    ref_f = scipy.fftpack.fft(ref_pad, n=n_fft, axis=1)
    est_f = scipy.fftpack.fft(est_pad, n=n_fft, axis=1)

    lags = np.arange(flen)
    # Toeplitz block of lagged inner products: T[a, b] = xcorr[(b - a) mod n_fft]
    toep_idx = (lags[None, :] - lags[:, None]) % n_fft
    # <s_i delayed by a, e> = xcorr(s_i, e)[(-a) mod n_fft]
    neg_idx = (-lags) % n_fft

    # Gram matrix of all delayed references, shared by every source. mir_eval's
    # loop leaves block (a, b) = T_ab for a > b, T_ba^T for a < b and T_aa^T on the
    # diagonal, with T_ab from real(ifft(S_a conj(S_b))); reproduced exactly.
    gram = np.empty((nsrc * flen, nsrc * flen))
    # rhs[i, j]: inner products of the delayed reference i with estimate j
    rhs = np.empty((nsrc, nsrc, flen))
    # (Spectra are multiplied one 1-D pair at a time, as in mir_eval: numpy's SIMD
    # complex multiply rounds the elements it handles in its vector body and in its
    # scalar tail differently, so a 2-D or broadcast product is not bitwise equal.)
    for a in range(nsrc):
        prods = np.stack([ref_f[a] * np.conj(ref_f[b]) for b in range(a + 1)])
        xc = np.real(scipy.fftpack.ifft(prods, axis=1))
        for b in range(a + 1):
            block = xc[b][toep_idx]
            rows, cols = slice(a * flen, (a + 1) * flen), slice(b * flen, (b + 1) * flen)
            if a == b:
                gram[rows, rows] = block.T
            else:
                gram[rows, cols] = block
                gram[cols, rows] = block.T
        prods = np.stack([ref_f[a] * np.conj(est_f[j]) for j in range(nsrc)])
        xe = np.real(scipy.fftpack.ifft(prods, axis=1))
        rhs[a] = xe[:, neg_idx]

    # Distortion filters. Own reference: the diagonal blocks, one batched solve.
    src = np.arange(nsrc)
    own_gram = np.stack([gram[j * flen : (j + 1) * flen, j * flen : (j + 1) * flen] for j in src])
    try:
        c_own = np.linalg.solve(own_gram, rhs[src, src][..., None])[..., 0]
    except np.linalg.LinAlgError:  # some block exactly singular: one by one, with fallback
        c_own = np.stack([_solve(own_gram[j], rhs[src[j], src[j]]) for j in src])
    # All references: one system per estimate. (One LU for all right-hand sides
    # would be cheaper, but LAPACK then rounds differently from mir_eval's
    # single-right-hand-side solves; see the module docstring.)
    if nsrc == 1:
        c_all = c_own.reshape(1, 1, flen)
    else:
        c_all = np.stack([_solve(gram, rhs[:, j].reshape(-1)) for j in src]).reshape(nsrc, nsrc, flen)

    # Filtering (scipy.signal.fftconvolve's arithmetic, reference spectra computed once).
    conv_fft = scipy.fft.next_fast_len(flen + n_out - 1, True)
    ref_sp = scipy.fft.rfftn(ref_pad, [conv_fft], axes=[1])

    def _filter(filters: np.ndarray, which: np.ndarray) -> np.ndarray:
        """Row k: ``filters[k]`` convolved with reference ``which[k]``, first n_out samples."""
        sp = scipy.fft.rfftn(filters, [conv_fft], axes=[1])
        prods = np.stack([sp[k] * ref_sp[i] for k, i in enumerate(which)])
        return scipy.fft.irfftn(prods, [conv_fft], axes=[1])[:, :n_out]

    proj_own = _filter(c_own, src)  # s_target = s_true + e_spat
    parts = _filter(c_all.reshape(nsrc * nsrc, flen), np.tile(src, nsrc)).reshape(nsrc, nsrc, n_out)
    proj_all = np.zeros((nsrc, n_out))
    for i in src:  # same summation order as mir_eval
        proj_all += parts[:, i]

    # mir_eval's decomposition and energy ratios, term by term
    s_true = np.zeros((nsrc, n_out))
    s_true[:, :nsampl] = ref
    e_spat = proj_own - s_true
    e_interf = proj_all - s_true - e_spat
    e_artif = -s_true - e_spat - e_interf
    e_artif[:, :nsampl] += est
    s_filt = s_true + e_spat
    sdr = _safe_db(np.sum(s_filt**2, axis=1), np.sum((e_interf + e_artif) ** 2, axis=1))
    sir = _safe_db(np.sum(s_filt**2, axis=1), np.sum(e_interf**2, axis=1))
    sar = _safe_db(np.sum((s_filt + e_interf) ** 2, axis=1), np.sum(e_artif**2, axis=1))
    return sdr, sir, sar


# --------------------------------------------------------------------------- protocol


def evaluate_mixture(
    references: np.ndarray, estimates: np.ndarray, eps: float = SKIP_EPS
) -> dict[str, Any] | None:
    """Score one mixture with the Sound-of-Pixels / CLIPSep / HFRA protocol.

    Parameters
    ----------
    references:
        Ground-truth source waveforms, shape (n_src, n_samples), float32/float64.
    estimates:
        Separated waveforms, same shape, row ``j`` estimating reference ``j``.
    eps:
        Silence threshold: the mixture is skipped when any reference or any
        estimate has ``sum(|x|) <= eps``.

    Returns
    -------
    dict or None:
        ``None`` when the mixture is skipped (the caller counts it). Otherwise
        ``{"sdr", "sir", "sar"}``: floats, means over the sources, and
        ``{"sdr_src", "sir_src", "sar_src"}``: float64 arrays of shape (n_src,),
        from :func:`bss_eval_sources` (no permutation).

    Raises
    ------
    ValueError
        On bad shapes/dtypes or NaN/inf in the estimates or references (checked
        before the silence rule, so a NaN estimate is never silently skipped).
    """
    ref, est = _check_pair(references, estimates)
    if np.any(np.sum(np.abs(ref), axis=1) <= eps) or np.any(
        np.sum(np.abs(est), axis=1) <= eps
    ):
        return None
    sdr, sir, sar = bss_eval_sources(ref, est)
    return {
        "sdr": float(np.mean(sdr)),
        "sir": float(np.mean(sir)),
        "sar": float(np.mean(sar)),
        "sdr_src": sdr,
        "sir_src": sir,
        "sar_src": sar,
    }


def aggregate(rows: Iterable[Mapping[str, Any] | None]) -> dict[str, float | int]:
    """Mean SDR/SIR/SAR over scored mixtures, with scored/skipped counts.

    Parameters
    ----------
    rows:
        Results of :func:`evaluate_mixture`, one per mixture; ``None`` marks a
        skipped mixture.

    Returns
    -------
    dict:
        ``{"sdr", "sir", "sar"}``: means of the per-mixture values over the scored
        mixtures (NaN when none was scored), ``"n_scored"`` and ``"n_skipped"``.
    """
    sums = {"sdr": 0.0, "sir": 0.0, "sar": 0.0}
    n_scored = 0
    n_skipped = 0
    for row in rows:
        if row is None:
            n_skipped += 1
            continue
        n_scored += 1
        for key in sums:
            sums[key] += float(row[key])
    out: dict[str, float | int] = {
        key: (total / n_scored if n_scored else math.nan) for key, total in sums.items()
    }
    out["n_scored"] = n_scored
    out["n_skipped"] = n_skipped
    return out
