"""Encoders that know the domain: the pre-training set, micro CLIP and CLAP pre-trained on it, their labels,
caches and zero-shot accuracy (all offline, micro sizes)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml

from avsep.core.weights import sha256_files
from avsep.data.prepare.decode import ExtractConfig
from avsep.data.prepare.extract import extract_dataset
from avsep.data.prepare.instruments import DATASET_CLASSES
from avsep.data.prepare.synth import SynthConfig, generate_dataset, plan_clips
from avsep.data.prepare.synth_frames import layout_boxes, plan_layout
from avsep.data.prepare.synth_pretrain import (
    PRETRAIN_CLASSES,
    check_disjoint,
    check_disjoint_plans,
    frame_times,
    generate_pretrain,
    pretrain_config,
    table_dataset_configs,
)
from avsep.encoders.captions import WordTokenizer, captions

ROOT = Path(__file__).resolve().parents[1]
SR = 11025
L = 11025  # 1-s crops: the micro CLAP's feature extractor takes 1 s
FPS = 8.0
CLASSES = ("accordion", "trumpet", "xylophone", "tuba", "violin", "saxophone")
CLIP_MODEL = "avsep-ViT-Ti-8-64"  # the shipped small config (avsep/encoders/configs/), loaded by name


def _extract(raw: Path, out: Path) -> Path:
    extract_dataset(raw / "manifest.parquet", out, ExtractConfig(sample_rate=SR, channels=1, fps=FPS, min_samples=L),
                    progress=False, workers=2)
    return out / "manifest.parquet"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A micro pre-training set (6 classes, varied; rendered straight into its extracted form) and test clips of
    the same classes by the normal renderer and extract stage (mp4, ffmpeg)."""
    d = tmp_path_factory.mktemp("pretrain_made")
    small = {"clip_seconds": 2.0, "video_fps": 8, "frame_size": 64}
    pre = pretrain_config(7, train=5, heldout=1, name="tiny-pretrain", classes=CLASSES, synth={"render_rate": 16000})
    pre = dataclasses.replace(pre, **small)
    test = SynthConfig(name="tiny-table", classes=CLASSES, clips_per_class={"test": 2}, sample_rate=16000, seed=7, **small)
    generate_pretrain(pre, d / "pre/extract", [test], sample_rate=SR, fps=FPS, min_samples=L, workers=2, progress=False)
    generate_dataset(test, d / "test/raw", progress=False, workers=2)
    return {"pre": d / "pre/extract/manifest.parquet", "test": _extract(d / "test/raw", d / "test/extract")}


def _clip(made, out: Path, epochs: int) -> Path:
    from avsep.encoders.pretrain_clip import ClipPretrainConfig, pretrain_clip

    torch.set_num_threads(1)
    cfg = ClipPretrainConfig(model=CLIP_MODEL, epochs=epochs, lr=2e-3, warmup_steps=5, frame_stride=2, seed=7,
                             dataset="tiny-pretrain")
    pretrain_clip(made["pre"], out / "weights.safetensors", out / "pretrain_log.csv", cfg, bar=False)
    return out


def _clap(made, out: Path, epochs: int) -> Path:
    from avsep.encoders.pretrain_clap import ClapPretrainConfig, pretrain_clap

    torch.set_num_threads(1)
    cfg = ClapPretrainConfig(epochs=epochs, lr=2e-3, warmup_steps=5, seed=7, dataset="tiny-pretrain")
    pretrain_clap(made["pre"], out / "weights", out / "pretrain_log.csv", L, SR, cfg, bar=False)
    return out


@pytest.fixture(scope="module")
def clip_pretrained(made, tmp_path_factory) -> Path:
    return _clip(made, tmp_path_factory.mktemp("clip"), epochs=3)


@pytest.fixture(scope="module")
def clap_pretrained(made, tmp_path_factory) -> Path:
    return _clap(made, tmp_path_factory.mktemp("clap"), epochs=25)


# --- the pre-training set -----------------------------------------------------------------------------------


def test_pretraining_set_shares_no_clip_with_any_table_test_split():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    tables = table_dataset_configs(raw)
    pre = pretrain_config(raw["seed"], synth=raw["synth"])
    counts = check_disjoint(pre, tables)
    assert counts["pretrain"] == len(PRETRAIN_CLASSES) * 18 and counts["test"] > 0
    assert set(PRETRAIN_CLASSES) >= {c for names in DATASET_CLASSES.values() for c in names}
    # not just by name: the pre-training clips are rendered from other seeds than any table clip of any split
    table_seeds = {pl.seed for cfg in tables for pl in plan_clips(cfg)}
    assert not table_seeds & {pl.seed for pl in plan_clips(pre)}
    # a set that does render a table's test clip is refused, whatever it is called
    music = next(c for c in tables if c.name == "synth-music")
    with pytest.raises(ValueError, match="synth-music-accordion-test-000"):
        check_disjoint(music, tables)
    renamed = [dataclasses.replace(pl, id=f"other-{pl.id}") for pl in plan_clips(music) if pl.split == "test"]
    with pytest.raises(ValueError, match="same .seed"):
        check_disjoint_plans(renamed[:1], [pl for pl in plan_clips(music) if pl.split == "test"])


def test_pretraining_clips_are_what_the_extract_stage_would_make_of_their_mp4(tmp_path):
    """The pre-training set skips the mp4: its wavs and frames match those the extract stage decodes from the
    same clips rendered as mp4 (up to the H.264/AAC coding), and are the same bytes on every run."""
    from PIL import Image

    cfg = dataclasses.replace(pretrain_config(3, train=1, heldout=1, name="tiny-pretrain", classes=CLASSES[:2],
                                              synth={"render_rate": 16000}), clip_seconds=2.0, video_fps=8, frame_size=64)
    assert frame_times(16, 8, 4).tolist() == list(range(0, 16, 2)) and frame_times(64, 16, 2).tolist() == list(range(0, 64, 8))
    direct = generate_pretrain(cfg, tmp_path / "direct", [], sample_rate=SR, fps=4.0, min_samples=L, progress=False)
    again = generate_pretrain(cfg, tmp_path / "again", [], sample_rate=SR, fps=4.0, min_samples=L, workers=2, progress=False)
    generate_dataset(cfg, tmp_path / "raw", progress=False)
    extract_dataset(tmp_path / "raw/manifest.parquet", tmp_path / "ffmpeg",
                    ExtractConfig(sample_rate=SR, channels=1, fps=4.0, min_samples=L), progress=False, workers=1)
    ref = pd.read_parquet(tmp_path / "ffmpeg/manifest.parquet")
    assert list(direct["id"]) == list(ref["id"]) and (direct["status"] == "ok").all()
    for col in ("label", "split", "audio", "frames", "n_samples", "n_frames", "sample_rate", "channels", "width", "height"):
        assert direct[col].tolist() == ref[col].tolist(), col
    assert pd.read_parquet(tmp_path / "direct/manifest.parquet").equals(direct) and again.equals(direct)
    for r in direct.to_dict("records"):
        a, _ = sf.read(tmp_path / "direct" / r["audio"], dtype="float32")
        b, _ = sf.read(tmp_path / "ffmpeg" / r["audio"], dtype="float32")
        assert np.corrcoef(a, b)[0, 1] > 0.99
        assert (tmp_path / "direct" / r["audio"]).read_bytes() == (tmp_path / "again" / r["audio"]).read_bytes()
        for k in range(1, r["n_frames"] + 1):
            f = f"{r['frames']}/{k:06d}.jpg"
            x, y = (np.asarray(Image.open(tmp_path / run / f), dtype=np.float32) for run in ("direct", "ffmpeg"))
            assert np.abs(x - y).mean() < 4.0, f  # the same frame (the neighbours differ by more: objects drift)
            assert (tmp_path / "direct" / f).read_bytes() == (tmp_path / "again" / f).read_bytes()


def test_variation_knobs_are_off_by_default_and_keep_objects_in_frame():
    base = SynthConfig(name="k", classes=("cello",), clips_per_class={"train": 3}, clip_seconds=1.0, seed=2)
    knobs = dataclasses.replace(base, size_range=(0.22, 0.5), free_position=True, background="varied", pitch_shift=5)
    assert (base.size_range, base.free_position, base.background, base.pitch_shift) == (None, False, "muted", 0)
    for cfg in (base, knobs):
        for pl in plan_clips(cfg):
            b = layout_boxes(cfg, pl, plan_layout(cfg, pl))
            assert ((b[["x1", "y1", "x2", "y2"]] >= 0) & (b[["x1", "y1", "x2", "y2"]] <= 1)).all().all()
    with pytest.raises(ValueError):
        dataclasses.replace(base, background="neon")
    with pytest.raises(ValueError):
        dataclasses.replace(base, size_range=(0.5, 0.2))


def test_captions_and_word_tokenizer():
    assert captions("acoustic_guitar", "image")[0] == "a photo of a acoustic guitar being played"
    assert captions("rain", "audio")[0] == "the sound of rain"
    tok = WordTokenizer.for_classes()
    enc = tok(["the sound of rain", "a recording of a acoustic guitar being played"])
    assert enc["input_ids"].shape == (2, 16) and (enc["input_ids"][:, 0] == 0).all()
    assert int(enc["attention_mask"][0].sum()) == 6 and 3 not in enc["input_ids"][0].tolist()  # no <unk>


# --- CLIP ---------------------------------------------------------------------------------------------------


def test_clip_pretraining_is_deterministic(made, tmp_path):
    from safetensors.torch import load_file

    runs = [_clip(made, tmp_path / run, epochs=1) for run in ("a", "b")]
    a, b = (load_file(str(d / "weights.safetensors")) for d in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (runs[0] / "weights.safetensors").read_bytes() == (runs[1] / "weights.safetensors").read_bytes()
    log = pd.read_csv(runs[0] / "pretrain_log.csv")
    assert list(log.columns[:3]) == ["epoch", "step", "loss"] and list(log["epoch"]) == [1]


def test_clip_loads_offline_with_its_label_beats_chance_and_caches_reproducibly(clip_pretrained, made, tmp_path):
    from avsep.encoders.cache import build_clip_cache
    from avsep.encoders.clip import load_clip
    from avsep.encoders.zeroshot import clip_zeroshot

    path = clip_pretrained / "weights.safetensors"
    enc = load_clip(str(path), model_name=CLIP_MODEL)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    assert enc.weights == f"synth-pretrained(tiny-pretrain, seed=7)@sha256:{sha}"
    assert tuple(np.atleast_1d(enc.preprocess_cfg["size"])) in ((64,), (64, 64))
    z = clip_zeroshot(enc, made["test"], "test", extract_fps=FPS, clip_fps=1.0)
    assert z["chance"] == pytest.approx(1 / 6) and z["accuracy"] >= 2 * z["chance"], z
    rand = clip_zeroshot(load_clip("random", model_name=CLIP_MODEL, seed=7), made["test"], "test", extract_fps=FPS)
    assert rand["weights"] == "random(seed=7)" and rand["accuracy"] < z["accuracy"]
    arrays = []
    for run in ("a", "b"):
        npy, idx = tmp_path / f"{run}.npy", tmp_path / f"{run}.parquet"
        build_clip_cache(made["test"], "test", load_clip(str(path), model_name=CLIP_MODEL), FPS, 1.0, 8, npy, idx)
        arrays.append(np.load(npy))
    assert np.array_equal(*arrays) and arrays[0].shape[1] == 512
    assert json.loads((tmp_path / "a.json").read_text())["weights"] == enc.weights


# --- CLAP ---------------------------------------------------------------------------------------------------


def test_clap_pretraining_is_deterministic(made, tmp_path):
    from safetensors.torch import load_file

    runs = [_clap(made, tmp_path / run, epochs=2) for run in ("a", "b")]
    a, b = (load_file(str(d / "weights/model.safetensors")) for d in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    names = sorted(p.name for p in (runs[0] / "weights").iterdir())
    assert names == ["config.json", "model.safetensors", "preprocessor_config.json", "pretrain.json", "vocab.json"]
    for f in names:
        assert (runs[0] / "weights" / f).read_bytes() == (runs[1] / "weights" / f).read_bytes(), f
    assert len(pd.read_csv(runs[0] / "pretrain_log.csv")) == 2


def test_clap_loads_offline_with_its_label_beats_chance_and_caches_reproducibly(clap_pretrained, made, tmp_path):
    from avsep.data.mixtures import Crop, make_train_mixtures
    from avsep.encoders.cache import build_clap_caches
    from avsep.encoders.clap import load_clap
    from avsep.encoders.zeroshot import clap_zeroshot, load_clap_text

    d = clap_pretrained / "weights"
    enc = load_clap(str(d))
    files = [d / "config.json", d / "model.safetensors"]
    assert enc.weights == f"synth-pretrained(tiny-pretrain, seed=7)@sha256:{sha256_files(files)[:12]}"
    assert enc.max_samples == 48000 and enc.feature_extractor.feature_size == 32
    text = load_clap_text(str(d))
    z = clap_zeroshot(enc, text, made["test"], SR, L, "test")
    assert z["chance"] == pytest.approx(1 / 6) and z["accuracy"] >= 2 * z["chance"], z
    rand = load_clap("random", seed=7, config=enc.model.config, feature_extractor=enc.feature_extractor)
    zr = clap_zeroshot(rand, load_clap_text("random", seed=7, config=text.model.config, tokenizer=text.tokenizer), made["test"], SR, L, "test")
    assert zr["weights"] == "random(seed=7)" and zr["accuracy"] < z["accuracy"]
    manifest = pd.read_parquet(made["test"]).assign(split="train")
    pd.DataFrame(manifest).to_parquet(tmp_path / "manifest.parquet")
    for c in manifest["audio"]:
        (tmp_path / c).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / c).write_bytes((made["test"].parent / c).read_bytes())
    crop = Crop(clip_samples=L, sample_rate=SR, fps=FPS, n_frames=1)
    table = make_train_mixtures(manifest, steps=2, batch_size=2, num_sources=2, seed=1, crop=crop, gain_range=(0.5, 1.5),
                                per_epoch=4, distinct_epochs=1)
    arrays = []
    for run in ("a", "b"):
        out = {k: tmp_path / f"{run}_{k}.{'npy' if k.endswith('npy') else 'parquet'}"
               for k in ("mixtures_npy", "mixtures_idx", "clips_npy", "clips_idx")}
        build_clap_caches(tmp_path / "manifest.parquet", table, load_clap(str(d)), SR, L, 1, 2, 4, out)
        arrays.append((np.load(out["mixtures_npy"]), np.load(out["clips_npy"])))
    assert np.array_equal(arrays[0][0], arrays[1][0]) and np.array_equal(arrays[0][1], arrays[1][1])
    assert (pd.read_parquet(tmp_path / "a_clips_idx.parquet")["weights"] == enc.weights).all()
