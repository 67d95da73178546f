"""``librosa.sequence.viterbi``'s states, computed only over the transitions that can win.

pYIN (``librosa.pyin``, HFRA Figure 1's pitch) decodes 2 x 601 states per frame with a transition matrix that is
zero outside a band (a pitch moves at most 10 semitones, 101 bins, per frame at 11,025 Hz): librosa's dense Viterbi
spent 0.70 of the 0.78 s of pYIN on a 3-s clip. :func:`viterbi` returns the same states: a zero transition's
log-probability is ``log(tiny)`` (about -708), so at each frame the best in-band candidate of a state is the overall
best whenever it beats ``max(previous values outside its band) + log(tiny)``, the largest any out-of-band candidate
can reach (the candidates are the same float sums as librosa's, so ties break towards the lowest state as
``np.argmax`` does).
Where it does not (or a value is NaN), that state is decoded densely, as librosa does. Only what pYIN asks for is
done here (``return_logp=False``); anything else goes to librosa.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; without it the loop runs as Python
    def njit(*args, **kwargs):  # type: ignore[no-redef]
        return (lambda f: f) if not args or not callable(args[0]) else args[0]


@njit(cache=True)
def _banded(log_prob: np.ndarray, log_trans_t: np.ndarray, log_p_init: np.ndarray, rows: np.ndarray,
            counts: np.ndarray, log_zero: float) -> tuple[np.ndarray, int]:  # pragma: no cover - compiled
    n_steps, n_states = log_prob.shape
    value = np.zeros((n_steps, n_states), dtype=np.float64)
    ptr = np.zeros((n_steps, n_states), dtype=np.uint16)
    value[0] = log_prob[0] + log_p_init
    levels = 1
    while (1 << levels) <= n_states:
        levels += 1
    table = np.empty((levels, n_states), dtype=np.float64)  # table[k, i] = max(prev[i : i + 2**k])
    log2 = np.zeros(n_states + 1, dtype=np.int64)
    for m in range(2, n_states + 1):
        log2[m] = log2[m // 2] + 1
    dense = 0
    for t in range(1, n_steps):
        prev = value[t - 1]
        has_nan = False
        for i in range(n_states):
            v = prev[i]
            if np.isnan(v):
                has_nan = True
            table[0, i] = v
        for k in range(1, levels):
            half = 1 << (k - 1)
            for i in range(n_states - (1 << k) + 1):
                table[k, i] = max(table[k - 1, i], table[k - 1, i + half])
        for j in range(n_states):
            best = -np.inf
            arg = -1
            exact = False
            if not has_nan and counts[j] > 0:
                q = 0
                while q < counts[j]:  # run by run of consecutive source states: the maximum, then its first place
                    a = rows[j, q]
                    b = a + 1
                    q += 1
                    while q < counts[j] and rows[j, q] == b:
                        b += 1
                        q += 1
                    m = prev[a] + log_trans_t[j, a]
                    for i in range(a + 1, b):
                        v = prev[i] + log_trans_t[j, i]
                        m = max(m, v)
                    if arg < 0 or m > best:
                        for i in range(a, b):
                            if prev[i] + log_trans_t[j, i] == m:
                                arg = i
                                break
                        best = m
                # the largest previous value outside the band: over the gaps before, between and after its runs
                out = -np.inf
                lo = 0
                for q in range(counts[j] + 1):
                    hi = rows[j, q] if q < counts[j] else n_states  # the gap is [lo, hi)
                    if hi > lo:
                        k = log2[hi - lo]
                        out = max(out, table[k, lo], table[k, hi - (1 << k)])
                    if q < counts[j]:
                        lo = rows[j, q] + 1
                exact = out == -np.inf or best > out + log_zero
            if not exact:
                row = prev + log_trans_t[j]
                arg = np.argmax(row)
                best = row[arg]
                dense += 1
            ptr[t, j] = arg
            value[t, j] = log_prob[t, j] + best
    state = np.zeros(n_steps, dtype=np.uint16)
    state[-1] = np.argmax(value[-1])
    for t in range(n_steps - 2, -1, -1):
        state[t] = ptr[t + 1, state[t + 1]]
    return state, dense


def band_of(transition: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each target state j, the source states i with ``transition[i, j] != 0`` (ascending, padded) and their
    count."""
    nz = transition != 0
    counts = nz.sum(axis=0).astype(np.int64)
    rows = np.zeros((transition.shape[1], max(int(counts.max(initial=0)), 1)), dtype=np.int64)
    for j in range(transition.shape[1]):
        idx = np.flatnonzero(nz[:, j])
        rows[j, : idx.size] = idx
    return rows, counts


def viterbi_states(prob: np.ndarray, transition: np.ndarray, p_init: np.ndarray) -> tuple[np.ndarray, int]:
    """The most likely states of ``prob`` (states x steps) and how many (step, state) maxima were taken densely,
    with librosa's log-domain values (``log(x + tiny(prob))``)."""
    from librosa.util import tiny

    epsilon = tiny(prob)
    log_trans = np.log(transition + epsilon)
    log_prob = np.log(prob + epsilon)
    log_p_init = np.log(p_init + epsilon)
    log_zero = float(np.log(np.zeros((), dtype=log_trans.dtype) + epsilon))
    rows, counts = band_of(transition)
    return _banded(np.ascontiguousarray(log_prob.T), np.ascontiguousarray(log_trans.T), log_p_init, rows, counts,
                   log_zero)


def viterbi(prob: np.ndarray, transition: np.ndarray, *, p_init: np.ndarray | None = None,
            return_logp: bool = False) -> np.ndarray:
    """``librosa.sequence.viterbi(prob, transition, p_init=p_init)``, over the band where it can win (module
    docstring). ``prob`` is (..., states, steps); ``return_logp=True`` is left to librosa."""
    import librosa

    if return_logp or p_init is None or np.ndim(prob) < 2:
        return librosa.sequence.viterbi(prob, transition, p_init=p_init, return_logp=return_logp)
    n_states, n_steps = prob.shape[-2:]
    if transition.shape != (n_states, n_states) or p_init.shape != (n_states,):
        return librosa.sequence.viterbi(prob, transition, p_init=p_init)  # let librosa explain what is wrong
    lead = prob.shape[:-2]
    flat = prob.reshape(-1, n_states, n_steps)
    states = np.stack([viterbi_states(p, transition, p_init)[0] for p in flat]) if flat.shape[0] else \
        np.zeros((0, n_steps), dtype=np.uint16)
    return states.reshape(*lead, n_steps)


@contextlib.contextmanager
def banded_viterbi_in_librosa() -> Iterator[None]:
    """``librosa.sequence.viterbi`` is :func:`viterbi` inside the block (``librosa.pyin`` looks it up there)."""
    import librosa.sequence

    original = librosa.sequence.viterbi
    librosa.sequence.viterbi = viterbi
    try:
        yield
    finally:
        librosa.sequence.viterbi = original
