"""The embedding stages (rules/embed.smk): the CLIP image-embedding and CLAP audio-embedding caches."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from avsep.config.params import Params
from avsep.encoders.cache import build_clap_caches, build_clip_cache


def _threads(p: Params) -> None:
    import torch

    torch.set_num_threads(max(1, int(p.threads)))


def clip_cache(p: Params, dataset: str, split: str, manifest: str | Path, npy: str | Path, parquet: str | Path) -> pd.DataFrame:
    """CLIP embeddings of the frames of one split (``clip.*`` params)."""
    from avsep.encoders.clip import load_clip

    c = p.raw["clip"]
    _threads(p)
    t0 = time.time()
    enc = load_clip(str(c["pretrained"]), model_name=str(c["model"]), seed=p.seed)
    table = build_clip_cache(manifest, split, enc, p.fps, float(c["fps"]), int(c["batch_size"]), npy, parquet,
                             meta={"dataset": dataset})
    print(
        f"clip_cache {dataset}/{split}: {len(table)} frames of {table['clip'].nunique()} clips at {c['fps']} fps, "
        f"weights {enc.weights} ({time.time() - t0:.1f} s)",
        flush=True,
    )
    return table


def clap_cache(p: Params, dataset: str, manifest: str | Path, mixtures: str | Path, out: dict[str, str | Path]) -> None:
    """CLAP embeddings of the distinct training mixtures and of each clip (``clap.*`` params)."""
    from avsep.encoders.clap import load_clap

    c = p.raw["clap"]
    _threads(p)
    t0 = time.time()
    weights = str(c["weights"])
    enc = load_clap(weights, seed=p.seed)
    table = pd.read_parquet(mixtures)
    mix_idx, clip_idx = build_clap_caches(
        manifest, table, enc, p.frontend.sample_rate, p.frontend.clip_samples, p.dataset(dataset).channels,
        int(p.mixing["num_sources"]), int(c["batch_size"]), out,
    )
    print(
        f"clap_cache {dataset}: {len(mix_idx)} distinct mixtures (of {len(table)} training samples) and "
        f"{len(clip_idx)} clips, weights {enc.weights} ({time.time() - t0:.1f} s on {p.threads} thread(s))",
        flush=True,
    )
