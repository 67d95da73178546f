"""The report stages (rules/report.smk): separation tables, linear probe, modality gap, per-instrument SDR, figures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from avsep.config.params import Params
from avsep.core.io import write_csv, write_parquet
from avsep.data.inputs import visual_inputs
from avsep.data.store import ClipStore, read_clips
from avsep.encoders.cache import cache_weights_label
from avsep.engine import checkpoint
from avsep.reporting import tables
from avsep.reporting.seeds import N_SEEDS, group_runs, mean_over_seeds, sample_std, series_over_seeds, std_column


def separation_table(p: Params, name: str, summaries: list[str], per_mixture: list[str], out_csv: str | Path,
                     out_vs_paper: str | Path | None = None) -> pd.DataFrame:
    """Write a separation table (HFRA Table 1 layout) from evaluation summaries and per-mixture scores (for the
    means over the mixtures every row scored), and the paper beside it. The inputs hold every run of each method
    (``results/eval/<dataset>/<run>.*``, one per training seed, :meth:`Params.runs`); a row is their mean."""
    t = p.tables[name]
    labels = [p.method_label(m) for m in t["methods"]]
    s_files = _by_method(p, t, summaries, _stem)
    m_files = _by_method(p, t, per_mixture, _stem)
    df = tables.separation_table([[Path(f) for f in s_files[m]] for m in t["methods"]], labels,
                                 [[Path(f) for f in m_files[m]] for m in t["methods"]])
    write_csv(df, out_csv)
    if out_vs_paper is not None:
        write_csv(tables.separation_vs_paper(df, list(t["methods"]), name), out_vs_paper)
    return df


def _by_method(p: Params, t: dict, files: list[str], name_of: Callable[[str], str]) -> dict[str, list[str]]:
    """The input files of each method of table ``t``, one per run (training seed) in :meth:`Params.runs` order."""
    return group_runs(files, {m: p.runs(m) for m in t["methods"]}, name_of)


def _stem(path: str | Path) -> str:
    """The run name of an evaluation file (``results/eval/<dataset>/<run>.json``)."""
    return Path(path).stem


def _run_dir(path: str | Path) -> str:
    """The run name of a checkpoint (``models/<dataset>/<run>/checkpoint.pt``)."""
    return Path(path).parent.name


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
    """HFRA Table 4: linear-probe accuracy (train-split fit, test-split score) of each model's bottleneck and of CLAP.
    A model's row is the mean over its runs (one checkpoint per training seed) with ``accuracy_std`` and ``n_seeds``;
    the CLAP row is one run."""
    from avsep.reporting.analysis import linear_probe
    from avsep.reporting.paper import PROBE

    t = p.tables[name]
    runs, keys = [], []
    by_model = _by_method(p, t, ckpts, _run_dir)
    for model in t["methods"]:
        seeds = []
        v = p.model(model)
        for ckpt in by_model[model]:
            tr, xtr = _solo_features(p, t["dataset"], manifest, ckpt, "train")
            te, xte = _solo_features(p, t["dataset"], manifest, ckpt, "test")
            acc = linear_probe(xtr, tr["label"].to_numpy(), xte, te["label"].to_numpy(), seed=p.seed)
            seeds.append({"method": v.label, "representation": "U-Net bottleneck", "alignment": v.aligned,
                          "accuracy": 100.0 * acc, "n_train": len(tr), "n_test": len(te), "dataset": t["dataset"],
                          "weights": checkpoint.load(ckpt)["meta"]["visual_weights"]})
        runs.append(seeds)
        keys.append(model)
    m = read_clips(manifest, p.frontend.sample_rate)
    from avsep.reporting.analysis import probe_split

    tr = probe_split(m, "train", p.frontend.clip_samples)
    te = probe_split(m, "test", p.frontend.clip_samples)
    acc = linear_probe(_cached_rows(*clap_cache, tr), tr["label"].to_numpy(), _cached_rows(*clap_cache, te),
                       te["label"].to_numpy(), seed=p.seed)
    runs.append([{"method": "Frozen CLAP", "representation": "CLAP embedding", "alignment": False, "accuracy": 100.0 * acc,
                  "n_train": len(tr), "n_test": len(te), "dataset": t["dataset"],
                  "weights": cache_weights_label(clap_cache[0])}])
    keys.append("clap")
    rows = mean_over_seeds(runs, ["accuracy"])
    df = pd.DataFrame(rows)
    write_csv(df, out_csv)
    write_csv(tables.values_vs_paper(df, keys, "accuracy", PROBE, name), out_vs_paper)
    print(f"{name}: " + ", ".join(f"{r['method']} {r['accuracy']:.1f}%" for r in rows), flush=True)
    return df


def gap_table(
    p: Params, name: str, manifest: str | Path, ckpts: list[str], clip_cache: tuple[str, str],
    out_csv: str | Path, out_vs_paper: str | Path,
) -> pd.DataFrame:
    """HFRA Table 5: modality gap between each model's bottleneck and the CLIP embedding of the same test clip; a
    row is the mean over the model's runs (one checkpoint per training seed), with ``modality_gap_std``, ``n_seeds``."""
    from avsep.data.inputs import EmbeddingInputs
    from avsep.reporting.analysis import modality_gap
    from avsep.reporting.paper import GAP

    t = p.tables[name]
    emb = EmbeddingInputs([clip_cache])
    runs = []
    by_model = _by_method(p, t, ckpts, _run_dir)
    for model in t["methods"]:
        seeds = []
        v = p.model(model)
        for ckpt in by_model[model]:
            te, x = _solo_features(p, t["dataset"], manifest, ckpt, "test")
            # The visual side: the CLIP embedding of each clip's centre frame (as in evaluation).
            centre = [round(n / p.frontend.sample_rate / 2 * p.fps) for n in te["n_samples"]]
            y = emb.array[[emb.row(str(c), f) for c, f in zip(te["id"], centre)]]
            seeds.append({"method": v.label, "alignment": v.aligned, "modality_gap": modality_gap(x, y), "n_pairs": len(te),
                          "audio_space": f"U-Net bottleneck ({x.shape[1]}-d)",
                          "visual_space": f"CLIP image embedding ({y.shape[1]}-d)",
                          "dataset": t["dataset"], "weights": cache_weights_label(clip_cache[0])})
        runs.append(seeds)
    rows = mean_over_seeds(runs, ["modality_gap"])
    df = pd.DataFrame(rows)
    write_csv(df, out_csv)
    write_csv(tables.values_vs_paper(df, list(t["methods"]), "modality_gap", GAP, name), out_vs_paper)
    print(f"{name}: " + ", ".join(f"{r['method']} {r['modality_gap']:.3f}" for r in rows), flush=True)
    return df


def per_instrument_table(
    p: Params, name: str, per_mixture: list[str], out_csv: str | Path, out_vs_paper: str | Path
) -> pd.DataFrame:
    """HFRA Table A1: mean SDR per instrument (rows) for each method (columns), plus the overall mean. Each value is
    the mean over the method's runs (one per training seed); ``<label>_std`` columns hold the spread over the seeds
    (ddof 1, empty with one seed) and ``n_seeds`` how many there are."""
    from avsep.reporting.analysis import per_class_sdr
    from avsep.reporting.paper import PER_INSTRUMENT

    t = p.tables[name]
    n = int(p.mixing["num_sources"])
    by_model = _by_method(p, t, per_mixture, _stem)
    means, spreads, overall, overall_sd, counts = {}, {}, {}, {}, set()
    for m in t["methods"]:
        frames = [pd.read_parquet(f) for f in by_model[m]]
        label = p.model(m).label
        means[label], spreads[label] = series_over_seeds([per_class_sdr(f, n) for f in frames])
        o = [float(f.query("status == 'scored'")["sdr"].mean()) for f in frames]
        overall[label], overall_sd[label] = (o[0] if len(o) == 1 else float(np.mean(o))), sample_std(o)
        counts.add(len(frames))
    df = pd.DataFrame(means)
    df.loc["Overall SDR"] = list(overall.values())
    df = df.reset_index(names="instrument")
    df["dataset"] = t["dataset"]
    for label, sd in spreads.items():
        df[std_column(label)] = [*(float(sd.get(i, float("nan"))) for i in df["instrument"].iloc[:-1]), overall_sd[label]]
    df[N_SEEDS] = counts.pop() if len(counts) == 1 else float("nan")
    write_csv(df, out_csv)
    vs = df.copy()
    for m in t["methods"]:
        vs[f"paper {p.model(m).label}"] = [PER_INSTRUMENT.get(m, {}).get(i, float("nan")) for i in vs["instrument"]]
    write_csv(tables.spread_last(vs, [*(std_column(lab) for lab in spreads), N_SEEDS]), out_vs_paper)
    return df


def acoustics(p: Params, dataset: str, manifest: str | Path, out_parquet: str | Path) -> pd.DataFrame:
    """HFRA Figure 1's coordinates: per class of the dataset, mean attack ratio and harmonic complexity of its train
    clips (librosa's pYIN: the costly part of the figure, which depends on the clips only, not on any model)."""
    from avsep.reporting.analysis import probe_split
    from avsep.reporting.figures import acoustic_table

    store = ClipStore(manifest, p.frontend.sample_rate, p.dataset(dataset).channels)
    props = acoustic_table(store, probe_split(read_clips(manifest, p.frontend.sample_rate), "train", 1), p.frontend.sample_rate)
    write_parquet(props, out_parquet)
    return props


def figure1(p: Params, acoustics_parquet: str | Path, table_a1: str | Path, out_png: str | Path,
            out_csv: str | Path) -> pd.DataFrame:
    """HFRA Figure 1: per class, attack ratio and harmonic complexity (:func:`acoustics`), and its best fusion
    (Table A1)."""
    from avsep.reporting.figures import best_fusion, plot_figure1

    f = p.figures["figure1"]
    props = pd.read_parquet(acoustics_parquet)
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
