"""The papers' protocol (``params/paper.yaml`` and the code overlays beside it) as a params dict, and the same
protocol at full model size on the embedded synthetic data with the offline stand-ins for the pretrained encoders:
what the paper-size smoke test (CPU) and ``benchmarks/paper_size_gpu.py`` (GPU) train."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from avsep.config.sources import merge

ROOT = Path(__file__).resolve().parents[2]


def paper_params(*overlays: str | Path, root: str | Path = ROOT) -> dict[str, Any]:
    """``params.yaml`` with ``params/paper.yaml`` and ``overlays`` (e.g. ``params/hfra-code.yaml``) merged over it in
    order, as ``snakemake --configfile params/paper.yaml OVERLAY`` merges them."""
    root = Path(root)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    for f in ("params/paper.yaml", *overlays):
        merge(raw, yaml.safe_load((root / f).read_text()))
    return raw


def on_synthetic_data(raw: dict[str, Any], weights: str, clips_per_class: int, steps: int, batch_size: int,
                      clip_seconds: float = 6.5, frame_size: int = 64) -> dict[str, Any]:
    """``raw`` (the paper config) at its model sizes on ``synth-music`` (HFRA, LAVSS pre-training) and
    ``synth-fairplay`` (LAVSS, extracted at its 11,025 Hz), with random CLIP and CLAP and the ResNet-18 state dict
    ``weights`` in place of ImageNet's, ground-truth boxes and labels (no detector), ``steps`` of ``batch_size``."""
    per = {"train": clips_per_class, "test": 1}
    raw["datasets"] = {
        "synth-music": {"source": "synth", "classes": "synth-music", "clips_per_class": per, "binaural": False},
        "synth-fairplay": {"source": "synth", "classes": "synth-fairplay", "clips_per_class": per, "binaural": True,
                           "extract_rate": 11025},
    }
    raw["synth"].update(clip_seconds=clip_seconds, video_fps=8, frame_size=frame_size)
    raw["threads"] = 2
    raw["clip"].update(model="ViT-B-32", pretrained="random", fps=1.0, batch_size=32)
    raw["clap"].update(weights="random", batch_size=8)
    raw["detect"]["datasets"] = []
    raw["model_defaults"]["visual_weights"] = weights
    raw["train"].update(steps=steps, batch_size=batch_size, lr_milestones=[], checkpoint_every=steps,
                        log_every=max(1, min(10, steps // 2)))
    raw["tables"] = {"table1": {"dataset": "synth-music", "methods": ["sop", "hfra_align"]}}
    raw["figures"] = {}
    lv = raw["lavss"]
    lv.update(dataset="synth-fairplay", pretrain_dataset="synth-music", boxes="ground_truth", labels="metadata",
              train_same_type=0.0)
    lv["defaults"]["visual_weights"] = weights
    lv["pretrain"]["train"] = {"steps": steps, "lr_milestones": []}
    lv["train"].update(steps=steps, batch_size=batch_size, lr_milestones=[], checkpoint_every=steps,
                       log_every=max(1, min(10, steps // 2)))
    return raw
