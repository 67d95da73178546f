"""The LAVSS stages (rules/lavss.smk): test lists, pre-training, training, per-ear evaluation, tables, figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from avsep.audio.frontend import stft
from avsep.config.lavss import EARS, MIX_GT, MIXTURE_KINDS, LAVSSParams, Variant
from avsep.config.params import Params
from avsep.core.io import atomic_path, write_csv, write_json, write_parquet
from avsep.data.binaural_batches import LAVSSData, lavss_data
from avsep.data.binaural_mixtures import LAVSSSampler, clip_pool, duet_list, eligible_clips, make_mixture_list
from avsep.data.boxes import load_boxes
from avsep.data.mixtures import specs_from_table
from avsep.data.store import read_clips
from avsep.engine.checkpoint import inference_meta
from avsep.engine.lavss import LAVSSTask, load_lavss
from avsep.engine.trainer import fit
from avsep.evaluation.binaural import evaluate_lavss, separate_batch, summarize_ears
from avsep.reporting.lavss_tables import table1, table2, table3, table4


def lavss_clips(p: Params, manifest: str | Path, detect_files: Sequence[str], out_clips: str | Path,
                out_duets: str | Path) -> pd.DataFrame:
    """The clip pool of ``lavss.dataset`` (label and split per clip, :func:`clip_pool`) and its duet list.

    ``lavss.labels: detected`` labels each clip from its boxes (``detect_files``: ``objects.parquet``,
    ``boxes.parquet``; :func:`avsep.detection.objects.label_clips` with ``lavss.detected_labels``): the solo
    clips are the pool, the duets go to ``out_duets`` with their two objects. ``metadata``: the dataset's labels,
    and an empty duet list."""
    from avsep.detection.labels import instrument_names
    from avsep.detection.objects import label_clips

    lp = p.lavss
    m = read_clips(manifest, lp.frontend.sample_rate)
    detected = objects = None
    if lp.labels == "detected":
        vocabulary = instrument_names(p.dataset(lp.dataset).source, m["label"])
        detected, objects = label_clips(pd.read_parquet(detect_files[1]), pd.read_parquet(detect_files[0]), vocabulary,
                                        check_objects=lp.boxes == "detected", **asdict(lp.detected_labels))
    pool = clip_pool(m, lp.labels, lp.split, detected, p.seed, lp.seeded_split)
    duets = duet_list(m, detected, objects)
    write_parquet(pool, out_clips)
    write_parquet(duets, out_duets)
    ok = pool[pool["status"] == "ok"]
    per_split = ", ".join(f"{k} {v}" for k, v in ok["split"].value_counts().sort_index().items())
    per_label = ", ".join(f"{k} {v}" for k, v in ok["label"].value_counts().sort_index().items())
    print(f"lavss clips {lp.dataset} (labels: {lp.labels}, split: {lp.split}): {len(ok)} of {len(pool)} clips in the "
          f"pool ({per_split}; {per_label}); {duets['clip'].nunique()} duets", flush=True)
    for reason, n in pool.loc[pool["status"] != "ok", "reason"].value_counts().items():
        print(f"  not in the pool: {n} x {reason}", flush=True)
    return pool


def lavss_mixtures(p: Params, manifest: str | Path, box_files: Sequence[str], out: dict[str, str | Path],
                   pool: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """The seeded test lists (``different``, ``same_type``) of ``lavss.dataset`` (its clips as ``pool`` labels
    and splits them, :func:`lavss_clips`)."""
    lp = p.lavss
    boxes = load_boxes(lp.boxes, box_files, lp.fps)
    m = read_clips(manifest, lp.frontend.sample_rate)
    sizes = {"different": lp.test_mixtures, "same_type": lp.same_type_mixtures}
    clips = None if pool is None else pd.read_parquet(pool)
    tables = {}
    for kind in MIXTURE_KINDS:
        t = make_mixture_list(m, boxes, kind, sizes[kind], p.seed, lp.crop, lp.same_type_min_dx, pool=clips)
        write_parquet(t, out[kind])
        tables[kind] = t
    n_ok = len(eligible_clips(m, "test", boxes, lp.frontend.clip_samples, clips))
    print(f"lavss mixtures {lp.dataset}: {len(tables['different'])} different-instrument and {len(tables['same_type'])} "
          f"same-type mixtures from {n_ok} test clips with {boxes.label} (clips without boxes: {len(boxes.excluded)})",
          flush=True)
    return tables


def _sampler(p: Params, lp: LAVSSParams, data: LAVSSData, manifest: str | Path, same_type: float, where: str) -> LAVSSSampler:
    clips = eligible_clips(read_clips(manifest, lp.frontend.sample_rate), "train", data.boxes, lp.frontend.clip_samples,
                           data.pool)
    lo, hi = p.mixing["gain_range"]
    return LAVSSSampler(clips, p.seed, lp.crop, (float(lo), float(hi)), same_type, lp.same_type_min_dx, where)


def lavss_pretrain(p: Params, name: str, manifest: str | Path, box_files: Sequence[str], out_ckpt: str | Path,
                   threads: int | None = None) -> Path:
    """Monaural pre-training (paper 3.4) of ``lavss.pretrain.models.<name>`` on ``lavss.pretrain_dataset``."""
    lp = p.lavss
    cfg = lp.pretrain_train if threads is None else replace(lp.pretrain_train, threads=int(threads))
    arch = lp.pretrain[name]
    data = lavss_data(p, lp.pretrain_dataset, manifest, box_files)
    sampler = _sampler(p, lp, data, manifest, 0.0, f"LAVSS pre-training on {lp.pretrain_dataset}")
    meta = {"model": f"pretrain_{name}", "label": f"mono pre-training {name}", "dataset": lp.pretrain_dataset,
            "boxes": data.boxes.label, "weights": "random-init"}
    meta.update(_inference_meta(lp, data, sampler))
    return _finish(fit(LAVSSTask(arch, cfg, sampler, data), cfg, Path(out_ckpt).parent, meta), out_ckpt)


def lavss_train(p: Params, variant: str, manifest: str | Path, box_files: Sequence[str], out_ckpt: str | Path,
                init_ckpt: str | Path | None = None, threads: int | None = None, pool: str | Path | None = None) -> Path:
    """Train one LAVSS-table variant on the binaural ``lavss.dataset`` (from its pre-trained model if any; its
    clips as ``pool`` labels and splits them, :func:`lavss_clips`)."""
    lp = p.lavss
    cfg = lp.train if threads is None else replace(lp.train, threads=int(threads))
    v = lp.variant(variant)
    if not v.finetune:
        raise ValueError(f"lavss.models.{variant} is a `*` row (finetune=false): it is not trained")
    if (v.pretrain is None) != (init_ckpt is None):
        raise ValueError(f"lavss.models.{variant}: pretrain={v.pretrain!r} but init checkpoint {init_ckpt!r}")
    data = lavss_data(p, lp.dataset, manifest, box_files, pool)
    sampler = _sampler(p, lp, data, manifest, lp.train_same_type, f"LAVSS training on {lp.dataset}")
    meta = {"model": variant, "label": v.label, "dataset": lp.dataset, "boxes": data.boxes.label,
            "weights": _weights(lp, v)}
    meta.update(_inference_meta(lp, data, sampler))
    return _finish(fit(LAVSSTask(v.arch, cfg, sampler, data, init_ckpt), cfg, Path(out_ckpt).parent, meta), out_ckpt)


def _inference_meta(lp: LAVSSParams, data: LAVSSData, sampler: LAVSSSampler) -> dict:
    """What ``avsep separate`` reads from the checkpoint (:func:`avsep.engine.checkpoint.inference_meta`): the LAVSS
    front-end, frame rate, the dataset's channels and the labels of the training clips."""
    return inference_meta(lp.frontend, lp.fps, data.store.channels, sampler.by_label)


def _finish(final: Path, expected: str | Path) -> Path:
    if final != Path(expected):
        raise RuntimeError(f"training wrote {final}, expected {expected}")
    return final


def _weights(lp: LAVSSParams, v: Variant) -> str:
    if v.pretrain is None:
        return "random-init"
    star = "" if v.finetune else ", not fine-tuned (*)"
    return f"mono pre-trained on {lp.pretrain_dataset} ({v.pretrain}){star}"


def lavss_evaluate(p: Params, method: str, manifest: str | Path, box_files: Sequence[str],
                   lists: Sequence[tuple[str, str | Path, str | Path, str | Path]], ckpt: str | Path | None) -> list[dict]:
    """Score ``method`` (a ``lavss.models`` entry or ``mix_gt``) per ear on each test list of ``lists``: tuples
    ``(kind, mixtures, out_parquet, out_json)``. One job scores both lists: the clips and the model are loaded once."""
    lp = p.lavss
    data = lavss_data(p, lp.dataset, manifest, box_files)
    model = None
    if method == MIX_GT:
        weights, label = "none (mixture as estimate)", "mix-gt"
    else:
        v = lp.variant(method)
        if ckpt is None:
            raise ValueError(f"lavss.models.{method} needs a checkpoint to be scored")
        model, _ = load_lavss(ckpt)
        weights, label = _weights(lp, v), v.label
    summaries = []
    for kind, mixtures, out_parquet, out_json in lists:
        per_mix = evaluate_lavss(model, data, pd.read_parquet(mixtures), lp.batch_size_eval, lp.mask_threshold,
                                 desc=f"evaluate {method} ({kind})")
        write_parquet(per_mix, out_parquet)
        summary = {**summarize_ears(per_mix), "method": method, "label": label, "kind": kind, "dataset": lp.dataset,
                   "boxes": data.boxes.label, "weights": weights, "mask_threshold": lp.mask_threshold}
        write_json(summary, out_json)
        print(f"evaluate {lp.dataset}/{method} ({kind}): SDR {summary['sdr']:.2f} (L {summary['sdr_left']:.2f}, "
              f"R {summary['sdr_right']:.2f}) SIR {summary['sir']:.2f} (scored {summary['n_scored']}, "
              f"skipped {summary['n_skipped']})", flush=True)
        summaries.append(summary)
    return summaries


def lavss_table(p: Params, name: str, summaries: list[str], per_mixture: list[str], out_csv: str | Path,
                out_vs_paper: str | Path, same_type: list[str] | None = None) -> pd.DataFrame:
    """Write ``results/<name>.csv`` and ``<name>_vs_paper.csv`` (name: lavss_table1 .. lavss_table4).

    ``summaries`` and ``per_mixture`` are the evaluations of the table's test list (same-type mixtures for
    table 2, different-instrument ones otherwise); ``same_type`` the same-type summaries of tables 3 and 4."""
    lp = p.lavss
    methods = lp.tables[name]
    if name == "lavss_table1":
        df, vs = table1(lp, methods, summaries, per_mixture)
    elif name == "lavss_table2":
        df, vs = table2(lp, methods, summaries, per_mixture)
    elif name == "lavss_table3":
        df, vs = table3(lp, methods, summaries, same_type or [], per_mixture)
    elif name == "lavss_table4":
        df, vs = table4(lp, methods, summaries, same_type or [], per_mixture)
    else:
        raise ValueError(f"unknown LAVSS table {name!r}")
    write_csv(df, out_csv)
    write_csv(vs, out_vs_paper)
    print(f"{name}: " + ", ".join(f"{r['method']} {r.get('SDR', r.get('average')):.2f}" for _, r in df.iterrows()),
          flush=True)
    return df


def lavss_figure(p: Params, kind: str, manifest: str | Path, box_files: Sequence[str], mixtures: str | Path,
                 methods: list[str], ckpts: list[str | None], out_png: str | Path) -> None:
    """Spectrograms of the first mixture of a test list: per (source, ear) the mixture, the truth and each estimate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lp = p.lavss
    data = lavss_data(p, lp.dataset, manifest, box_files)
    table = pd.read_parquet(mixtures).head(1)
    spec = specs_from_table(table, 2)
    batch = data.batch(spec)
    ests = {}
    for m, ck in zip(methods, ckpts):
        model = None if ck is None else load_lavss(ck)[0]
        ests[lp.label(m)] = separate_batch(model, batch, lp.frontend, lp.mask_threshold)[0]

    def logspec(x: torch.Tensor) -> np.ndarray:
        return np.log10(stft(x.float()[None], lp.frontend)[0].abs().numpy() + 1e-4)

    cols = 2 + len(ests)
    fig, axes = plt.subplots(4, cols, figsize=(2.1 * cols, 7.2), squeeze=False)
    for n in range(2):
        for e, ear in enumerate(EARS):
            r = 2 * n + e
            cx = float(table[f"cx_{n}"].iloc[0])
            panels = [(f"mixture ({ear})", batch.mixture[0, e]),
                      (f"truth: {spec[0].labels[n]} x={cx:.2f} ({ear})", batch.sources[0, n, e])]
            panels += [(name, est[n, e]) for name, est in ests.items()]
            for c, (title, wav) in enumerate(panels):
                ax = axes[r, c]
                ax.imshow(logspec(wav), origin="lower", aspect="auto", cmap="magma")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0 or c == 1:
                    ax.set_title(title, fontsize=6)
    what = "two different instruments" if kind == "different" else "two instances of the same instrument"
    fig.suptitle(f"{lp.dataset} ({data.boxes.label}): {what}, mixture {table['mixture_id'].iloc[0]}", fontsize=8)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
