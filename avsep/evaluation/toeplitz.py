"""Symmetric positive-definite (block) Toeplitz systems of BSS Eval's fast path (:mod:`avsep.evaluation.metrics`).

``G x = y`` where ``G`` is the Gram matrix of the delayed references, given by its first block column ``gf``
(the auto/cross-correlations at lags ``0..L-1``): the block Levinson recursion for all references (with a
specialisation for two), the scalar Levinson recursion for one. They return the solution and the smallest
pivot (``<= 0``: the matrix is not numerically positive definite). The kernels are compiled with numba
(installed with librosa, a dependency; cached in ``__pycache__``); without numba the same systems are solved
by a dense Cholesky factorisation (same results up to rounding, slower).
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.linalg

try:  # numba comes with librosa, a dependency; without it the block-Toeplitz systems are solved densely
    import numba as _numba
except ImportError:  # pragma: no cover - depends on the installation
    _numba = None


def _small_mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for tiny matrices (numba kernel helper)."""
    n, q = a.shape
    m = b.shape[1]
    out = np.zeros((n, m))
    for i in range(n):
        for j in range(m):
            s = 0.0
            for k in range(q):
                s += a[i, k] * b[k, j]
            out[i, j] = s
    return out


def _small_inv(a: np.ndarray) -> np.ndarray:
    """Inverse of a tiny matrix by Gauss-Jordan elimination with partial pivoting (inf/NaN if singular)."""
    n = a.shape[0]
    w = a.copy()
    out = np.eye(n)
    for c in range(n):
        p = c
        for r in range(c + 1, n):
            if abs(w[r, c]) > abs(w[p, c]):
                p = r
        if p != c:
            for j in range(n):
                t = w[c, j]
                w[c, j] = w[p, j]
                w[p, j] = t
                t = out[c, j]
                out[c, j] = out[p, j]
                out[p, j] = t
        piv = w[c, c]
        for j in range(n):
            w[c, j] /= piv
            out[c, j] /= piv
        for r in range(n):
            if r != c:
                fac = w[r, c]
                for j in range(n):
                    w[r, j] -= fac * w[c, j]
                    out[r, j] -= fac * out[c, j]
    return out


def _dot(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """``sum(a[:k] * b[:k])`` (numba kernel helper)."""
    s = 0.0
    for i in range(k):
        s += a[i] * b[i]
    return s


def _axpy(y: np.ndarray, alpha: float, x: np.ndarray, k: int) -> None:
    """``y[:k] += alpha * x[:k]`` (numba kernel helper)."""
    for i in range(k):
        y[i] += alpha * x[i]


def _block_levinson(gf: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Solve ``G x = y`` for a symmetric positive definite block-Toeplitz ``G`` (block Levinson).

    ``G`` has ``L x L`` blocks of size ``n x n``; block ``(k, l)`` is ``Gamma(l - k)`` with
    ``Gamma(m) = gf[:, :, m]`` and ``Gamma(-m) = Gamma(m).T``. ``y`` has shape ``(n, m, L)``
    (``y[:, c, k]``: block ``k`` of right-hand side ``c``); so has the returned ``x``.
    Normalised forward/backward predictors ``A``, ``B`` (identity leading/trailing block)
    are extended one block at a time, O(n^3 L^2 + n^2 m L^2) operations. Also returns the
    smallest pivot (1 / trace of the inverse backward prediction-error covariance), or -1
    if the recursion breaks down (a pivot that is not positive: ``G`` not numerically
    positive definite).
    """
    n = gf.shape[0]
    flen = gf.shape[2]
    m = y.shape[1]
    grev = np.empty((n, n, flen))  # grev[s, r, p] = gf[s, r, flen - 1 - p]: forward loop order
    for s in range(n):
        for r in range(n):
            for p in range(flen):
                grev[s, r, p] = gf[s, r, flen - 1 - p]
    a_cur = np.zeros((n, n, flen))
    b_cur = np.zeros((n, n, flen))
    a_new = np.zeros((n, n, flen))
    b_new = np.zeros((n, n, flen))
    x = np.zeros((n, m, flen))
    g0 = np.empty((n, n))
    for r in range(n):
        for s in range(n):
            g0[r, s] = gf[r, s, 0]
        a_cur[r, r, 0] = 1.0
        b_cur[r, r, 0] = 1.0
    pf = g0.copy()
    pb = g0.copy()
    pb_inv = _small_inv(pb)
    minpiv = np.inf
    tr = 0.0
    for r in range(n):
        tr += pb_inv[r, r]
    piv = 1.0 / tr
    if not piv > 0.0:
        return x, -1.0
    minpiv = piv
    for r in range(n):
        for c in range(m):
            acc = 0.0
            for s in range(n):
                acc += pb_inv[r, s] * y[s, c, 0]
            x[r, c, 0] = acc
    ef = np.empty((n, n))
    eb = np.empty((n, n))
    eta = np.empty((n, m))
    d = np.empty((n, m))
    for k in range(1, flen):
        off = flen - 1 - k
        # ef = sum_i Gamma(k - i).T A[i], eb = sum_i Gamma(i + 1) B[i], eta = sum_i Gamma(k - i).T x[i]
        for r in range(n):
            for c in range(n):
                sf = 0.0
                sb = 0.0
                for s in range(n):
                    sf += _dot(grev[s, r, off:], a_cur[s, c], k)
                    sb += _dot(gf[r, s, 1:], b_cur[s, c], k)
                ef[r, c] = sf
                eb[r, c] = sb
            for c in range(m):
                se = 0.0
                for s in range(n):
                    se += _dot(grev[s, r, off:], x[s, c], k)
                eta[r, c] = se
        ka = -_small_mm(pb_inv, ef)
        kb = -_small_mm(_small_inv(pf), eb)
        pf = pf + _small_mm(eb, ka)
        pb = pb + _small_mm(ef, kb)
        pb_inv = _small_inv(pb)
        tr = 0.0
        for r in range(n):
            tr += pb_inv[r, r]
        piv = 1.0 / tr
        if not piv > 0.0:
            return x, -1.0
        minpiv = min(minpiv, piv)
        # A' = [A; 0] + [0; B] ka,  B' = [0; B] + [A; 0] kb
        for r in range(n):
            for c in range(n):
                an = a_new[r, c]
                bn = b_new[r, c]
                ac = a_cur[r, c]
                bc = b_cur[r, c]
                an[:k] = ac[:k]
                an[k] = 0.0
                bn[0] = 0.0
                bn[1 : k + 1] = bc[:k]
                for s in range(n):
                    _axpy(an[1:], ka[s, c], b_cur[r, s], k)
                    _axpy(bn, kb[s, c], a_cur[r, s], k)
        a_cur, a_new = a_new, a_cur
        b_cur, b_new = b_new, b_cur
        # x' = [x; 0] + B' pb'^-1 (y_k - eta)
        for r in range(n):
            for c in range(m):
                d[r, c] = y[r, c, k] - eta[r, c]
        w = _small_mm(pb_inv, d)
        for r in range(n):
            for c in range(m):
                for s in range(n):
                    _axpy(x[r, c], w[s, c], b_cur[r, s], k + 1)
    return x, minpiv


def _block_levinson_2(gf: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """:func:`_block_levinson` written out for 2 x 2 blocks (two sources, the common case; ~1.4x faster).

    The 2 x 2 products and inverses are spelt out, so each order-update is one fused
    pass over the predictors and one per right-hand side.
    """
    flen = gf.shape[2]
    m = y.shape[1]
    g00 = gf[0, 0]
    g01 = gf[0, 1]
    g10 = gf[1, 0]
    g11 = gf[1, 1]
    r00 = g00[::-1].copy()  # r_sr[p] = Gamma(flen - 1 - p)[s, r]
    r01 = g01[::-1].copy()
    r10 = g10[::-1].copy()
    r11 = g11[::-1].copy()
    a_cur = np.zeros((4, flen))  # rows: entries (0, 0), (0, 1), (1, 0), (1, 1) of the blocks
    b_cur = np.zeros((4, flen))
    a_new = np.zeros((4, flen))
    b_new = np.zeros((4, flen))
    x = np.zeros((2, m, flen))
    a_cur[0, 0] = 1.0
    a_cur[3, 0] = 1.0
    b_cur[0, 0] = 1.0
    b_cur[3, 0] = 1.0
    pf00 = g00[0]
    pf01 = g01[0]
    pf10 = g10[0]
    pf11 = g11[0]
    pb00 = pf00
    pb01 = pf01
    pb10 = pf10
    pb11 = pf11
    det = pb00 * pb11 - pb01 * pb10
    q00 = pb11 / det  # q = pb^-1
    q01 = -pb01 / det
    q10 = -pb10 / det
    q11 = pb00 / det
    piv = 1.0 / (q00 + q11)
    if not (det > 0.0 and piv > 0.0):
        return x, -1.0
    minpiv = piv
    for c in range(m):
        x[0, c, 0] = q00 * y[0, c, 0] + q01 * y[1, c, 0]
        x[1, c, 0] = q10 * y[0, c, 0] + q11 * y[1, c, 0]
    for k in range(1, flen):
        off = flen - 1 - k
        a00 = a_cur[0]
        a01 = a_cur[1]
        a10 = a_cur[2]
        a11 = a_cur[3]
        b00 = b_cur[0]
        b01 = b_cur[1]
        b10 = b_cur[2]
        b11 = b_cur[3]
        # ef = sum_i Gamma(k - i).T A[i],  eb = sum_i Gamma(i + 1) B[i]
        ef00 = 0.0
        ef01 = 0.0
        ef10 = 0.0
        ef11 = 0.0
        eb00 = 0.0
        eb01 = 0.0
        eb10 = 0.0
        eb11 = 0.0
        for i in range(k):
            h00 = r00[off + i]
            h01 = r01[off + i]
            h10 = r10[off + i]
            h11 = r11[off + i]
            ef00 += h00 * a00[i] + h10 * a10[i]
            ef01 += h00 * a01[i] + h10 * a11[i]
            ef10 += h01 * a00[i] + h11 * a10[i]
            ef11 += h01 * a01[i] + h11 * a11[i]
            f00 = g00[i + 1]
            f01 = g01[i + 1]
            f10 = g10[i + 1]
            f11 = g11[i + 1]
            eb00 += f00 * b00[i] + f01 * b10[i]
            eb01 += f00 * b01[i] + f01 * b11[i]
            eb10 += f10 * b00[i] + f11 * b10[i]
            eb11 += f10 * b01[i] + f11 * b11[i]
        # ka = -pb^-1 ef,  kb = -pf^-1 eb
        ka00 = -(q00 * ef00 + q01 * ef10)
        ka01 = -(q00 * ef01 + q01 * ef11)
        ka10 = -(q10 * ef00 + q11 * ef10)
        ka11 = -(q10 * ef01 + q11 * ef11)
        detf = pf00 * pf11 - pf01 * pf10
        kb00 = -(pf11 * eb00 - pf01 * eb10) / detf
        kb01 = -(pf11 * eb01 - pf01 * eb11) / detf
        kb10 = -(-pf10 * eb00 + pf00 * eb10) / detf
        kb11 = -(-pf10 * eb01 + pf00 * eb11) / detf
        # pf += eb ka,  pb += ef kb
        pf00, pf01, pf10, pf11 = (
            pf00 + eb00 * ka00 + eb01 * ka10,
            pf01 + eb00 * ka01 + eb01 * ka11,
            pf10 + eb10 * ka00 + eb11 * ka10,
            pf11 + eb10 * ka01 + eb11 * ka11,
        )
        pb00, pb01, pb10, pb11 = (
            pb00 + ef00 * kb00 + ef01 * kb10,
            pb01 + ef00 * kb01 + ef01 * kb11,
            pb10 + ef10 * kb00 + ef11 * kb10,
            pb11 + ef10 * kb01 + ef11 * kb11,
        )
        det = pb00 * pb11 - pb01 * pb10
        q00 = pb11 / det
        q01 = -pb01 / det
        q10 = -pb10 / det
        q11 = pb00 / det
        piv = 1.0 / (q00 + q11)
        if not (det > 0.0 and piv > 0.0):
            return x, -1.0
        minpiv = min(minpiv, piv)
        # A' = [A; 0] + [0; B] ka,  B' = [0; B] + [A; 0] kb
        n00 = a_new[0]
        n01 = a_new[1]
        n10 = a_new[2]
        n11 = a_new[3]
        o00 = b_new[0]
        o01 = b_new[1]
        o10 = b_new[2]
        o11 = b_new[3]
        n00[0] = a00[0]
        n01[0] = a01[0]
        n10[0] = a10[0]
        n11[0] = a11[0]
        o00[0] = a00[0] * kb00 + a01[0] * kb10
        o01[0] = a00[0] * kb01 + a01[0] * kb11
        o10[0] = a10[0] * kb00 + a11[0] * kb10
        o11[0] = a10[0] * kb01 + a11[0] * kb11
        for i in range(1, k):
            n00[i] = a00[i] + b00[i - 1] * ka00 + b01[i - 1] * ka10
            n01[i] = a01[i] + b00[i - 1] * ka01 + b01[i - 1] * ka11
            n10[i] = a10[i] + b10[i - 1] * ka00 + b11[i - 1] * ka10
            n11[i] = a11[i] + b10[i - 1] * ka01 + b11[i - 1] * ka11
            o00[i] = b00[i - 1] + a00[i] * kb00 + a01[i] * kb10
            o01[i] = b01[i - 1] + a00[i] * kb01 + a01[i] * kb11
            o10[i] = b10[i - 1] + a10[i] * kb00 + a11[i] * kb10
            o11[i] = b11[i - 1] + a10[i] * kb01 + a11[i] * kb11
        n00[k] = b00[k - 1] * ka00 + b01[k - 1] * ka10
        n01[k] = b00[k - 1] * ka01 + b01[k - 1] * ka11
        n10[k] = b10[k - 1] * ka00 + b11[k - 1] * ka10
        n11[k] = b10[k - 1] * ka01 + b11[k - 1] * ka11
        o00[k] = b00[k - 1]
        o01[k] = b01[k - 1]
        o10[k] = b10[k - 1]
        o11[k] = b11[k - 1]
        a_cur, a_new = a_new, a_cur
        b_cur, b_new = b_new, b_cur
        # x' = [x; 0] + B' pb'^-1 (y_k - eta),  eta = sum_i Gamma(k - i).T x[i]
        for c in range(m):
            x0 = x[0, c]
            x1 = x[1, c]
            e0 = 0.0
            e1 = 0.0
            for i in range(k):
                e0 += r00[off + i] * x0[i] + r10[off + i] * x1[i]
                e1 += r01[off + i] * x0[i] + r11[off + i] * x1[i]
            d0 = y[0, c, k] - e0
            d1 = y[1, c, k] - e1
            w0 = q00 * d0 + q01 * d1
            w1 = q10 * d0 + q11 * d1
            for i in range(k + 1):
                x0[i] += o00[i] * w0 + o01[i] * w1
                x1[i] += o10[i] * w0 + o11[i] * w1
    return x, minpiv


def _levinson(r: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Solve ``T x = y`` for a symmetric positive definite Toeplitz ``T`` with first row ``r`` (Levinson).

    The scalar case of :func:`_block_levinson` (``y``, ``x``: shape (m, L)), where the
    backward predictor is the reversed forward one and no small matrices are needed.
    Returns ``x`` and the smallest prediction-error variance (-1 on breakdown).
    """
    flen = r.shape[0]
    m = y.shape[0]
    rrev = r[::-1].copy()  # rrev[p] = r[flen - 1 - p]
    a_cur = np.zeros(flen)
    b_cur = np.zeros(flen)
    a_new = np.zeros(flen)
    b_new = np.zeros(flen)
    x = np.zeros((m, flen))
    a_cur[0] = 1.0
    b_cur[0] = 1.0
    err = r[0]
    if not err > 0.0:
        return x, -1.0
    minerr = err
    for c in range(m):
        x[c, 0] = y[c, 0] / err
    for k in range(1, flen):
        off = flen - 1 - k
        ef = _dot(rrev[off:], a_cur, k)  # = eb for a symmetric scalar Toeplitz matrix
        kap = -ef / err
        err = err + ef * kap
        if not err > 0.0:
            return x, -1.0
        minerr = min(minerr, err)
        a_new[:k] = a_cur[:k]
        a_new[k] = 0.0
        b_new[0] = 0.0
        b_new[1 : k + 1] = b_cur[:k]
        _axpy(a_new[1:], kap, b_cur, k)
        _axpy(b_new, kap, a_cur, k)
        a_cur, a_new = a_new, a_cur
        b_cur, b_new = b_new, b_cur
        for c in range(m):
            w = (y[c, k] - _dot(rrev[off:], x[c], k)) / err
            _axpy(x[c], w, b_cur, k + 1)
    return x, minerr


def _cross_spectra(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[i, j] = sum_p conj(a[i, p]) * b[j, p]`` for complex a (na, nb, K), b (nbb, nb, K)."""
    na, nseg, nf = a.shape
    nbb = b.shape[0]
    out[:] = 0.0
    for i in range(na):
        for j in range(nbb):
            o = out[i, j]
            for p in range(nseg):
                u = a[i, p]
                v = b[j, p]
                for f in range(nf):
                    o[f] += u[f].conjugate() * v[f]
    return out


if _numba is not None:
    # fastmath: reassociated (vectorised) sums and fused multiply-adds, but no NaN/inf
    # assumptions, and numpy's error model (x / 0 = inf): a breakdown must show as a bad pivot.
    # The kernels allocate their own arrays and release the GIL.
    _jit = functools.partial(
        _numba.njit, cache=True, nogil=True, fastmath={"reassoc", "contract"}, error_model="numpy"
    )
    _small_mm = _jit()(_small_mm)
    _small_inv = _jit()(_small_inv)
    _dot = _jit()(_dot)
    _axpy = _jit()(_axpy)
    _block_levinson_kernel = _jit()(_block_levinson)
    _block_levinson_2_kernel = _jit()(_block_levinson_2)
    _levinson_kernel = _jit()(_levinson)
    _cross_spectra_kernel = _jit()(_cross_spectra)
else:  # pragma: no cover - depends on the installation
    _block_levinson_kernel = None
    _block_levinson_2_kernel = None
    _levinson_kernel = None
    _cross_spectra_kernel = None


def _block_levinson_dense(gf: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Same contract as :func:`_block_levinson`, by a dense Cholesky factorisation (no numba)."""
    n, _, flen = gf.shape
    m = y.shape[1]
    lag = np.arange(flen)[None, :] - np.arange(flen)[:, None]  # l - k
    # interleaved order (k, a): G[(k, a), (l, b)] = Gamma(l - k)[a, b], Gamma(-d) = Gamma(d).T
    fwd = gf[:, :, np.abs(lag)]  # (a, b, k, l) = Gamma(|l - k|)[a, b]
    bwd = gf.transpose(1, 0, 2)[:, :, np.abs(lag)]  # Gamma(|l - k|)[b, a]
    blocks = np.where(lag >= 0, fwd, bwd)
    gram = blocks.transpose(2, 0, 3, 1).reshape(n * flen, n * flen)
    rhs = y.transpose(2, 0, 1).reshape(n * flen, m)
    try:
        factor = scipy.linalg.cho_factor(gram, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return np.zeros_like(y), -1.0
    x = scipy.linalg.cho_solve(factor, rhs, check_finite=False)
    minpiv = float(np.min(np.diag(factor[0])) ** 2)
    return np.ascontiguousarray(x.reshape(flen, n, m).transpose(1, 2, 0)), minpiv


def solve_block_toeplitz(gf: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """:func:`_block_levinson` (numba; its 2-source form for 2 sources) or its dense equivalent."""
    gf = np.ascontiguousarray(gf, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    if _block_levinson_kernel is None:
        return _block_levinson_dense(gf, y)
    if gf.shape[0] == 2:
        return _block_levinson_2_kernel(gf, y)
    return _block_levinson_kernel(gf, y)


def solve_toeplitz(r: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """:func:`_levinson` (numba) or its dense equivalent: ``y``, ``x`` of shape (m, L)."""
    r = np.ascontiguousarray(r, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    if _levinson_kernel is None:
        x, piv = _block_levinson_dense(r[None, None], y[None])
        return x[0], piv
    return _levinson_kernel(r, y)


def cross_spectra_sum(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`_cross_spectra` (numba) or einsum, into ``out`` if given."""
    if out is None:
        out = np.empty((a.shape[0], b.shape[0], a.shape[2]), np.complex128)
    if _cross_spectra_kernel is None:
        return np.einsum("ipf,jpf->ijf", a.conj(), b, out=out)
    return _cross_spectra_kernel(np.ascontiguousarray(a), np.ascontiguousarray(b), out)
