"""CLIP and CLAP loaders on checkpoints the tests write, the embedding caches and the training-mixture manifest.

Sockets are blocked (conftest): every loader call here (``random`` or a local path) must stay offline.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from PIL import Image, ImageDraw
from workflow_helpers import default_params

from avsep.audio.mixing import mix_sources
from avsep.config.params import ConfigError, Params
from avsep.core.io import write_parquet
from avsep.data.mixtures import Crop, make_train_mixtures, specs_from_train_table
from avsep.data.store import ClipStore, load_batch
from avsep.encoders.cache import build_clap_caches, build_clip_cache, clip_frame_table, distinct_mixtures, mixture_waves
from avsep.encoders.clap import CLAP_RATE, load_clap, resample
from avsep.encoders.clip import load_clip

SR = 11025
L = 65535
FPS = 8.0
CROP = Crop(clip_samples=L, sample_rate=SR, fps=FPS, n_frames=3)


def _sha12(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _images() -> list[Image.Image]:
    """Made images of different sizes and modes (preprocessing resizes and crops them)."""
    out = []
    for i, (w, h) in enumerate([(128, 128), (160, 96), (64, 200)]):
        im = Image.new("RGB", (w, h), (40 * i, 200 - 50 * i, 90))
        d = ImageDraw.Draw(im)
        d.rectangle([w // 4, h // 4, w // 2 + 10 * i, h // 2], fill=(250, 20 * i, 30))
        d.ellipse([5, 5, 30 + 5 * i, 40], fill=(10, 10, 240))
        out.append(im if i != 2 else im.convert("L"))
    return out


# ------------------------------------------------------------------------------------------------
# CLIP loader
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_random():
    return load_clip("random", seed=0)


def test_clip_random_is_seeded_preprocessing_is_clips_and_embeddings_are_unit_norm(clip_random):
    images = _images()
    a = clip_random.embed_images(images)
    assert a.shape == (3, 512) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    assert clip_random.weights == "random(seed=0)"
    cfg = clip_random.preprocess_cfg
    assert tuple(cfg["size"]) == (224, 224) and cfg["interpolation"] == "bicubic"
    np.testing.assert_allclose(cfg["mean"], (0.48145466, 0.4578275, 0.40821073))
    np.testing.assert_allclose(cfg["std"], (0.26862954, 0.26130258, 0.27577711))
    assert clip_random.preprocess(images[1]).shape == (3, 224, 224)
    # same seed: identical weights and embeddings; another seed: different
    again = load_clip("random", seed=0).model.state_dict()
    assert all(torch.equal(v, again[k]) for k, v in clip_random.model.state_dict().items())
    other = load_clip("random", seed=1)
    assert other.weights == "random(seed=1)"
    assert not np.allclose(other.embed_images(images), a, atol=1e-3)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_clip_loads_a_written_state_dict_and_reproduces_its_embeddings(clip_random, tmp_path, suffix):
    state = {k: v.contiguous() for k, v in clip_random.model.state_dict().items()}
    path = tmp_path / f"vit_b32{suffix}"
    if suffix == ".pt":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file(state, str(path))
    enc = load_clip(str(path))
    assert enc.weights == f"file:{path.name}@sha256:{_sha12(path)}"
    images = _images()
    pixels = torch.stack([clip_random.preprocess(im) for im in images])
    assert torch.equal(enc.embed_tensor(pixels), clip_random.embed_tensor(pixels))
    assert np.array_equal(enc.embed_images(images), clip_random.embed_images(images))


def test_clip_bad_pretrained_values_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_clip(str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="laion2b_s34b_b79k"):  # lists the valid tags, downloads nothing
        load_clip("no-such-tag")
    bad = tmp_path / "weights.txt"
    bad.write_text("x")
    with pytest.raises(ValueError, match="weights.txt"):
        load_clip(str(bad))


# ------------------------------------------------------------------------------------------------
# CLAP loader
# ------------------------------------------------------------------------------------------------


def _small_clap_config():
    from transformers import ClapAudioConfig

    return ClapAudioConfig(hidden_size=192, patch_embeds_hidden_size=24, depths=[1, 1, 1, 1], num_attention_heads=[1, 2, 4, 8])


@pytest.fixture(scope="module")
def clap_random():
    return load_clap("random", seed=0, config=_small_clap_config())


def _waves() -> list[np.ndarray]:
    t = np.arange(L) / SR
    long = np.sin(2 * np.pi * 330 * np.arange(12 * SR) / SR) * np.linspace(0, 1, 12 * SR)  # > 10 s
    noise = np.random.default_rng(0).standard_normal(L) * 0.1
    return [(0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), noise.astype(np.float32), long.astype(np.float32)]


def test_resample_to_48k_keeps_length_ratio_and_pitch():
    x = np.sin(2 * np.pi * 1000 * np.arange(SR) / SR).astype(np.float32)
    y = resample(x, SR)
    assert y.dtype == np.float32 and len(y) == CLAP_RATE
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    assert abs(np.argmax(spec) * CLAP_RATE / len(y) - 1000) <= 1


def test_clap_random_is_seeded_deterministic_and_unit_norm(clap_random):
    waves = _waves()
    a = clap_random.embed(waves, SR)
    assert a.shape == (3, 512) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    assert clap_random.weights == "random(seed=0)" and clap_random.truncation == "rand_trunc"
    assert np.array_equal(clap_random.embed(waves, SR), a)  # the > 10 s input is centre-cropped, not randomly
    assert np.array_equal(load_clap("random", seed=0, config=_small_clap_config()).embed(waves, SR), a)
    assert not np.allclose(load_clap("random", seed=1, config=_small_clap_config()).embed(waves, SR), a, atol=1e-3)


def test_clap_loads_a_save_pretrained_directory_and_reproduces_its_embeddings(clap_random, tmp_path):
    d = tmp_path / "clap-small"
    clap_random.model.save_pretrained(d)
    clap_random.feature_extractor.save_pretrained(d)
    enc = load_clap(str(d))
    digest = hashlib.sha256()
    for f in ("config.json", "model.safetensors"):
        digest.update(f.encode() + b"\0" + (d / f).read_bytes())
    assert enc.weights == f"dir:clap-small@sha256:{digest.hexdigest()[:12]}"
    waves = _waves()
    assert np.array_equal(enc.embed(waves, SR), clap_random.embed(waves, SR))


def test_clap_reads_the_audio_branch_of_a_full_clap_checkpoint(tmp_path):
    """LAION's checkpoints are full ClapModel directories; the audio branch alone gives get_audio_features."""
    from transformers import ClapConfig, ClapModel

    text = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37, "vocab_size": 99,
                "max_position_embeddings": 64}
    torch.manual_seed(3)
    full = ClapModel(ClapConfig(audio_config=_small_clap_config().to_dict(), text_config=text, projection_dim=512)).eval()
    full.save_pretrained(tmp_path / "clap-full")
    enc = load_clap(str(tmp_path / "clap-full"))
    waves = [resample(w, SR) for w in _waves()[:2]]
    feats = enc.features(waves)
    with torch.no_grad():
        ref = full.get_audio_features(**feats).numpy()
    assert np.array_equal(enc.embed(_waves()[:2], SR), ref)


def test_clap_bad_weights_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_clap(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_clap(str(tmp_path / "empty"))


# ------------------------------------------------------------------------------------------------
# Training-mixture manifest
# ------------------------------------------------------------------------------------------------


def _manifest(n_labels=3, per_label=2) -> pd.DataFrame:
    rows = []
    for li in range(n_labels):
        for j in range(per_label):
            rows.append({"id": f"c{li}_{j}", "status": "ok", "reason": "", "label": f"lab{li}", "split": "train",
                         "n_samples": 80000 + 1000 * j, "n_frames": 58})
    rows.append({"id": "bad", "status": "failed", "reason": "x", "label": "lab0", "split": "train", "n_samples": 0, "n_frames": 0})
    return pd.DataFrame(rows)


TM = {"num_sources": 2, "seed": 5, "crop": CROP, "gain_range": (0.5, 1.5)}
CONTENT = ["mixture_id"] + [f"{c}_{j}" for j in range(2) for c in ("clip", "label", "start", "frames", "gain")]


def test_train_mixtures_are_seeded_and_epochs_repeat_with_distinct_epochs():
    a = make_train_mixtures(_manifest(), steps=10, batch_size=4, per_epoch=8, distinct_epochs=2, **TM)
    assert list(a["step"]) == [s for s in range(10) for _ in range(4)] and list(a["index"]) == list(range(4)) * 10
    g = a["step"] * 4 + a["index"]
    assert (a["epoch"] == g // 8).all()
    b = make_train_mixtures(_manifest().sample(frac=1, random_state=1), steps=10, batch_size=4, per_epoch=8, distinct_epochs=2, **TM)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(make_train_mixtures(_manifest(), steps=10, batch_size=4, per_epoch=8, distinct_epochs=2, **{**TM, "seed": 6}))

    ep = {e: a[a["epoch"] == e][CONTENT].reset_index(drop=True) for e in range(5)}
    pd.testing.assert_frame_equal(ep[2], ep[0])
    pd.testing.assert_frame_equal(ep[4], ep[0])
    pd.testing.assert_frame_equal(ep[3], ep[1])
    assert not ep[1][CONTENT[1:]].equals(ep[0][CONTENT[1:]])
    assert a["mixture_id"].nunique() == 16
    assert a.groupby("mixture_id")[CONTENT[1:]].nunique().max().max() == 1  # one key, one content

    # null: every epoch new; the mixture of global sample g does not depend on the batch size
    c = make_train_mixtures(_manifest(), steps=10, batch_size=4, per_epoch=8, distinct_epochs=None, **TM)
    assert c["mixture_id"].nunique() == 40
    pd.testing.assert_frame_equal(c[CONTENT].iloc[:16], a[CONTENT].iloc[:16])
    d = make_train_mixtures(_manifest(), steps=5, batch_size=8, per_epoch=8, distinct_epochs=None, **TM)
    pd.testing.assert_frame_equal(d[CONTENT].reset_index(drop=True), c[CONTENT].reset_index(drop=True))


def test_train_mixtures_use_random_crops_gains_and_distinct_labels_of_ok_clips():
    t = make_train_mixtures(_manifest(), steps=20, batch_size=4, per_epoch=80, distinct_epochs=None, **TM)
    m = _manifest().set_index("id")
    assert "bad" not in set(t["clip_0"]) | set(t["clip_1"])
    assert (t["label_0"] != t["label_1"]).all()
    for j in range(2):
        assert t[f"gain_{j}"].between(0.5, 1.5).all() and t[f"gain_{j}"].nunique() > 40
        slack = m.loc[t[f"clip_{j}"], "n_samples"].to_numpy() - L
        assert ((t[f"start_{j}"] >= 0) & (t[f"start_{j}"] <= slack)).all() and t[f"start_{j}"].nunique() > 40
    specs = specs_from_train_table(t, 2)
    for sp, r in zip(specs, t.to_dict("records")):
        assert sp.gains == (r["gain_0"], r["gain_1"])
        assert sp.frames[0] == CROP.frames(r["start_0"], 58)


# ------------------------------------------------------------------------------------------------
# Caches on a made extract directory
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def extract_dir(tmp_path_factory):
    """An extract manifest with wavs and JPEG frames: 3 labels x 2 train clips, 2 test clips, a failed and a short clip."""
    root = tmp_path_factory.mktemp("extract")
    rng = np.random.default_rng(0)
    rows = []
    spec = [(f"c{li}_{j}", f"lab{li}", "train", 72000 + 2000 * j) for li in range(3) for j in range(2)]
    spec += [("t0", "lab0", "test", 70000), ("t1", "lab1", "test", 70000), ("short", "lab2", "test", 40000)]
    for cid, lab, split, n in spec:
        t = np.arange(n) / SR
        x = 0.6 * np.sin(2 * np.pi * (200 + 37 * len(rows)) * t) + 0.05 * rng.standard_normal(n)
        (root / "audio").mkdir(exist_ok=True)
        sf.write(root / f"audio/{cid}.wav", x.astype(np.float32), SR, subtype="PCM_16")
        n_frames = int(n / SR * FPS)
        folder = root / f"frames/{cid}"
        folder.mkdir(parents=True)
        for f in range(n_frames):
            im = Image.new("RGB", (48, 48), (len(rows) * 25 % 256, f * 4 % 256, 100))
            ImageDraw.Draw(im).rectangle([f % 40, 5, f % 40 + 8, 20], fill=(255, 255, 0))
            im.save(folder / f"{f + 1:06d}.jpg", quality=95)
        rows.append({"id": cid, "status": "ok", "reason": "", "label": lab, "split": split, "audio": f"audio/{cid}.wav",
                     "frames": f"frames/{cid}", "n_samples": n, "n_frames": n_frames, "channels": 1})
    rows.append({"id": "gone", "status": "failed", "reason": "no audio stream", "label": "lab1", "split": "test",
                 "audio": "", "frames": "", "n_samples": 0, "n_frames": 0, "channels": 1})
    write_parquet(pd.DataFrame(rows), root / "manifest.parquet")
    return root / "manifest.parquet"


def test_clip_frame_table_samples_frames_at_the_configured_rate(extract_dir):
    m = pd.read_parquet(extract_dir)
    t = clip_frame_table(m, "test", FPS, 1.0)
    assert sorted(t["clip"].unique()) == ["short", "t0", "t1"]  # every ok clip; the failed one is absent
    t0 = t[t["clip"] == "t0"]
    n_frames = int(m.set_index("id").loc["t0", "n_frames"])  # 50 frames = 6.25 s -> 1 fps gives t = 0..6
    assert list(t0["frame"]) == [0, 8, 16, 24, 32, 40, 48] and n_frames == 50
    np.testing.assert_allclose(t0["time"], t0["frame"] / FPS)
    every = clip_frame_table(m, "test", FPS, FPS)
    assert list(every[every["clip"] == "t0"]["frame"]) == list(range(50))
    with pytest.raises(ValueError, match="clip.fps"):
        clip_frame_table(m, "test", FPS, 10.0)


def test_clip_cache_index_meta_and_rows(extract_dir, clip_random, tmp_path):
    npy, idx = tmp_path / "clip_test.npy", tmp_path / "clip_test.parquet"
    build_clip_cache(extract_dir, "test", clip_random, FPS, 1.0, 16, npy, idx, meta={"dataset": "made"})
    arr, index = np.load(npy), pd.read_parquet(idx)
    meta = json.loads((tmp_path / "clip_test.json").read_text())
    expected = clip_frame_table(pd.read_parquet(extract_dir), "test", FPS, 1.0)
    assert arr.shape == (len(expected), 512) and arr.dtype == np.float32
    pd.testing.assert_frame_equal(index[list(expected.columns)], expected)
    assert list(index["row"]) == list(range(len(index))) and (index["weights"] == "random(seed=0)").all()
    assert meta["encoder"] == "open_clip ViT-B-32" and meta["weights"] == "random(seed=0)"
    assert meta["frame_rate"] == 1.0 and meta["extract_fps"] == FPS and meta["rows"] == len(index)
    assert meta["normalized"] is True and meta["dataset"] == "made" and meta["split"] == "test"
    # each row is the embedding of its own frame file
    root = extract_dir.parent
    for r in index.iloc[[5, len(index) - 1]].to_dict("records"):
        with Image.open(root / f"frames/{r['clip']}/{r['frame'] + 1:06d}.jpg") as im:
            ref = clip_random.embed_images([im.convert("RGB")])[0]
        np.testing.assert_allclose(arr[r["row"]], ref, atol=1e-5)
    assert not np.allclose(arr[0], arr[1], atol=1e-4)


def test_clap_input_is_the_training_mixture_and_caches_are_indexed(extract_dir, clap_random, tmp_path):
    manifest = pd.read_parquet(extract_dir)
    table = make_train_mixtures(manifest, steps=3, batch_size=4, per_epoch=4, distinct_epochs=2, **TM)
    keys, specs = distinct_mixtures(table, 2)
    assert keys == sorted(table["mixture_id"].unique()) and len(keys) == 8  # epoch 2 repeats epoch 0

    # the mixture CLAP sees == the training path (load_batch + mix_sources) == the formula read off the wavs
    store = ClipStore(extract_dir, SR)
    waves = mixture_waves(store, specs[:3], L)
    audio, _, gains = load_batch(store, specs[:3], L, 32)
    assert torch.equal(torch.from_numpy(waves), mix_sources(audio[:, :, 0], gains)[1])
    root = extract_dir.parent
    for w, sp in zip(waves, specs[:3]):
        srcs = [sf.read(root / f"audio/{c}.wav", dtype="float32")[0][s : s + L] for c, s in zip(sp.clips, sp.starts)]
        ref = sum(np.clip(np.float32(g) * x, -1, 1) / 2 for g, x in zip(sp.gains, srcs))
        np.testing.assert_allclose(w, ref, atol=1e-6)

    out = {k: tmp_path / f"{k}.{'npy' if k.endswith('npy') else 'parquet'}"
           for k in ("mixtures_npy", "mixtures_idx", "clips_npy", "clips_idx")}
    build_clap_caches(extract_dir, table, clap_random, SR, L, 1, 2, 4, out)
    mix_arr, mix_idx = np.load(out["mixtures_npy"]), pd.read_parquet(out["mixtures_idx"])
    assert mix_arr.shape == (8, 512) and list(mix_idx["key"]) == keys and list(mix_idx["row"]) == list(range(8))
    assert (mix_idx["weights"] == "random(seed=0)").all()
    first = table.drop_duplicates("mixture_id").set_index("mixture_id")
    assert (mix_idx.set_index("key")["gain_1"] == first.loc[keys, "gain_1"]).all()
    np.testing.assert_allclose(mix_arr[:3], clap_random.embed(list(waves), SR), atol=1e-5)

    clip_arr, clip_idx = np.load(out["clips_npy"]), pd.read_parquet(out["clips_idx"])
    assert sorted(clip_idx["clip"]) == ["c0_0", "c0_1", "c1_0", "c1_1", "c2_0", "c2_1", "t0", "t1"]  # not short/failed
    assert clip_arr.shape == (8, 512)
    n = manifest.set_index("id").loc[clip_idx["clip"], "n_samples"].to_numpy()
    assert (clip_idx["start"].to_numpy() == (n - L) // 2).all()
    r = clip_idx[clip_idx["clip"] == "t1"].iloc[0]
    centre = store.audio("t1", int(r["start"]), L)[0]
    np.testing.assert_allclose(clip_arr[r["row"]], clap_random.embed([centre], SR)[0], atol=1e-5)
    for name in ("mixtures_npy", "clips_npy"):
        meta = json.loads(out[name].with_suffix(".json").read_text())
        assert meta["weights"] == "random(seed=0)" and meta["encoder"].startswith("CLAP")
        assert meta["sample_rate"] == SR and meta["encoder_sample_rate"] == 48000 and meta["clip_samples"] == L


def test_config_has_the_embedding_keys_and_rejects_clip_fps_above_the_extracted_rate():
    raw = default_params()
    # the default: the domain encoders pre-trained by rules/encoders.smk; random weights validate as well
    assert raw["clip"]["pretrained"] == "models/encoders/clip/weights.safetensors"
    assert raw["clap"]["weights"] == "models/encoders/clap/weights"
    Params({**raw, "clip": {**raw["clip"], "model": "ViT-B-32", "pretrained": "random"},
            "clap": {**raw["clap"], "weights": "random"}})
    assert set(raw["mixing"]["train_mixtures"]) == {"per_epoch", "distinct_epochs"}
    Params(raw)
    raw["clip"]["fps"] = raw["audio"]["fps"] * 2
    with pytest.raises(ConfigError, match="clip.fps"):
        Params(raw)
    raw = default_params()
    raw["clap"]["weightz"] = "x"
    with pytest.raises(ConfigError, match="clap.weightz"):
        Params(raw)
