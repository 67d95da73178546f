"""The evaluation stages (rules/evaluate.smk): score a trained variant or a non-learned baseline on the test list."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd

from avsep.config.params import Params
from avsep.core.io import write_json, write_parquet
from avsep.data.inputs import visual_inputs
from avsep.data.store import ClipStore
from avsep.engine import checkpoint
from avsep.evaluation.evaluate import EvalConfig, evaluate_model, summarize


def evaluate(
    p: Params, dataset: str, model: str, manifest: str | Path, mixtures: str | Path, ckpt: str | Path,
    out_parquet: str | Path, out_json: str | Path, clip_caches: list[tuple[str, str]] | None = None,
) -> dict:
    """Score a trained model on the test mixture list; per-mixture parquet and a JSON summary."""
    net, meta = checkpoint.load_separator(ckpt)
    d = p.dataset(dataset)
    store = ClipStore(manifest, p.frontend.sample_rate, d.channels)
    cfg = EvalConfig(
        batch_size=int(p.evaluate["batch_size"]), mask_threshold=p.evaluate["mask_threshold"],
        num_sources=int(p.mixing["num_sources"]),
    )
    table = pd.read_parquet(mixtures)
    visual, _ = visual_inputs(p.run(model)[0], store, clip_caches)  # a run name: sop, sop~s1235
    per_mix = evaluate_model(net, store, table, visual, cfg, p.frontend, desc=f"evaluate {model}")
    write_parquet(per_mix, out_parquet)
    summary = {
        **summarize(per_mix),
        "dataset": dataset,
        "model": model,
        "label": meta["label"],
        "visual_weights": meta["visual_weights"],
        "eval": asdict(cfg),
    }
    write_json(summary, out_json)
    print(
        f"evaluate {dataset}/{model}: SDR {summary['sdr']:.2f} SIR {summary['sir']:.2f} SAR {summary['sar']:.2f} "
        f"(scored {summary['n_scored']}, skipped {summary['n_skipped']})",
        flush=True,
    )
    return summary


def evaluate_baseline(
    p: Params, dataset: str, name: str, manifest: str | Path, mixtures: str | Path,
    out_parquet: str | Path, out_json: str | Path,
) -> dict:
    """Score a non-learned baseline (params ``baselines``) on the test mixture list."""
    from avsep.evaluation.evaluate import evaluate_baseline as run_baseline

    b = p.baselines[name]
    d = p.dataset(dataset)
    store = ClipStore(manifest, p.frontend.sample_rate, d.channels)
    cfg = EvalConfig(batch_size=1, mask_threshold=None, num_sources=int(p.mixing["num_sources"]))
    per_mix = run_baseline(b.method, store, pd.read_parquet(mixtures), cfg, p.frontend, seed=p.seed, desc=f"evaluate {name}")
    write_parquet(per_mix, out_parquet)
    summary = {
        **summarize(per_mix), "dataset": dataset, "model": name, "label": b.label,
        "visual_weights": "none (audio-only)", "eval": {**asdict(cfg), "permutation": "best mean SDR"},
    }
    write_json(summary, out_json)
    print(f"evaluate {dataset}/{name}: SDR {summary['sdr']:.2f} SIR {summary['sir']:.2f} SAR {summary['sar']:.2f} "
          f"(scored {summary['n_scored']}, skipped {summary['n_skipped']})", flush=True)
    return summary
