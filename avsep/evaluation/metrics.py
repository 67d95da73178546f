"""Separation metrics: BSS Eval v3 (SDR/SIR/SAR) and the reference evaluation protocol.

BSS Eval v3 is ``mir_eval.separation.bss_eval_sources(reference, estimated,
compute_permutation=False)`` of mir_eval 0.7 (512-tap time-invariant distortion
filters). Each estimate ``e_j`` is projected by least squares

* onto the span of the delayed versions (delays ``0..511``) of its own reference
  ``s_j``: ``P_j e_j = s_target`` (mir_eval's ``s_true + e_spat``), and
* onto the span of the delayed versions of *all* references: ``P e_j``,

and, with ``e_interf = P e_j - P_j e_j`` and ``e_artif = e_j - P e_j`` (``e_j``
zero-padded by 511 samples)::

    SDR = 10 log10(|s_target|^2 / |e_interf + e_artif|^2)
    SIR = 10 log10(|s_target|^2 / |e_interf|^2)
    SAR = 10 log10(|s_target + e_interf|^2 / |e_artif|^2)

Two implementations are provided; :func:`bss_eval_sources`, :func:`bss_eval_batch`,
:func:`evaluate_mixture` and :func:`evaluate_batch` take ``method="fast"`` (the
default) or ``method="exact"``.

**Fast** (the default; ~30x faster than mir_eval for two sources of 65,535 samples:
~5-7 ms instead of ~200 ms on one core). The projections are orthogonal, so the
three energies follow from two quadratic forms and ``|e_j|^2``, with no filtered
signals::

    |s_target|^2 = |P_j e_j|^2 = b_jj' G_jj^-1 b_jj      |e_interf|^2 = |P e_j|^2 - |P_j e_j|^2
    |P e_j|^2 = b_j' G^-1 b_j                           |e_artif|^2 = |e_j|^2 - |P e_j|^2

(``b_j``: inner products of the delayed references with ``e_j``; ``G``: Gram matrix
of the delayed references, ``G_jj`` its diagonal block for reference ``j``). ``G``
is symmetric positive definite and block Toeplitz, so it is given by the
auto/cross-correlations of the references at lags ``0..511``, and ``b`` by the
reference/estimate correlations at those lags. The correlations come from real
FFTs of short segments (only 512 lags are needed: no transform of the whole padded
signal, no full-length inverse transform); the all-reference system is solved by
the block Levinson recursion, O(n_src^3 512^2) operations instead of
O((512 n_src)^3), once for all estimates, and the single-reference (Toeplitz)
systems by the scalar recursion (:mod:`avsep.evaluation.toeplitz`). The kernels are compiled with numba (installed
with librosa, a dependency; the first call of a fresh installation compiles them
in ~10 s, then numba's cache in ``__pycache__`` is used); without numba the
block-Toeplitz systems are solved by a dense Cholesky factorisation (same results,
slower). The signals are scaled to unit energy first (the ratios do not depend on
the scales). The FFT work arrays (~6 MB for two 65,535-sample sources, at most
64 MB) are kept per thread between calls with the same shapes: page faults of
fresh memory cost as much as the transforms on some systems. Nothing here is
multithreaded, so the results do not depend on the BLAS/OpenMP/torch thread
settings.

The fast formulas replace mir_eval's explicit filtering by differences of
energies, so each result comes with an a posteriori rounding-error estimate, and
``G`` with a conditioning check; they decide, per mixture, whether the fast result
is returned or the mixture is recomputed with the exact method:

* the estimated error, ``4.34 eps (|c|^2 + |c_j|^2 + 1) / d`` dB (``c``, ``c_j``: the
  filter coefficients of the two projections; ``d``: the smallest of the energies
  and energy differences above, all for unit-energy signals), must be at most
  ``FAST_MAX_ERROR_DB`` = 1e-4 dB. It exceeds that for near-perfect estimates
  (an SDR, SIR or SAR beyond ~100 dB), where the energy differences cancel;
* the Levinson recursions must not break down (a non-positive pivot), and the
  Hutchinson estimate of the mean inverse eigenvalue of the unit-diagonal ``G``
  from two fixed random +-1 probes (extra right-hand sides of the same recursion)
  must be at most ``FAST_MAX_INV_EIG`` = 1e11, i.e. ``G`` is not numerically
  singular (smallest eigenvalue above roughly 1e-14). A numerically singular ``G``
  (steeply low-passed references, a reference that is a short filter of another,
  duplicated references) makes mir_eval's own SIR/SAR rounding noise (see below),
  which only the exact method reproduces.

With these rules the fast results agreed with mir_eval to within 4e-4 dB (median
~1e-10 dB; the largest differences for values near 100 dB) on every accepted
mixture of a validation set of 280 deliberately ill-conditioned random mixtures
(low-passed noise references of Butterworth orders 1-10 with noise floors 0 or
1e-12..1e-1; 2 or 3 sources; 8,000 and 65,535 samples), 45% of which were
accepted, and of 200 audio-like ones (resampled, low-passed and resonant noise
with silent gaps, harmonic tones; float32; estimates with leakage, filtering,
swapped sources or binary STFT masks), 96% of which were accepted (the others had
an SDR, SIR or SAR above 105 dB); the tests assert 0.01 dB.

**Exact** (:func:`bss_eval_sources_exact`, ``method="exact"``; ~1.5x faster than
mir_eval). As in mir_eval, the normal equations are formed in the frequency domain
(``scipy.fftpack`` FFTs of size ``2**ceil(log2(n_samples + 511))``): the Gram matrix
``G`` of the delayed references from their auto/cross-correlations, the right-hand
side from the reference/estimate correlations. They are solved with
``numpy.linalg.solve`` (LU), falling back to ``numpy.linalg.lstsq`` if ``G`` is
exactly singular; the filters are applied with ``scipy.signal.fftconvolve``'s
arithmetic; a denominator of exactly 0 gives ``+inf`` dB. Every floating-point
operation is the one mir_eval performs, on the same operands in the same layout,
so with the same numpy/scipy/OpenBLAS the results are identical to the last bit,
not merely close.

Why the exact method exists: when the references are nearly rank-deficient over
512 lags (e.g. steeply low-passed signals, an estimate lying in their span), ``G``
is numerically singular and mir_eval's SIR/SAR are dominated by rounding -- any
algebraically equivalent implementation (real FFTs, one LU for all sources,
products computed as one 2-D array, and the fast method above) then differs from
mir_eval by up to tens of dB, as does mir_eval itself when the input is perturbed
by 1e-15. There, only bitwise replication reproduces published mir_eval numbers;
it is also the fast method's fallback. Consequences for its code: complex spectra
are multiplied one 1-D pair at a time (numpy's SIMD complex multiply rounds the
elements of its vector body and of its scalar tail differently, so a 2-D or
broadcast product differs in the last bit), and the all-reference system is
solved once per estimate (LAPACK solves with two right-hand sides round
differently from two single-right-hand-side solves). What it saves compared with
mir_eval (which redoes everything per source): each reference and estimate is
Fourier-transformed once, the Gram matrix (and its diagonal blocks, the
single-reference Gram matrices) is built once per mixture, the single-reference
systems are solved in one batched call, each reference spectrum for the filtering
step is computed once, and the inverse FFTs are batched.

Deliberate differences in behaviour (not in values), both methods:

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
over scored mixtures. :func:`evaluate_batch` applies :func:`evaluate_mixture` to
many mixtures.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import scipy.fft
import scipy.fftpack
import scipy.linalg

from avsep.evaluation.toeplitz import cross_spectra_sum, solve_block_toeplitz, solve_toeplitz

__all__ = [
    "FAST_MAX_ERROR_DB",
    "FAST_MAX_INV_EIG",
    "FILTER_LENGTH",
    "SKIP_EPS",
    "aggregate",
    "bss_eval_batch",
    "bss_eval_sources",
    "bss_eval_sources_exact",
    "evaluate_batch",
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


# --------------------------------------------------------------------------- exact method (mir_eval's arithmetic)


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


def _bss_eval_exact(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mir_eval's arithmetic, operation for operation, on validated non-silent float64 input."""
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


# --------------------------------------------------------------------------- fast path (its Toeplitz solvers: toeplitz.py)

#: Accept the fast result only if its estimated rounding error is below this many dB.
FAST_MAX_ERROR_DB = 1e-4

#: Accept the fast result only if the Hutchinson estimate of the mean inverse eigenvalue
#: of the (unit-energy) reference Gram matrix is below this: the matrix is not
#: numerically singular, so mir_eval's result is not dominated by rounding either.
FAST_MAX_INV_EIG = 1e11

_EPS = float(np.finfo(np.float64).eps)
_N_PROBES = 2  # random +-1 probe vectors for the conditioning estimate

# Per-thread work arrays of _lag_correlations, kept between calls: on some systems the page
# faults of freshly mapped memory cost as much as the FFTs themselves.
_WORKSPACE = threading.local()
_WORKSPACE_MAX_BYTES = 64 * 2**20
_FFT_HAS_OUT = np.lib.NumpyVersion(np.__version__) >= "2.0.0"  # numpy.fft.rfft(..., out=)


def _work_arrays(key: tuple[int, ...], specs: dict[str, tuple[tuple[int, ...], type]]) -> dict[str, np.ndarray]:
    """Zero-initialised arrays for ``key``; this thread's last set is reused if the key matches.

    The caller must leave untouched the parts it relies on being zero (the same for
    every call with the same key). At most ``_WORKSPACE_MAX_BYTES`` are kept.
    """
    cached = getattr(_WORKSPACE, "entry", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    arrays = {name: np.zeros(shape, dtype) for name, (shape, dtype) in specs.items()}
    if sum(a.nbytes for a in arrays.values()) <= _WORKSPACE_MAX_BYTES:
        _WORKSPACE.entry = (key, arrays)
    else:
        _WORKSPACE.entry = None
    return arrays


def _rfft(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Real FFT along the last axis (into ``out`` where numpy supports it)."""
    if _FFT_HAS_OUT:
        return np.fft.rfft(x, axis=-1, out=out)
    return scipy.fft.rfft(x, axis=-1)  # pragma: no cover - numpy < 2


def _irfft(x: np.ndarray, size: int, out: np.ndarray) -> np.ndarray:
    """Inverse real FFT of size ``size`` along the last axis (into ``out`` where numpy supports it)."""
    if _FFT_HAS_OUT:
        return np.fft.irfft(x, size, axis=-1, out=out)
    return scipy.fft.irfft(x, size, axis=-1)  # pragma: no cover - numpy < 2


@functools.lru_cache(maxsize=64)
def _segment_plan(n_samples: int, n_src: int) -> tuple[int, int, int]:
    """FFT size ``F``, segment length ``M`` and number ``nb`` of segments for :func:`_lag_correlations`.

    Only lags ``0..FILTER_LENGTH - 1`` of the correlations are needed, so instead of
    transforms of the whole padded signal (size >= n_samples + 511, and one inverse
    transform of that size per pair of signals) the signals are cut into ``nb``
    segments of ``M <= F - 511`` samples, transformed with size ``F`` (no wrap-around
    at those lags), and the cross-spectra summed over segments before one inverse
    transform of size ``F`` per pair; the products across segment boundaries come
    from transforms of size 1024 of the 511 samples on either side of each boundary.
    The cheapest plan is chosen by a flop count.
    """
    flen = FILTER_LENGTH
    single = scipy.fft.next_fast_len(n_samples + flen - 1, real=True)
    # one segment: 2 n forward and 2 n^2 inverse transforms of the full size
    best = ((2 * n_src + 2 * n_src**2) * single * math.log2(single), single, single - flen + 1, 1)
    for target in (2048, 3072, 4096, 6144, 8192, 12288, 16384):
        size = scipy.fft.next_fast_len(target, real=True)
        if size >= single:
            break
        nseg = -(-n_samples // (size - flen + 1))
        hop = -(-n_samples // nseg)  # balanced segments: less zero padding
        cost = 2 * n_src * nseg * size * math.log2(size) + 3 * n_src * (nseg - 1) * _BOUNDARY_FFT * 10
        if cost < best[0]:
            best = (cost, size, hop, nseg)
    return best[1], best[2], best[3]


_BOUNDARY_FFT = 1024  # >= 2 * (FILTER_LENGTH - 1) + 1: transforms of the segment boundaries


def _lag_correlations(ref: np.ndarray, est: np.ndarray) -> np.ndarray:
    """``c[a, b, k] = sum_u ref[a, u] * x[b, u + k]`` for ``k < FILTER_LENGTH``, ``x = [ref; est]``."""
    n, n_samples = ref.shape
    flen = FILTER_LENGTH
    size, hop, nseg = _segment_plan(n_samples, n)
    nfreq = size // 2 + 1
    work = _work_arrays(
        (n, n_samples),
        {
            "seg": ((2 * n, nseg, size), np.float64),
            "spec": ((2 * n, nseg, nfreq), np.complex128),
            "cross": ((n, 2 * n, nfreq), np.complex128),
            "corr": ((n, 2 * n, size), np.float64),
        },
    )
    seg = work["seg"]  # segments of hop samples, zero-padded to the FFT size (the padding stays 0)
    nfull = n_samples // hop
    rest = n_samples - nfull * hop
    for rows, sig in ((slice(0, n), ref), (slice(n, 2 * n), est)):
        seg[rows, :nfull, :hop] = sig[:, : nfull * hop].reshape(n, nfull, hop)
        if rest:
            seg[rows, nfull, :rest] = sig[:, nfull * hop :]
    spec = _rfft(seg, work["spec"])
    corr = _irfft(cross_spectra_sum(spec[:n], spec, work["cross"]), size, work["corr"])[:, :, :flen].copy()
    if nseg == 1:
        return corr
    # products across the boundary between segments p and p + 1: the last 511 samples of
    # reference segment p against the first 511 of segment p + 1, at lags k - 511 <= 0
    tails = scipy.fft.rfft(seg[:n, :-1, hop - flen + 1 : hop], _BOUNDARY_FFT, axis=2)
    heads = scipy.fft.rfft(seg[:, 1:, : flen - 1], _BOUNDARY_FFT, axis=2)
    cross = scipy.fft.irfft(cross_spectra_sum(tails, heads), _BOUNDARY_FFT, axis=2)
    corr += cross[:, :, (np.arange(flen) - (flen - 1)) % _BOUNDARY_FFT]
    return corr


@functools.lru_cache(maxsize=8)
def _probes(n_src: int) -> np.ndarray:
    """Fixed random +-1 vectors, shape (n_src, _N_PROBES, FILTER_LENGTH), for the Hutchinson estimate."""
    rng = np.random.default_rng(20240531 + n_src)
    out = rng.choice(np.array([-1.0, 1.0]), size=(n_src, _N_PROBES, FILTER_LENGTH))
    out.flags.writeable = False
    return out


def _tame(x: np.ndarray) -> np.ndarray:
    """``x`` with rows rescaled by powers of two (exactly) if their peaks risk over/underflow of energies."""
    peak = np.maximum(np.max(x, axis=1), -np.min(x, axis=1))
    bad = (peak < 1e-100) | (peak > 1e100)
    if not bad.any():
        return x
    return np.ldexp(x, np.where(bad, -np.frexp(peak)[1], 0)[:, None])


def _fast_scores(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray | None, dict[str, Any]]:
    """(sdr, sir, sar) stacked (3, n_src) by the fast method, or None where it must not be trusted.

    ``ref``/``est``: validated float64 (n_src, n_samples), no all-zero rows. The second
    value holds the diagnostics the decision was based on (for tests and benchmarks).
    """
    n = ref.shape[0]
    ref = _tame(ref)
    est = _tame(est)
    corr = _lag_correlations(ref, est)
    # Scale references and estimates to unit energy (the ratios do not change; the
    # conditioning and error estimates below become scale-free).
    ref_norm = np.sqrt(corr[np.arange(n), np.arange(n), 0])
    est_norm = np.sqrt(np.einsum("ij,ij->i", est, est))
    # Gamma(m)[a, b] = <s_a, s_b delayed by m>, block (k, l) of G is Gamma(l - k)
    gram_gen = corr[:, :n].transpose(1, 0, 2) / (ref_norm[:, None, None] * ref_norm[None, :, None])
    gram_gen = np.ascontiguousarray(gram_gen)
    rhs = corr[:, n:] / (ref_norm[:, None, None] * est_norm[None, :, None])  # <s_a delayed by k, e_j>
    probes = _probes(n)
    c_all, piv = solve_block_toeplitz(gram_gen, np.concatenate([rhs, probes], axis=1))
    info: dict[str, Any] = {"pivot": piv}
    if not piv > 0.0:
        info["reason"] = "Gram matrix of the references is not numerically positive definite"
        return None, info
    inv_eig = np.einsum("apk,apk->p", probes, c_all[:, n:]) / (n * FILTER_LENGTH)
    info["inv_eig"] = inv_eig
    q_all = np.einsum("ajk,ajk->j", rhs, c_all[:, :n])  # |P e_j|^2
    norm_all = np.einsum("ajk,ajk->j", c_all[:, :n], c_all[:, :n])
    if n == 1:
        q_own, norm_own = q_all, norm_all
    else:
        q_own = np.empty(n)
        norm_own = np.empty(n)
        for j in range(n):
            c_own, piv_j = solve_toeplitz(gram_gen[j, j], rhs[j, j : j + 1])
            if not piv_j > 0.0:
                info["reason"] = f"Gram matrix of reference {j} is not numerically positive definite"
                return None, info
            q_own[j] = np.dot(rhs[j, j], c_own[0])  # |P_j e_j|^2 = |s_target|^2
            norm_own[j] = np.dot(c_own[0], c_own[0])
    d_sdr = 1.0 - q_own  # |e_interf + e_artif|^2 (|e_j|^2 = 1)
    d_sar = 1.0 - q_all  # |e_artif|^2
    d_sir = q_all - q_own  # |e_interf|^2
    smallest = np.minimum(np.minimum(d_sdr, d_sar), q_own)
    if n > 1:
        smallest = np.minimum(smallest, d_sir)
    with np.errstate(divide="ignore", invalid="ignore"):
        err_db = 10.0 / math.log(10.0) * _EPS * (norm_all + norm_own + 1.0) / smallest
    info["error_db"] = err_db
    if not (np.all(inv_eig > 0.0) and np.max(inv_eig) <= FAST_MAX_INV_EIG):
        info["reason"] = "the Gram matrix of the references is numerically singular"
        return None, info
    if not (np.all(smallest > 0.0) and np.max(err_db) <= FAST_MAX_ERROR_DB):
        info["reason"] = "an energy difference is too small for the fast formulas (rounding)"
        return None, info
    sdr = 10.0 * np.log10(q_own / d_sdr)
    sar = 10.0 * np.log10(q_all / d_sar)
    sir = np.full(n, np.inf) if n == 1 else 10.0 * np.log10(q_own / d_sir)
    return np.stack([sdr, sir, sar]), info


# --------------------------------------------------------------------------- public API


_METHODS = ("fast", "exact")


def _check_method(method: str) -> None:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")


def _check_not_silent(ref: np.ndarray, est: np.ndarray) -> None:
    for arr, name in ((ref, "reference"), (est, "estimated")):
        silent = ~np.any(arr, axis=1)
        if silent.any():
            raise ValueError(
                f"{name} source(s) {np.flatnonzero(silent).tolist()} are all zeros; "
                "BSS Eval needs non-silent references and estimates "
                "(use evaluate_mixture to skip such mixtures)"
            )


def _scores(ref: np.ndarray, est: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated, non-silent float64 input: (sdr, sir, sar), fast if trusted, else exact."""
    if method == "fast":
        out, _ = _fast_scores(ref, est)
        if out is not None:
            return out[0], out[1], out[2]
    return _bss_eval_exact(ref, est)


def bss_eval_sources(
    reference: np.ndarray, estimated: np.ndarray, method: str = "fast"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BSS Eval v3 SDR, SIR and SAR of each estimate against its own reference.

    ``mir_eval.separation.bss_eval_sources(reference, estimated,
    compute_permutation=False)[:3]`` (mir_eval 0.7): estimate ``j`` is scored
    against reference ``j``, no permutation search, 512-tap distortion filters.

    Parameters
    ----------
    reference:
        True sources, shape (n_src, n_samples), float32 or float64.
    estimated:
        Estimated sources, same shape; row ``j`` is the estimate of reference ``j``.
    method:
        ``"fast"`` (default): the structured solver of the module docstring. Its
        result is returned where its estimated rounding error is at most
        ``FAST_MAX_ERROR_DB`` (1e-4 dB; observed differences from mir_eval stayed
        below 4e-4 dB) and the references are not numerically singular; otherwise
        the mixture is scored with ``"exact"`` (near-perfect estimates, steeply
        low-passed or mutually dependent references). ``"exact"``: mir_eval's arithmetic,
        operation for operation -- the same floating-point results to the last bit
        with the same numpy/scipy/OpenBLAS (:func:`bss_eval_sources_exact`).

    Returns
    -------
    (sdr, sir, sar):
        float64 arrays of shape (n_src,), in dB (``+inf`` where a distortion
        energy is 0, e.g. the SIR of a single source).

    Raises
    ------
    ValueError
        On a non-2-D input, mismatched shapes, non-real data, NaN/inf values, an
        all-zero reference or estimate (the decomposition is undefined then;
        mir_eval raises too) or an unknown ``method``.
    """
    _check_method(method)
    ref, est = _check_pair(reference, estimated)
    _check_not_silent(ref, est)
    return _scores(ref, est, method)


def bss_eval_sources_exact(
    reference: np.ndarray, estimated: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`bss_eval_sources` with ``method="exact"``: bitwise mir_eval 0.7 (see the module docstring)."""
    return bss_eval_sources(reference, estimated, method="exact")


def bss_eval_batch(
    references: Any, estimates: Any, method: str = "fast"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`bss_eval_sources` of many mixtures: arrays of shape (n_mixtures, n_src).

    Parameters
    ----------
    references, estimates:
        Arrays of shape (n_mixtures, n_src, n_samples), or sequences of
        (n_src, n_samples) arrays (the length may differ between mixtures, the
        number of sources may not). Mixtures are converted to float64 and scored
        one at a time, so memory does not grow with the number of mixtures (a
        float32 array stays float32).
    method:
        As in :func:`bss_eval_sources`.

    Returns
    -------
    (sdr, sir, sar):
        float64 arrays of shape (n_mixtures, n_src); row ``i`` equals
        ``bss_eval_sources(references[i], estimates[i], method)``.

    Raises
    ------
    ValueError
        As :func:`bss_eval_sources` (the message names the mixture), or when the
        two inputs hold different numbers of mixtures or sources.
    """
    _check_method(method)
    if len(references) != len(estimates):
        raise ValueError(
            f"references and estimates must hold the same number of mixtures, "
            f"got {len(references)} and {len(estimates)}"
        )
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for i, (reference, estimated) in enumerate(zip(references, estimates)):
        try:
            ref, est = _check_pair(reference, estimated)
            _check_not_silent(ref, est)
            if rows and ref.shape[0] != rows[0][0].shape[0]:
                raise ValueError(
                    f"every mixture must have the same number of sources, got {ref.shape[0]} "
                    f"instead of {rows[0][0].shape[0]}"
                )
        except ValueError as err:
            raise ValueError(f"mixture {i}: {err}") from None
        rows.append(_scores(ref, est, method))
    if not rows:
        empty = np.empty((0, 0))
        return empty, empty.copy(), empty.copy()
    sdr, sir, sar = (np.stack([row[k] for row in rows]) for k in range(3))
    return sdr, sir, sar


# --------------------------------------------------------------------------- protocol


def evaluate_mixture(
    references: np.ndarray, estimates: np.ndarray, eps: float = SKIP_EPS, method: str = "fast"
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
    method:
        ``"fast"`` (default) or ``"exact"``, as in :func:`bss_eval_sources`.

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
        before the silence rule, so a NaN estimate is never silently skipped), or
        an unknown ``method``.
    """
    _check_method(method)
    ref, est = _check_pair(references, estimates)
    if np.any(np.sum(np.abs(ref), axis=1) <= eps) or np.any(
        np.sum(np.abs(est), axis=1) <= eps
    ):
        return None
    sdr, sir, sar = _scores(ref, est, method)
    return {
        "sdr": float(np.mean(sdr)),
        "sir": float(np.mean(sir)),
        "sar": float(np.mean(sar)),
        "sdr_src": sdr,
        "sir_src": sir,
        "sar_src": sar,
    }


def evaluate_batch(
    references: Any, estimates: Any, eps: float = SKIP_EPS, method: str = "fast"
) -> list[dict[str, Any] | None]:
    """:func:`evaluate_mixture` of each mixture (``None`` for a skipped one), e.g. for :func:`aggregate`.

    ``references``/``estimates``: arrays of shape (n_mixtures, n_src, n_samples) or
    sequences of (n_src, n_samples) arrays; scored one mixture at a time (memory
    does not grow with the number of mixtures). A ValueError names the mixture.
    """
    _check_method(method)
    if len(references) != len(estimates):
        raise ValueError(
            f"references and estimates must hold the same number of mixtures, "
            f"got {len(references)} and {len(estimates)}"
        )
    out: list[dict[str, Any] | None] = []
    for i, (reference, estimated) in enumerate(zip(references, estimates)):
        try:
            out.append(evaluate_mixture(reference, estimated, eps, method))
        except ValueError as err:
            raise ValueError(f"mixture {i}: {err}") from None
    return out


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
