"""Each family reads audio at its own front-end rate: HFRA at 11,625 Hz and LAVSS at 11,025 Hz read the same
extracted MUSIC clips (`datasets.<name>.extract_rate`), resampled on read exactly as the whole file would be."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy.signal import resample_poly
from workflow_helpers import micro_params

from avsep.config.params import Params
from avsep.data.store import ClipStore, clips_at_rate, resample_crop


@pytest.fixture()
def wav(tmp_path):
    x = np.random.default_rng(0).standard_normal((40_000, 2)).astype(np.float32) * 0.1
    path = tmp_path / "audio" / "a.wav"
    path.parent.mkdir()
    sf.write(path, x, 11625, subtype="FLOAT")
    return path, x.astype(np.float64)


@pytest.mark.parametrize("rate", [11025, 16000, 8000])
def test_a_resampled_crop_equals_the_same_samples_of_the_whole_file_resampled(wav, rate):
    path, x = wav
    up, down = rate // np.gcd(rate, 11625), 11625 // np.gcd(rate, 11625)
    whole = resample_poly(x, up, down, axis=0).T
    n = whole.shape[1]
    for start, length in [(0, 1000), (777, 4096), (n // 2, 5000), (n - 300, 300), (n - 300, 1000)]:
        with sf.SoundFile(path) as f:
            y = resample_crop(f, start, length, rate)
        ref = whole[:, start:start + length]
        assert y.shape == ref.shape
        assert np.abs(y - ref).max() < 1e-6, (rate, start)


def test_the_store_reads_another_rate_resampled_and_the_manifest_follows(wav, tmp_path):
    _, x = wav
    manifest = pd.DataFrame({"id": ["a"], "status": ["ok"], "audio": ["audio/a.wav"], "frames": ["frames/a"],
                             "n_samples": [40_000], "sample_rate": [11625], "label": ["x"], "split": ["train"]})
    manifest.to_parquet(tmp_path / "manifest.parquet")
    same = ClipStore(tmp_path / "manifest.parquet", 11625, channels=2)
    assert np.array_equal(same.audio("a", 100, 50), x[100:150].T.astype(np.float32))
    other = ClipStore(tmp_path / "manifest.parquet", 11025, channels=2)
    at = clips_at_rate(manifest, 11025)
    n = int(at["n_samples"][0])
    assert n == -(-40_000 * 11025 // 11625) and at["sample_rate"][0] == 11025
    assert other.audio("a", n - 1000, 1000).shape == (2, 1000)  # the last samples at 11,025 Hz exist
    with pytest.raises(ValueError, match=r"a\.wav: crop \[.*\) runs past the end"):
        other.audio("a", n - 999, 1000)
    assert clips_at_rate(manifest, 11625) is manifest  # nothing to convert


def test_extract_rate_and_the_lavss_front_end_are_configurable():
    raw = micro_params()
    raw["datasets"]["synth-fairplay"] = {"source": "synth", "classes": "synth-fairplay",
                                         "clips_per_class": {"train": 1, "test": 1}, "binaural": True,
                                         "extract_rate": 11025}
    raw["audio"].update(sample_rate=11625, n_fft=1024)
    raw["lavss"]["audio"] = {"sample_rate": 11025, "n_fft": 1022, "clip_samples": 32767, "warp_bins": 128}
    raw["detect"]["datasets"] = ["synth-music", "synth-fairplay"]
    p = Params(raw)
    assert p.extract_rate("synth-music") == 11625 and p.extract_rate("synth-fairplay") == 11025
    assert (p.lavss.frontend.sample_rate, p.lavss.frontend.n_fft) == (11025, 1022)
    assert (p.frontend.sample_rate, p.frontend.n_fft) == (11625, 1024)
