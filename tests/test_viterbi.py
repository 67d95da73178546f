"""The band-aware Viterbi of pYIN (avsep.audio.viterbi) returns librosa's states exactly."""

import librosa
import numpy as np
import pytest

from avsep.audio import viterbi as V
from avsep.audio.acoustics import estimate_f0

SR = 11025


def _signal(seed: int) -> np.ndarray:
    """A gliding harmonic tone, a jump of an octave and a half, silence and noise: voiced and unvoiced frames."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(1.2 * SR)) / SR
    f = np.where(t < 0.6, 220 * 2 ** (t / 0.6), 1100.0)
    phase = 2 * np.pi * np.cumsum(f) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 6))
    x[int(0.8 * SR): int(0.95 * SR)] = 0.0
    x[int(0.95 * SR):] = 0.3 * rng.standard_normal(x.size - int(0.95 * SR))
    return (0.3 * x).astype(np.float32)


def _pyin_inputs(x: np.ndarray) -> dict:
    """What librosa.pyin hands its Viterbi for ``x`` (the arguments captured on their way)."""
    seen = {}
    original = librosa.sequence.viterbi

    def grab(prob, transition, *, p_init=None, return_logp=False):
        seen.update(prob=prob, transition=transition, p_init=p_init)
        return original(prob, transition, p_init=p_init, return_logp=return_logp)

    librosa.sequence.viterbi = grab
    try:
        librosa.pyin(x, fmin=65.4, fmax=2093.0, sr=SR, frame_length=1024, hop_length=256, center=True,
                     pad_mode="constant")
    finally:
        librosa.sequence.viterbi = original
    return seen


@pytest.mark.parametrize("seed", [0, 1])
def test_the_states_of_pyins_problems_are_librosas(seed):
    a = _pyin_inputs(_signal(seed))
    want = librosa.sequence.viterbi(a["prob"], a["transition"], p_init=a["p_init"])
    got = V.viterbi(a["prob"], a["transition"], p_init=a["p_init"])
    assert got.dtype == want.dtype and np.array_equal(got, want)
    _, dense = V.viterbi_states(a["prob"][0], a["transition"], a["p_init"])
    assert dense < 0.1 * a["prob"].shape[-1] * a["prob"].shape[-2]  # almost every maximum taken in the band


def test_states_where_the_band_cannot_decide_are_decoded_densely_and_still_agree():
    """Observation probabilities of 0 and 1 (log -708 and 0): in-band candidates then often lose to the bound, and
    out-of-band transitions (log tiny) can win; the dense fallback keeps librosa's answer."""
    rng = np.random.default_rng(3)
    n, steps, width = 40, 60, 3
    trans = np.zeros((n, n))
    for i in range(n):
        lo, hi = max(0, i - width), min(n, i + width + 1)
        trans[i, lo:hi] = rng.random(hi - lo) + 0.1
    trans /= trans.sum(axis=1, keepdims=True)
    prob = rng.random((n, steps)) * (rng.random((n, steps)) < 0.3)  # mostly exact zeros
    prob[rng.integers(0, n, steps), np.arange(steps)] = 1.0
    p_init = np.full(n, 1.0 / n)
    want = librosa.sequence.viterbi(prob, trans, p_init=p_init)
    states, dense = V.viterbi_states(prob, trans, p_init)
    assert dense > 0 and np.array_equal(states, want)


def test_estimate_f0_is_unchanged():
    x = _signal(4)
    f0, voiced = estimate_f0(x, SR)
    ref, _, _ = librosa.pyin(x, fmin=65.40639132514966, fmax=2093.004522404789, sr=SR, frame_length=1024,
                             hop_length=256, center=True, pad_mode="constant")
    assert np.array_equal(f0, ref, equal_nan=True) and voiced.any() and (~voiced).any()
    assert librosa.sequence.viterbi is not V.viterbi  # librosa's own is back after the call
