"""One function per pipeline stage. The Snakemake scripts (and the ``avsep`` CLI) only call these."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from . import checkpoint
from .config import Params
from .data.mixtures import TrainSampler, make_test_mixtures
from .data.store import ClipStore
from .evaluate import EvalConfig, evaluate_model, summarize
from .io import read_manifest, status_counts, write_csv, write_json, write_parquet
from .report import separation_table
from .train import TrainData, train


def synth(p: Params, dataset: str, out_manifest: str | Path) -> pd.DataFrame:
    """Render an embedded synthetic dataset as real mp4 files (where downloads would land)."""
    from .data.instruments import DATASET_CLASSES
    from .data.synth import SynthConfig, generate_dataset

    d = p.dataset(dataset)
    s = p.synth
    cfg = SynthConfig(
        name=dataset,
        classes=tuple(DATASET_CLASSES[d.classes]),
        clips_per_class=dict(d.clips_per_class),
        clip_seconds=float(s["clip_seconds"]),
        sample_rate=int(s["render_rate"]),
        video_fps=int(s["video_fps"]),
        frame_size=int(s["frame_size"]),
        binaural=d.binaural,
        seed=p.seed,
        soundfont=str(s["soundfont"]),
    )
    out_dir = Path(out_manifest).parent
    df = generate_dataset(cfg, out_dir, progress=True)
    print(f"synth {dataset}: {status_counts(df)}", flush=True)
    return df


def extract(p: Params, dataset: str, raw_manifest: str | Path, out_manifest: str | Path) -> pd.DataFrame:
    """Audio at the front-end rate and frames at ``audio.fps`` for every clip that arrived."""
    from .data.extract import ExtractConfig, extract_dataset

    d = p.dataset(dataset)
    cfg = ExtractConfig(
        sample_rate=p.frontend.sample_rate, channels=d.channels, fps=p.fps, min_samples=p.frontend.clip_samples
    )
    df = extract_dataset(Path(raw_manifest), Path(out_manifest).parent, cfg, progress=True)
    print(f"extract {dataset}: {status_counts(df)}", flush=True)
    return df


def test_mixtures(p: Params, dataset: str, manifest: str | Path, out: str | Path, n_frames: int) -> pd.DataFrame:
    """The fixed, seeded list of test mixtures every model of ``dataset`` is scored on."""
    m = read_manifest(manifest)
    table = make_test_mixtures(
        m, n_mixtures=int(p.mixing["test_mixtures"]), num_sources=int(p.mixing["num_sources"]), seed=p.seed,
        crop=p.crop(n_frames),
    )
    write_parquet(table, out)
    return table


def weights_label(spec: str) -> str:
    """``random-init`` or ``<file name> sha256:<12 hex>`` for a weights file."""
    if spec == "random":
        return "random-init"
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"visual weights file {path} (model_defaults.visual_weights) does not exist")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return f"{path.name} sha256:{digest}"


def train_model(p: Params, dataset: str, model: str, manifest: str | Path, out_ckpt: str | Path) -> Path:
    """Train one model variant on one dataset."""
    v = p.model(model)
    d = p.dataset(dataset)
    store = ClipStore(manifest, p.frontend.sample_rate, d.channels)
    sampler = TrainSampler(
        read_manifest(manifest), num_sources=int(p.mixing["num_sources"]), seed=p.seed,
        crop=p.crop(v.separator.visual.n_frames), gain_range=tuple(p.mixing["gain_range"]),
    )
    data = TrainData(store=store, sampler=sampler, frame_size=v.separator.visual.frame_size, frontend=p.frontend)
    meta = {
        "model": model,
        "label": v.label,
        "dataset": dataset,
        "visual_weights": weights_label(v.separator.visual.weights),
    }
    out = Path(out_ckpt)
    final = train(v.separator, p.train, data, out.parent, meta)
    if final != out:
        raise RuntimeError(f"training wrote {final}, expected {out}")
    return final


def evaluate(
    p: Params, dataset: str, model: str, manifest: str | Path, mixtures: str | Path, ckpt: str | Path,
    out_parquet: str | Path, out_json: str | Path,
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
    per_mix = evaluate_model(net, store, table, net.cfg.visual.frame_size, cfg, p.frontend, desc=f"evaluate {model}")
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


def table(p: Params, name: str, summaries: list[str], out_csv: str | Path) -> pd.DataFrame:
    """Write a separation table (HFRA Table 1 layout) from evaluation summaries."""
    t = p.tables[name]
    labels = [p.model(m).label for m in t["methods"]]
    df = separation_table([Path(s) for s in summaries], labels)
    write_csv(df, out_csv)
    return df
