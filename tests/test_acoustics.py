"""Tests of avsep.audio.acoustics: attack ratio and harmonic complexity (HFRA Appendix A1)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from avsep.audio.acoustics import (
    attack_ratio,
    class_properties,
    estimate_f0,
    harmonic_complexity,
    harmonic_energies,
    hcr_from_energies,
)

SR = 11025
AMPS = np.array([1.0, 0.5, 0.8, 0.3, 0.2, 0.6, 0.1, 0.4])


def _harmonic_tone(f0: float, amps: np.ndarray, seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """Sum of sines at i*f0 with amplitudes amps[i-1] and random phases."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return sum(a * np.sin(2 * np.pi * f0 * i * t + rng.uniform(0, 2 * np.pi)) for i, a in enumerate(amps, 1))


def _closed_form(amps: np.ndarray) -> float:
    e = amps**2
    return 1.0 - float(np.sum(e / np.arange(1, len(e) + 1)) / np.sum(e))


def test_attack_ratio_sine() -> None:
    n = np.arange(8000)
    x = np.sin(2 * np.pi * n / 80)  # 100 integer periods, the peak is sampled
    assert attack_ratio(x) == pytest.approx(math.sqrt(2), abs=1e-3)


def test_attack_ratio_constant_and_impulse() -> None:
    assert attack_ratio(np.full(1000, -0.3)) == pytest.approx(1.0, abs=1e-12)
    impulse = np.zeros(4096)
    impulse[1234] = 0.7
    assert attack_ratio(impulse) == pytest.approx(math.sqrt(4096), rel=1e-12)
    assert math.isnan(attack_ratio(np.zeros(10)))
    with pytest.raises(ValueError):
        attack_ratio(np.zeros((2, 10)))


def test_f0_of_220_hz_harmonic_tone() -> None:
    f0, voiced = estimate_f0(_harmonic_tone(220.0, AMPS), SR)
    assert voiced.mean() > 0.9
    assert np.nanmedian(f0[voiced]) == pytest.approx(220.0, rel=0.02)


def test_pure_tone_has_zero_complexity() -> None:
    assert harmonic_complexity(_harmonic_tone(220.0, np.array([1.0])), SR) == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("f0", [110.0, 220.0, 311.1])
def test_complexity_matches_closed_form(f0: float) -> None:
    got = harmonic_complexity(_harmonic_tone(f0, AMPS), SR)
    assert got == pytest.approx(_closed_form(AMPS), abs=0.02)


def test_harmonic_energies_proportional_to_squared_amplitudes() -> None:
    e = harmonic_energies(_harmonic_tone(220.0, AMPS), SR)
    np.testing.assert_allclose(e / e[0], AMPS**2, atol=0.01)


def test_hcr_from_energies() -> None:
    assert hcr_from_energies([1.0, 0, 0]) == 1.0
    assert hcr_from_energies([0.0, 1.0]) == 0.5
    assert math.isnan(hcr_from_energies([0.0, 0.0]))


def test_class_properties() -> None:
    clips = {
        "pure": [_harmonic_tone(220.0, np.array([1.0]), seconds=1.0, seed=s) for s in range(2)],
        "rich": [_harmonic_tone(196.0, AMPS, seconds=1.0), _harmonic_tone(247.0, AMPS, seconds=1.0)],
    }
    df = class_properties(clips, SR)
    assert list(df.columns) == ["label", "n_clips", "attack_ratio", "harmonic_complexity", "n_voiced_clips"]
    assert df["label"].tolist() == ["pure", "rich"]
    assert df["n_clips"].tolist() == [2, 2] and df["n_voiced_clips"].tolist() == [2, 2]
    pure, rich = df.to_dict("records")
    assert pure["attack_ratio"] == pytest.approx(math.sqrt(2), abs=0.01)
    assert pure["harmonic_complexity"] == pytest.approx(0.0, abs=1e-3)
    assert rich["harmonic_complexity"] == pytest.approx(_closed_form(AMPS), abs=0.02)
    assert rich["attack_ratio"] > pure["attack_ratio"]


def test_bad_waveforms_are_rejected_by_name():
    import pytest

    from avsep.audio.acoustics import attack_ratio
    from avsep.evaluation.baselines import rpca_separate

    with pytest.raises(ValueError, match="signal contains NaN"):
        attack_ratio(np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="mixture must be a non-empty 1-D waveform"):
        rpca_separate(np.zeros((2, 100)), 11025)
