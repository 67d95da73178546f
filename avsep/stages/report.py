"""The report stages (rules/report.smk): separation tables, linear probe, modality gap, per-instrument SDR, figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from avsep.config.params import Params
from avsep.core.io import write_csv
from avsep.data.inputs import visual_inputs
from avsep.data.store import ClipStore, read_clips
from avsep.encoders.cache import cache_weights_label
from avsep.engine import checkpoint
from avsep.reporting import tables


def separation_table(p: Params, name: str, summaries: list[str], per_mixture: list[str], out_csv: str | Path,
                     out_vs_paper: str | Path | None = None) -> pd.DataFrame:
    """Write a separation table (HFRA Table 1 layout) from evaluation summaries and per-mixture scores (for the
    means over the mixtures every row scored), and the paper beside it."""
    t = p.tables[name]
    labels = [p.method_label(m) for m in t["methods"]]
    df = tables.separation_table([Path(s) for s in summaries], labels, [Path(f) for f in per_mixture])
    write_csv(df, out_csv)
    if out_vs_paper is not None:
        write_csv(tables.separation_vs_paper(df, list(t["methods"]), name), out_vs_paper)
    return df


def _solo_features(p: Params, dataset: str, manifest: str | Path, ckpt: str | Path, split: str) -> tuple[pd.DataFrame, np.ndarray]:
    from avsep.reporting.analysis import clip_features, probe_split

    net, _ = checkpoint.load_separator(ckpt)
    clips = probe_split(read_clips(manifest, p.frontend.sample_rate), split, p.frontend.clip_samples)
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
    from avsep.reporting.analysis import linear_probe
    from avsep.reporting.paper import PROBE

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
    m = read_clips(manifest, p.frontend.sample_rate)
    from avsep.reporting.analysis import probe_split

    tr = probe_split(m, "train", p.frontend.clip_samples)
    te = probe_split(m, "test", p.frontend.clip_samples)
    acc = linear_probe(_cached_rows(*clap_cache, tr), tr["label"].to_numpy(), _cached_rows(*clap_cache, te),
                       te["label"].to_numpy(), seed=p.seed)
    rows.append({"method": "Frozen CLAP", "representation": "CLAP embedding", "alignment": False, "accuracy": 100.0 * acc,
                 "n_train": len(tr), "n_test": len(te), "dataset": t["dataset"],
                 "weights": cache_weights_label(clap_cache[0])})
    keys.append("clap")
    df = pd.DataFrame(rows)
    write_csv(df, out_csv)
    write_csv(tables.values_vs_paper(df, keys, "accuracy", PROBE, name), out_vs_paper)
    print(f"{name}: " + ", ".join(f"{r['method']} {r['accuracy']:.1f}%" for r in rows), flush=True)
    return df


def gap_table(
    p: Params, name: str, manifest: str | Path, ckpts: list[str], clip_cache: tuple[str, str],
    out_csv: str | Path, out_vs_paper: str | Path,
) -> pd.DataFrame:
    """HFRA Table 5: modality gap between each model's bottleneck and the CLIP embedding of the same test clip."""
    from avsep.data.inputs import EmbeddingInputs
    from avsep.reporting.analysis import modality_gap
    from avsep.reporting.paper import GAP

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
                     "dataset": t["dataset"], "weights": cache_weights_label(clip_cache[0])})
    df = pd.DataFrame(rows)
    write_csv(df, out_csv)
    write_csv(tables.values_vs_paper(df, list(t["methods"]), "modality_gap", GAP, name), out_vs_paper)
    print(f"{name}: " + ", ".join(f"{r['method']} {r['modality_gap']:.3f}" for r in rows), flush=True)
    return df


def per_instrument_table(
    p: Params, name: str, per_mixture: list[str], out_csv: str | Path, out_vs_paper: str | Path
) -> pd.DataFrame:
    """HFRA Table A1: mean SDR per instrument (rows) for each method (columns), plus the overall mean."""
    from avsep.reporting.analysis import per_class_sdr
    from avsep.reporting.paper import PER_INSTRUMENT

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
    from avsep.reporting.analysis import probe_split
    from avsep.reporting.figures import acoustic_table, best_fusion, plot_figure1

    f = p.figures["figure1"]
    store = ClipStore(manifest, p.frontend.sample_rate, p.dataset(f["dataset"]).channels)
    props = acoustic_table(store, probe_split(read_clips(manifest, p.frontend.sample_rate), "train", 1), p.frontend.sample_rate)
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
    from avsep.data.mixtures import specs_from_table
    from avsep.reporting.figures import figure3 as draw

    f = p.figures["figure3"]
    store = ClipStore(manifest, p.frontend.sample_rate, p.dataset(f["dataset"]).channels)
    models = {}
    weights = set()
    for name, ckpt in zip(f["methods"], ckpts):
        net, meta = checkpoint.load_separator(ckpt)
        vis, _ = visual_inputs(p.model(name), store, clip_caches)
        models[p.model(name).label] = (net, vis)
        weights.add(meta["visual_weights"])
    table = pd.read_parquet(mixtures).head(int(f["mixtures"]))
    specs = specs_from_table(table, int(p.mixing["num_sources"]))
    draw(models, store, specs, list(table["mixture_id"]), p.frontend, p.evaluate["mask_threshold"], out_png, out_audio,
         f"{f['dataset']} test mixtures; visual weights: {'; '.join(sorted(weights))}")
