"""Acoustic properties of HFRA Figure 1 / Appendix A1: attack ratio and harmonic complexity.

HFRA places every instrument class on two axes, each the mean over the clips of the class:

* **transient property** -- the amplitude (attack) ratio ``AR = max|x| / RMS(x)``
  (:func:`attack_ratio`); larger = more percussive;
* **harmonic complexity** -- ``1 - HCR`` with the harmonic component ratio
  ``HCR = sum_i E_i / i / sum_i E_i`` over the first ``N = 8`` harmonics of the ``librosa.pyin``
  fundamental (:func:`harmonic_complexity`); larger = more energy in high-order harmonics.

The paper does not give the pYIN settings or how ``E_i`` is read off the spectrum; the choices
made here are documented in :func:`harmonic_energies` and can be changed by keyword.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from avsep.audio.waveform import as_waveform
from avsep.core.progress import progress

__all__ = [
    "attack_ratio",
    "class_properties",
    "default_frame_length",
    "estimate_f0",
    "harmonic_complexity",
    "harmonic_energies",
    "hcr_from_energies",
]

#: pYIN search range used when none is given: C2 (65.4 Hz) to C7 (2093 Hz), librosa's example range.
DEFAULT_FMIN = 65.40639132514966
DEFAULT_FMAX = 2093.004522404789


# --------------------------------------------------------------------------- transient property


def attack_ratio(x: np.ndarray) -> float:
    """Amplitude (attack) ratio ``AR = max_t |x(t)| / sqrt(mean_t x(t)^2)`` (HFRA Appendix A1).

    The crest factor of the whole clip: ``sqrt(2)`` for a sine, 1 for a constant, ``sqrt(N)`` for a
    single impulse among ``N`` samples. Returns NaN for an all-zero clip (0/0).
    """
    arr = as_waveform(x)
    rms = math.sqrt(float(np.mean(arr * arr)))
    if rms == 0.0:
        return float("nan")
    return float(np.max(np.abs(arr)) / rms)


# --------------------------------------------------------------------------- f0 and harmonics


def default_frame_length(sample_rate: int) -> int:
    """pYIN/STFT frame length: librosa's 2048 samples at 22,050 Hz (~93 ms), scaled to
    ``sample_rate`` and rounded to a power of two (1024 at 11,025 Hz)."""
    return int(2 ** round(math.log2(2048 * sample_rate / 22050)))


def _f0_range(sample_rate: int, fmin: float | None, fmax: float | None) -> tuple[float, float]:
    lo = DEFAULT_FMIN if fmin is None else float(fmin)
    hi = min(DEFAULT_FMAX, 0.45 * sample_rate) if fmax is None else float(fmax)
    if not 0 < lo < hi < sample_rate / 2:
        raise ValueError(f"need 0 < fmin < fmax < sample_rate/2, got {lo}, {hi}, {sample_rate}")
    return lo, hi


def estimate_f0(
    x: np.ndarray,
    sample_rate: int,
    fmin: float | None = None,
    fmax: float | None = None,
    frame_length: int | None = None,
    hop_length: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Frame-wise fundamental frequency by ``librosa.pyin`` (probabilistic YIN).

    Parameters are passed to ``librosa.pyin`` (``center=True``, zero padding, other settings at
    librosa's defaults); ``fmin``/``fmax`` default to C2/C7 (capped at 0.45 ``sample_rate``),
    ``frame_length`` to :func:`default_frame_length`, ``hop_length`` to ``frame_length // 4``.

    Returns
    -------
    (f0, voiced):
        f0 in Hz (NaN in unvoiced frames) and the boolean voiced flag, both (n_frames,); frame
        ``t`` is centred on sample ``t * hop_length``.
    """
    import librosa

    arr = as_waveform(x)
    lo, hi = _f0_range(sample_rate, fmin, fmax)
    frame_length = frame_length or default_frame_length(sample_rate)
    hop_length = hop_length or frame_length // 4
    from avsep.audio.viterbi import banded_viterbi_in_librosa

    with banded_viterbi_in_librosa():  # the same states, decoded over the transition band (avsep/audio/viterbi.py)
        f0, voiced, _ = librosa.pyin(
            arr, fmin=lo, fmax=hi, sr=sample_rate, frame_length=frame_length,
            hop_length=hop_length, center=True, pad_mode="constant",
        )
    return np.asarray(f0, dtype=np.float64), np.asarray(voiced, dtype=bool)


def _power_spectrogram(x: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """``|STFT|^2`` (frame_length // 2 + 1, n_frames): periodic Hann, centred, zero padded --
    the same framing as :func:`estimate_f0`."""
    pad = frame_length // 2
    padded = np.pad(x, (pad, pad))
    n_frames = 1 + (len(padded) - frame_length) // hop_length
    idx = np.arange(frame_length)[None, :] + hop_length * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame_length) / frame_length)
    return (np.abs(np.fft.rfft(padded[idx] * window, axis=1)) ** 2).T


def _band_energy(power: np.ndarray, freq: float, bin_hz: float, band_bins: int, peak_search: float) -> float:
    """Energy of the partial near ``freq`` in one frame's power spectrum (see harmonic_energies)."""
    last = len(power) - 1
    lo = min(last, max(0, int(round(freq * (1 - peak_search) / bin_hz))))
    hi = min(last, max(lo, int(round(freq * (1 + peak_search) / bin_hz))))
    peak = lo + int(np.argmax(power[lo : hi + 1]))
    return float(power[max(0, peak - band_bins) : peak + band_bins + 1].sum())


def harmonic_energies(
    x: np.ndarray,
    sample_rate: int,
    n_harmonics: int = 8,
    fmin: float | None = None,
    fmax: float | None = None,
    frame_length: int | None = None,
    band_bins: int = 2,
    peak_search: float = 0.03,
) -> np.ndarray:
    """Mean energies ``E_1..E_N`` (N = ``n_harmonics``) at the harmonics of the pYIN f0.

    Definition used (the paper gives none beyond "average energy at the first N harmonics"):

    1. f0 per frame from :func:`estimate_f0` (frames of ``frame_length``, hop ``frame_length//4``).
    2. Power spectrum of the same frames: ``|rFFT(Hann * frame)|^2`` (energy = squared magnitude).
    3. In each **voiced** frame, for ``i = 1..N``: find the largest bin ``p`` among the bins
       nearest to ``i f0 (1 -+ peak_search)`` (a +-3 % search absorbs the quantisation of the pYIN
       f0 and slight inharmonicity) and take ``E_i(t) = sum |X|^2`` over bins
       ``p - band_bins .. p + band_bins`` (the Hann main lobe is +-2 bins wide, so the whole energy
       of a partial is counted whatever its offset from the bin centres). A harmonic at or above
       Nyquist gets ``E_i(t) = 0``. ``band_bins=0, peak_search=0`` gives the plain
       "bin nearest to i f0" reading.
    4. ``E_i`` = mean of ``E_i(t)`` over the voiced frames.

    Returns
    -------
    np.ndarray:
        (n_harmonics,) float64; all NaN when pYIN finds no voiced frame.
    """
    arr = as_waveform(x)
    frame_length = frame_length or default_frame_length(sample_rate)
    hop_length = frame_length // 4
    f0, voiced = estimate_f0(arr, sample_rate, fmin, fmax, frame_length, hop_length)
    power = _power_spectrogram(arr, frame_length, hop_length)
    frames = [t for t in np.flatnonzero(voiced & np.isfinite(f0)) if t < power.shape[1]]
    if not frames:
        return np.full(n_harmonics, np.nan)
    bin_hz = sample_rate / frame_length
    energies = np.zeros((len(frames), n_harmonics))
    for row, t in enumerate(frames):
        for i in range(1, n_harmonics + 1):
            if i * f0[t] < sample_rate / 2:
                energies[row, i - 1] = _band_energy(power[:, t], i * f0[t], bin_hz, band_bins, peak_search)
    return energies.mean(axis=0)


def hcr_from_energies(energies: Sequence[float] | np.ndarray) -> float:
    """Harmonic component ratio ``HCR = sum_i E_i / i / sum_i E_i`` (i from 1); NaN if all zero."""
    e = np.asarray(energies, dtype=np.float64)
    total = e.sum()
    if not np.isfinite(total) or total <= 0:
        return float("nan")
    return float((e / np.arange(1, len(e) + 1)).sum() / total)


def harmonic_complexity(
    x: np.ndarray,
    sample_rate: int,
    n_harmonics: int = 8,
    fmin: float | None = None,
    fmax: float | None = None,
    **kwargs: Any,
) -> float:
    """Harmonic complexity ``1 - HCR`` of a clip (HFRA Appendix A1), in ``[0, 1 - 1/N]``.

    ``HCR = sum_{i=1}^N E_i / i / sum_i E_i`` with ``E_i`` the mean energy (squared STFT
    magnitude) at harmonic ``i`` of the ``librosa.pyin`` f0 over the voiced frames, exactly as
    defined in :func:`harmonic_energies` (``kwargs``: ``frame_length``, ``band_bins``,
    ``peak_search``). A pure tone gives 0; a signal with harmonic amplitudes ``a_i`` gives
    ``1 - sum(a_i^2 / i) / sum(a_i^2)``. NaN when no frame is voiced.
    """
    return 1.0 - hcr_from_energies(harmonic_energies(x, sample_rate, n_harmonics, fmin, fmax, **kwargs))


# --------------------------------------------------------------------------- per class


def _finite_mean(values: np.ndarray) -> float:
    """Mean of the finite entries of ``values``; NaN when there is none."""
    ok = np.isfinite(values)
    return float(np.mean(values[ok])) if ok.any() else float("nan")


def class_properties(
    clips: Mapping[str, Sequence[np.ndarray]], sample_rate: int, **kwargs: Any
) -> pd.DataFrame:
    """Mean attack ratio and harmonic complexity per class (the coordinates of HFRA Figure 1).

    Parameters
    ----------
    clips:
        ``{label: [waveform, ...]}``, mono waveforms at ``sample_rate``.
    kwargs:
        Passed to :func:`harmonic_complexity`.

    Returns
    -------
    pandas.DataFrame:
        One row per label (in ``clips`` order) with columns ``label``, ``n_clips``,
        ``attack_ratio`` (mean over the clips with a finite AR, i.e. not silent),
        ``harmonic_complexity`` (mean over the clips where pYIN found voiced frames) and
        ``n_voiced_clips`` (how many clips that second mean is over).
    """
    rows = []
    for label, waves in progress(clips.items(), total=len(clips), desc="acoustic properties (pYIN)", unit="class"):
        ar = np.array([attack_ratio(w) for w in waves], dtype=np.float64)
        hc = np.array([harmonic_complexity(w, sample_rate, **kwargs) for w in waves], dtype=np.float64)
        rows.append({
            "label": label,
            "n_clips": len(waves),
            "attack_ratio": _finite_mean(ar),
            "harmonic_complexity": _finite_mean(hc),
            "n_voiced_clips": int(np.isfinite(hc).sum()),
        })
    columns = ["label", "n_clips", "attack_ratio", "harmonic_complexity", "n_voiced_clips"]
    return pd.DataFrame(rows, columns=columns)
