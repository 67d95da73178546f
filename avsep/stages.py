"""One function per pipeline stage. The Snakemake scripts (and the ``avsep`` CLI) only call these."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from . import checkpoint
from .config import ModelVariant, Params
from .data.inputs import (
    ClapTargets,
    EmbeddingInputs,
    FrameInputs,
    TableSampler,
    VisualInputs,
)
from .data.mixtures import make_test_mixtures
from .data.store import ClipStore
from .evaluate import EvalConfig, evaluate_model, summarize
from .io import read_manifest, status_counts, write_csv, write_json, write_parquet
from .report import separation_table, separation_vs_paper, values_vs_paper
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


def metadata(p: Params, dataset: str, out_record: str | Path) -> dict:
    """Fetch a real dataset's metadata files (``datasets.<name>.metadata``) into ``data/<name>/meta/``."""
    from .data.sources import fetch_metadata

    return fetch_metadata(p.dataset(dataset), out_record)


def clips(p: Params, dataset: str, record: str | Path, out: str | Path) -> pd.DataFrame:
    """Parse the fetched metadata into the clip table (validated ids and labels, splits)."""
    from .data.sources import write_clip_table

    return write_clip_table(p.dataset(dataset), record, out, seed=p.seed)


def download(p: Params, dataset: str, clip_table: str | Path, out_manifest: str | Path) -> pd.DataFrame:
    """Fetch (YouTube) or import (FAIR-Play, local files) the clips into ``data/<name>/raw/``."""
    from .data.sources import raw_clips

    return raw_clips(p.dataset(dataset), clip_table, out_manifest, front_end_rate=p.frontend.sample_rate)


def test_mixtures(p: Params, dataset: str, manifest: str | Path, out: str | Path, n_frames: int) -> pd.DataFrame:
    """The fixed, seeded list of test mixtures every model of ``dataset`` is scored on."""
    m = read_manifest(manifest)
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


def weights_label(spec: str) -> str:
    """``random-init`` or ``<file name> sha256:<12 hex>`` for a weights file."""
    if spec == "random":
        return "random-init"
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"visual weights file {path} (model_defaults.visual_weights) does not exist")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return f"{path.name} sha256:{digest}"


def _visual_inputs(
    v: ModelVariant, store: ClipStore, clip_caches: list[tuple[str, str]] | None
) -> tuple[VisualInputs, str]:
    """The visual input of a variant and the label of the weights it comes from."""
    if v.uses_embeddings:
        if not clip_caches:
            raise ValueError(f"model {v.name} uses CLIP embeddings but no CLIP cache was given")
        return EmbeddingInputs(clip_caches), embedding_weights_label(clip_caches[0][0])
    return FrameInputs(store, v.separator.visual.frame_size), weights_label(v.separator.visual.weights)


def embedding_weights_label(npy: str | Path) -> str:
    """``CLIP <weights>`` from the metadata JSON written beside an embedding cache."""
    meta = _cache_meta(npy)
    return f"{meta.get('encoder', 'CLIP')} {meta.get('weights', 'unknown')}"


def _cache_meta(npy: str | Path) -> dict:
    path = Path(npy).with_suffix(".json")
    if not path.exists():
        raise FileNotFoundError(f"{path}: metadata of the embedding cache {npy} is missing")
    return json.loads(path.read_text())


def train_model(
    p: Params, dataset: str, model: str, manifest: str | Path, out_ckpt: str | Path,
    train_mixtures: str | Path, clip_caches: list[tuple[str, str]] | None = None,
    clap_cache: tuple[str, str] | None = None, launch: bool = True,
) -> Path:
    """Train one model variant on one dataset, on the seeded training-mixture manifest.

    With ``train.processes`` > 1 (and ``launch``) this starts ``torchrun`` with that many processes, each
    running this function through ``python -m avsep.cli train`` (DistributedDataParallel).
    """
    if launch and p.train_processes > 1:
        return _launch_distributed(p, dataset, model, manifest, out_ckpt, train_mixtures, clip_caches, clap_cache)
    v = p.model(model)
    d = p.dataset(dataset)
    store = ClipStore(manifest, p.frontend.sample_rate, d.channels)
    sampler = TableSampler(pd.read_parquet(train_mixtures), int(p.mixing["num_sources"]), where=str(train_mixtures))
    visual, visual_label = _visual_inputs(v, store, clip_caches)
    clap = None
    meta = {"model": model, "label": v.label, "dataset": dataset, "visual_weights": visual_label, "align_lambda": v.align_lambda}
    if v.aligned:
        if clap_cache is None:
            raise ValueError(f"model {model} has align_lambda={v.align_lambda} but no CLAP cache was given")
        clap = ClapTargets(*clap_cache)
        meta["clap_weights"] = embedding_weights_label(clap_cache[0])
    data = TrainData(store=store, sampler=sampler, visual=visual, frontend=p.frontend, clap=clap)
    out = Path(out_ckpt)
    final = train(v.separator, p.train, data, out.parent, meta, align_lambda=v.align_lambda)
    if final != out:
        raise RuntimeError(f"training wrote {final}, expected {out}")
    return final


def _launch_distributed(
    p: Params, dataset: str, model: str, manifest: str | Path, out_ckpt: str | Path, train_mixtures: str | Path,
    clip_caches: list[tuple[str, str]] | None, clap_cache: tuple[str, str] | None,
) -> Path:
    """Run training under torchrun with ``train.processes`` processes (argument list, no shell)."""
    import subprocess
    import sys
    import tempfile

    import yaml

    out = Path(out_ckpt)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=out.parent, prefix=".params.", delete=False) as f:
        yaml.safe_dump(p.raw, f, sort_keys=False)
        params_file = f.name
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={p.train_processes}",
        "-m", "avsep.cli", "train", "--params", params_file, "--dataset", dataset, "--model", model,
        "--manifest", str(manifest), "--mixtures", str(train_mixtures), "--out", str(out),
    ]
    if clip_caches:
        cmd += ["--clip", *map(str, clip_caches[0])]
    if clap_cache:
        cmd += ["--clap", *map(str, clap_cache)]
    try:
        res = subprocess.run(cmd, check=False)
    finally:
        Path(params_file).unlink(missing_ok=True)
    if res.returncode != 0:
        raise RuntimeError(f"distributed training of {dataset}/{model} failed (torchrun exit code {res.returncode})")
    if not out.exists():
        raise RuntimeError(f"distributed training of {dataset}/{model} ended without writing {out}")
    return out


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
    visual, _ = _visual_inputs(p.model(model), store, clip_caches)
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
    from .evaluate import evaluate_baseline as run_baseline

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


def table(p: Params, name: str, summaries: list[str], out_csv: str | Path, out_vs_paper: str | Path | None = None) -> pd.DataFrame:
    """Write a separation table (HFRA Table 1 layout) from evaluation summaries, and the paper beside it."""
    t = p.tables[name]
    labels = [p.method_label(m) for m in t["methods"]]
    df = separation_table([Path(s) for s in summaries], labels)
    write_csv(df, out_csv)
    if out_vs_paper is not None:
        write_csv(separation_vs_paper(df, list(t["methods"]), name), out_vs_paper)
    return df


def _solo_features(p: Params, dataset: str, manifest: str | Path, ckpt: str | Path, split: str) -> tuple[pd.DataFrame, np.ndarray]:
    from .analysis import clip_features, probe_split

    net, _ = checkpoint.load_separator(ckpt)
    clips = probe_split(read_manifest(manifest), split, p.frontend.clip_samples)
    store = ClipStore(manifest, p.frontend.sample_rate, p.dataset(dataset).channels)
    return clips, clip_features(net, store, clips, p.frontend)


def _cached_rows(npy: str | Path, index: str | Path, clips: pd.DataFrame) -> np.ndarray:
    """Rows of a per-clip cache (index columns ``clip``, ``row``) in the order of ``clips``."""
    arr = np.load(npy, allow_pickle=False)
    idx = pd.read_parquet(index)
    rows = dict(zip(idx["clip"].astype(str), idx["row"].astype(int)))
    missing = [c for c in clips["id"].astype(str) if c not in rows]
    if missing:
        raise KeyError(f"{index}: no cached embedding for clip(s) {missing[:5]}")
    return arr[[rows[c] for c in clips["id"].astype(str)]].astype(np.float64)


def probe_table(
    p: Params, name: str, manifest: str | Path, ckpts: list[str], clap_cache: tuple[str, str],
    out_csv: str | Path, out_vs_paper: str | Path,
) -> pd.DataFrame:
    """HFRA Table 4: linear-probe accuracy (train-split fit, test-split score) of each model's bottleneck and of CLAP."""
    from .analysis import linear_probe
    from .paper import PROBE

    t = p.tables[name]
    rows, keys = [], []
    for model, ckpt in zip(t["methods"], ckpts):
        tr, xtr = _solo_features(p, t["dataset"], manifest, ckpt, "train")
        te, xte = _solo_features(p, t["dataset"], manifest, ckpt, "test")
        acc = linear_probe(xtr, tr["label"].to_numpy(), xte, te["label"].to_numpy(), seed=p.seed)
        v = p.model(model)
        rows.append({"method": v.label, "representation": "U-Net bottleneck", "alignment": v.aligned,
                     "accuracy": 100.0 * acc, "n_train": len(tr), "n_test": len(te), "dataset": t["dataset"],
                     "weights": checkpoint.load(ckpt)["meta"]["visual_weights"]})
        keys.append(model)
    m = read_manifest(manifest)
    from .analysis import probe_split

    tr = probe_split(m, "train", p.frontend.clip_samples)
    te = probe_split(m, "test", p.frontend.clip_samples)
    acc = linear_probe(_cached_rows(*clap_cache, tr), tr["label"].to_numpy(), _cached_rows(*clap_cache, te),
                       te["label"].to_numpy(), seed=p.seed)
    rows.append({"method": "Frozen CLAP", "representation": "CLAP embedding", "alignment": False, "accuracy": 100.0 * acc,
                 "n_train": len(tr), "n_test": len(te), "dataset": t["dataset"],
                 "weights": embedding_weights_label(clap_cache[0])})
    keys.append("clap")
    df = pd.DataFrame(rows)
    write_csv(df, out_csv)
    write_csv(values_vs_paper(df, keys, "accuracy", PROBE, name), out_vs_paper)
    print(f"{name}: " + ", ".join(f"{r['method']} {r['accuracy']:.1f}%" for r in rows), flush=True)
    return df


def gap_table(
    p: Params, name: str, manifest: str | Path, ckpts: list[str], clip_cache: tuple[str, str],
    out_csv: str | Path, out_vs_paper: str | Path,
) -> pd.DataFrame:
    """HFRA Table 5: modality gap between each model's bottleneck and the CLIP embedding of the same test clip."""
    from .analysis import modality_gap
    from .data.inputs import EmbeddingInputs
    from .paper import GAP

    t = p.tables[name]
    emb = EmbeddingInputs([clip_cache])
    rows = []
    for model, ckpt in zip(t["methods"], ckpts):
        te, x = _solo_features(p, t["dataset"], manifest, ckpt, "test")
        # The visual side: the CLIP embedding of each clip's centre frame (as in evaluation).
        centre = [round(n / p.frontend.sample_rate / 2 * p.fps) for n in te["n_samples"]]
        y = emb.array[[emb.row(str(c), f) for c, f in zip(te["id"], centre)]]
        v = p.model(model)
        rows.append({"method": v.label, "alignment": v.aligned, "modality_gap": modality_gap(x, y), "n_pairs": len(te),
                     "audio_space": f"U-Net bottleneck ({x.shape[1]}-d)", "visual_space": f"CLIP image embedding ({y.shape[1]}-d)",
                     "dataset": t["dataset"], "weights": embedding_weights_label(clip_cache[0])})
    df = pd.DataFrame(rows)
    write_csv(df, out_csv)
    write_csv(values_vs_paper(df, list(t["methods"]), "modality_gap", GAP, name), out_vs_paper)
    print(f"{name}: " + ", ".join(f"{r['method']} {r['modality_gap']:.3f}" for r in rows), flush=True)
    return df


def per_instrument_table(
    p: Params, name: str, per_mixture: list[str], out_csv: str | Path, out_vs_paper: str | Path
) -> pd.DataFrame:
    """HFRA Table A1: mean SDR per instrument (rows) for each method (columns), plus the overall mean."""
    from .analysis import per_class_sdr
    from .paper import PER_INSTRUMENT

    t = p.tables[name]
    n = int(p.mixing["num_sources"])
    cols = {p.model(m).label: per_class_sdr(pd.read_parquet(f), n) for m, f in zip(t["methods"], per_mixture)}
    df = pd.DataFrame(cols)
    df.loc["Overall SDR"] = [
        float(pd.read_parquet(f).query("status == 'scored'")["sdr"].mean()) for f in per_mixture
    ]
    df = df.reset_index(names="instrument")
    df["dataset"] = t["dataset"]
    write_csv(df, out_csv)
    vs = df.copy()
    for m in t["methods"]:
        vs[f"paper {p.model(m).label}"] = [PER_INSTRUMENT.get(m, {}).get(i, float("nan")) for i in vs["instrument"]]
    write_csv(vs, out_vs_paper)
    return df


def figure1(p: Params, manifest: str | Path, table_a1: str | Path, out_png: str | Path, out_csv: str | Path) -> pd.DataFrame:
    """HFRA Figure 1: per class, attack ratio and harmonic complexity (train clips), and its best fusion (Table A1)."""
    from .analysis import probe_split
    from .figures import acoustic_table, best_fusion, plot_figure1

    f = p.figures["figure1"]
    store = ClipStore(manifest, p.frontend.sample_rate, p.dataset(f["dataset"]).channels)
    props = acoustic_table(store, probe_split(read_manifest(manifest), "train", 1), p.frontend.sample_rate)
    a1 = pd.read_csv(table_a1)
    names = {p.model(m).label: p.model(m).separator.fusion for m in p.tables["tableA1"]["methods"]}
    props["best_fusion"] = props["label"].map(best_fusion(a1, names))
    props["dataset"] = f["dataset"]
    write_csv(props, out_csv)
    plot_figure1(props, out_png, f"{f['dataset']}: acoustic properties per class, colour = fusion with the best SDR (Table A1)")
    return props


def figure3(
    p: Params, manifest: str | Path, mixtures: str | Path, ckpts: list[str],
    clip_caches: list[tuple[str, str]] | None, out_png: str | Path, out_audio: str | Path,
) -> None:
    """HFRA Figure 3: spectrograms and wavs of the first test mixtures, their truth and each method's estimate."""
    from .data.mixtures import specs_from_table
    from .figures import figure3 as draw

    f = p.figures["figure3"]
    store = ClipStore(manifest, p.frontend.sample_rate, p.dataset(f["dataset"]).channels)
    models = {}
    weights = set()
    for name, ckpt in zip(f["methods"], ckpts):
        net, meta = checkpoint.load_separator(ckpt)
        vis, _ = _visual_inputs(p.model(name), store, clip_caches)
        models[p.model(name).label] = (net, vis)
        weights.add(meta["visual_weights"])
    table = pd.read_parquet(mixtures).head(int(f["mixtures"]))
    specs = specs_from_table(table, int(p.mixing["num_sources"]))
    draw(models, store, specs, list(table["mixture_id"]), p.frontend, p.evaluate["mask_threshold"], out_png, out_audio,
         f"{f['dataset']} test mixtures; visual weights: {'; '.join(sorted(weights))}")
