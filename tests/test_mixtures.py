import pandas as pd
import pytest
import torch

from avsep.audio.mixing import mix_sources
from avsep.data.mixtures import Crop, TrainSampler, frame_indices, make_test_mixtures


def _manifest(n_labels=4, per_label=3, n_samples=90000) -> pd.DataFrame:
    rows = []
    for li in range(n_labels):
        for j in range(per_label):
            rows.append({"id": f"c{li}_{j}", "status": "ok", "reason": "", "label": f"lab{li}", "split": "test",
                         "n_samples": n_samples + 1000 * j, "n_frames": 64})
    rows.append({"id": "bad", "status": "failed", "reason": "x", "label": "lab0", "split": "test", "n_samples": 0, "n_frames": 0})
    return pd.DataFrame(rows)


KW = dict(num_sources=2, crop=Crop(clip_samples=65535, sample_rate=11025, fps=8.0, n_frames=3))


def test_test_mixture_list_is_identical_across_runs_and_seeded():
    a = make_test_mixtures(_manifest(), n_mixtures=20, seed=7, **KW)
    b = make_test_mixtures(_manifest().sample(frac=1, random_state=3), n_mixtures=20, seed=7, **KW)
    pd.testing.assert_frame_equal(a, b)
    c = make_test_mixtures(_manifest(), n_mixtures=20, seed=8, **KW)
    assert not a.equals(c)


def test_test_mixtures_have_distinct_labels_centre_crops_and_skip_failed_clips():
    t = make_test_mixtures(_manifest(), n_mixtures=30, seed=1, **KW)
    assert (t["label_0"] != t["label_1"]).all()
    assert "bad" not in set(t["clip_0"]) | set(t["clip_1"])
    m = _manifest().set_index("id")
    for _, r in t.iterrows():
        slack = m.loc[r["clip_0"], "n_samples"] - 65535
        assert r["start_0"] == slack // 2


def test_too_few_labels_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 2 labels"):
        make_test_mixtures(_manifest(n_labels=1), n_mixtures=2, seed=1, **KW)


def test_frame_indices_inside_crop():
    idx = frame_indices(start=11025, clip_samples=65535, sample_rate=11025, fps=8, n_frames_clip=100, k=3)
    assert idx == (round((1 + 65535 / 11025 / 6) * 8), round((1 + 65535 / 11025 / 2) * 8), round((1 + 5 * 65535 / 11025 / 6) * 8))


def test_train_sampler_is_a_pure_function_of_step():
    m = _manifest()
    m["split"] = "train"
    s1 = TrainSampler(m, seed=3, **KW)
    s2 = TrainSampler(m, seed=3, **KW)
    assert s1.batch(5, 4) == s2.batch(5, 4)
    assert s1.batch(5, 4) != s1.batch(6, 4)
    for spec in s1.batch(0, 16):
        assert all(0.5 <= g <= 1.5 for g in spec.gains)
        assert len(set(spec.labels)) == 2


def test_mix_sources_clips_and_divides_by_n():
    audio = torch.tensor([[[0.9, -0.2], [0.5, 0.1]]])
    src, mix = mix_sources(audio, torch.tensor([[1.5, 1.0]]))
    assert torch.allclose(src, torch.tensor([[[1.0, -0.3], [0.5, 0.1]]]) / 2)
    assert torch.allclose(mix, src.sum(1))
