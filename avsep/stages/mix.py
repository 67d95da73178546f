"""The mixture stages (rules/mix.smk, rules/embed.smk's train_mixtures): the seeded test and training mixture lists."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from avsep.config.params import Params
from avsep.core.io import write_parquet
from avsep.data.mixtures import make_test_mixtures, make_train_mixtures
from avsep.data.store import read_clips


def test_mixtures(p: Params, dataset: str, manifest: str | Path, out: str | Path, n_frames: int) -> pd.DataFrame:
    """The fixed, seeded list of test mixtures every model of ``dataset`` is scored on."""
    m = read_clips(manifest, p.frontend.sample_rate)
    table = make_test_mixtures(
        m, n_mixtures=int(p.mixing["test_mixtures"]), num_sources=int(p.mixing["num_sources"]), seed=p.seed,
        crop=p.crop(n_frames),
    )
    write_parquet(table, out)
    ok_test = m[(m["status"] == "ok") & (m["split"] == "test")]
    print(
        f"test_mixtures {dataset}: {len(table)} mixtures from ok={len(ok_test)} test clips of "
        f"{ok_test['label'].nunique()} labels (clips not ok: {int((m['status'] != 'ok').sum())}, never used)",
        flush=True,
    )
    return table


def train_mixtures(p: Params, dataset: str, manifest: str | Path, out: str | Path, n_frames: int) -> pd.DataFrame:
    """The seeded training-mixture manifest for ``train.steps x train.batch_size`` samples."""
    tm = p.mixing["train_mixtures"]
    table = make_train_mixtures(
        read_clips(manifest, p.frontend.sample_rate), steps=p.train.steps, batch_size=p.train.batch_size,
        num_sources=int(p.mixing["num_sources"]), seed=p.seed, crop=p.crop(n_frames),
        gain_range=tuple(p.mixing["gain_range"]), per_epoch=int(tm["per_epoch"]), distinct_epochs=tm["distinct_epochs"],
    )
    write_parquet(table, out)
    print(
        f"train_mixtures {dataset}: {len(table)} samples ({p.train.steps} steps x {p.train.batch_size}), "
        f"{table['mixture_id'].nunique()} distinct mixtures, {table['epoch'].nunique()} epoch(s)",
        flush=True,
    )
    return table
