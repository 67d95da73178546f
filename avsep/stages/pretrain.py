"""The encoder pre-training stages (rules/encoders.smk): the pre-training set, CLIP and CLAP pre-trained on it,
and their zero-shot table.

Offline, ``clip.pretrained: random`` and ``clap.weights: random`` give encoders that know nothing. These stages
make small encoders that know the synthetic domain (:mod:`avsep.encoders.pretrain_clip`,
:mod:`avsep.encoders.pretrain_clap`) from a pre-training set no table tests on
(:mod:`avsep.data.prepare.synth_pretrain`); point the caches at them with ``clip.model: avsep-ViT-Ti-8-64``,
``clip.pretrained: models/encoders/clip/weights.safetensors`` and ``clap.weights: models/encoders/clap/weights``.

Params (``encoders:``, every key optional; defaults in :data:`DEFAULTS`)::

    encoders:
      pretrain_data: {train: 16, heldout: 2, clip_seconds: 4.0, fps: 2.0}   # clips per class; seconds per clip; frames per second
      clip: {model: avsep-ViT-Ti-8-64, epochs: 3, lr: 0.001, frame_stride: 1}
      clap: {epochs: 24, lr: 0.001, width: 32}
      table: {datasets: [synth-music, synth-music21, synth-sounds], split: test}
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from avsep.config.params import Params
from avsep.core.io import status_counts, write_csv

DEFAULTS: dict[str, dict[str, Any]] = {
    "pretrain_data": {"train": 16, "heldout": 2, "clip_seconds": 4.0, "fps": 2.0},
    "clip": {"model": "avsep-ViT-Ti-8-64", "epochs": 3, "lr": 1e-3, "frame_stride": 1},
    "clap": {"epochs": 24, "lr": 1e-3, "width": 32},
    "table": {"datasets": ["synth-music", "synth-music21", "synth-sounds"], "split": "test"},
}

TABLE_COLUMNS = ("encoder", "architecture", "weights", "dataset", "split", "unit", "n", "accuracy", "n_clips",
                 "clip_accuracy", "classes", "chance")


def settings(p: Params, section: str) -> dict[str, Any]:
    """``encoders.<section>`` of the params with :data:`DEFAULTS` filled in."""
    return {**DEFAULTS[section], **(p.raw.get("encoders", {}) or {}).get(section, {})}


def _threads(p: Params) -> None:
    import torch

    from avsep.core.seeding import deterministic_algorithms

    torch.set_num_threads(max(1, int(p.threads)))
    deterministic_algorithms(torch)


def synth_pretrain(p: Params, out_manifest: str | Path, workers: int = 1) -> pd.DataFrame:
    """Render the pre-training set straight into its extracted form (audio at the front-end rate, frames at
    ``encoders.pretrain_data.fps``), after checking it shares no clip with a table dataset's test split."""
    from avsep.data.prepare.synth_pretrain import generate_pretrain, pretrain_config, table_dataset_configs

    s = settings(p, "pretrain_data")
    cfg = pretrain_config(p.seed, train=int(s["train"]), heldout=int(s["heldout"]),
                          clip_seconds=float(s["clip_seconds"]), synth=p.synth)
    t0 = time.time()
    df = generate_pretrain(cfg, Path(out_manifest).parent, table_dataset_configs(p.raw), sample_rate=p.frontend.sample_rate,
                           fps=float(s["fps"]), min_samples=p.frontend.clip_samples, workers=workers)
    print(f"synth_pretrain {cfg.name}: {status_counts(df)} ({len(cfg.classes)} classes, seed {cfg.seed}, "
          f"{time.time() - t0:.1f} s)", flush=True)
    return df


def pretrain_clip(p: Params, manifest: str | Path, out_weights: str | Path, out_log: str | Path) -> dict[str, Any]:
    """Pre-train the small CLIP (``encoders.clip``) on the extracted pre-training set."""
    from avsep.encoders.pretrain_clip import ClipPretrainConfig
    from avsep.encoders.pretrain_clip import pretrain_clip as run

    c = settings(p, "clip")
    _threads(p)
    cfg = ClipPretrainConfig(model=str(c["model"]), epochs=int(c["epochs"]), lr=float(c["lr"]),
                             frame_stride=int(c["frame_stride"]), seed=p.seed)
    r = run(manifest, out_weights, out_log, cfg)
    last = r["log"][-1]
    print(f"pretrain_clip {cfg.model}: {r['train_frames']} frames, {last['step']} steps, loss {last['loss']:.3f}, "
          f"held-out zero-shot {100 * last['heldout_accuracy']:.1f}% ({r['seconds']:.1f} s, {r['cpu_seconds']:.1f} s CPU, on {p.threads} thread(s))",
          flush=True)
    return r


def pretrain_clap(p: Params, manifest: str | Path, out_dir: str | Path, out_log: str | Path) -> dict[str, Any]:
    """Pre-train the small CLAP (``encoders.clap``) on the extracted pre-training set."""
    from avsep.encoders.pretrain_clap import ClapPretrainConfig
    from avsep.encoders.pretrain_clap import pretrain_clap as run

    c = settings(p, "clap")
    _threads(p)
    cfg = ClapPretrainConfig(epochs=int(c["epochs"]), lr=float(c["lr"]), width=int(c["width"]), seed=p.seed)
    r = run(manifest, out_dir, out_log, p.frontend.clip_samples, p.frontend.sample_rate, cfg)
    last = r["log"][-1]
    print(f"pretrain_clap: {r['train_clips']} clips, {last['step']} steps, loss {last['loss']:.3f}, held-out zero-shot "
          f"{100 * last['heldout_accuracy']:.1f}% ({r['seconds']:.1f} s, {r['cpu_seconds']:.1f} s CPU, on {p.threads} thread(s))", flush=True)
    return r


def encoders_table(p: Params, clip_weights: str | Path, clap_dir: str | Path, manifests: dict[str, str | Path],
                   out_csv: str | Path) -> pd.DataFrame:
    """Zero-shot accuracy of the pre-trained encoders and of random ones of the same architectures on each
    dataset's ``encoders.table.split`` clips (``results/encoders.csv``)."""
    from avsep.encoders.clap import load_clap
    from avsep.encoders.clip import load_clip
    from avsep.encoders.zeroshot import clap_zeroshot, clip_zeroshot, load_clap_text

    _threads(p)
    t0 = time.time()
    split = str(settings(p, "table")["split"])
    model = str(settings(p, "clip")["model"])
    clips = [load_clip(str(clip_weights), model_name=model), load_clip("random", model_name=model, seed=p.seed)]
    pre, pre_text = load_clap(str(clap_dir)), load_clap_text(str(clap_dir))
    rand = load_clap("random", seed=p.seed, config=pre.model.config, feature_extractor=pre.feature_extractor)
    claps = [(pre, pre_text), (rand, load_clap_text("random", seed=p.seed, config=pre_text.model.config,
                                                        tokenizer=pre_text.tokenizer))]
    rows = []
    for dataset, manifest in manifests.items():
        for enc in clips:
            rows.append({"dataset": dataset, **clip_zeroshot(enc, manifest, split, extract_fps=p.fps,
                                                             clip_fps=float(p.raw["clip"]["fps"]))})
        for enc, text in claps:
            rows.append({"dataset": dataset, **clap_zeroshot(enc, text, manifest, p.frontend.sample_rate,
                                                             p.frontend.clip_samples, split)})
    df = pd.DataFrame(rows)[list(TABLE_COLUMNS)]
    write_csv(df, out_csv)
    for r in rows:
        print(f"encoders_table {r['dataset']}: {r['encoder']} {r['weights']}: {100 * r['accuracy']:.1f}% "
              f"(chance {100 * r['chance']:.1f}%)", flush=True)
    print(f"encoders_table: {len(rows)} rows ({time.time() - t0:.1f} s)", flush=True)
    return df
