"""Paper tables as CSV, each labelled with the dataset and the encoder weights that made it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from avsep.reporting.seeds import N_SEEDS, mean_over_seeds, spread_columns, std_column

MEAN_COLUMNS = ["SDR", "SIR", "SAR", "SDR_common", "SIR_common", "SAR_common"]  # averaged over seeds
TABLE_COLUMNS = ["method", "SDR", "SIR", "SAR", "dataset", "n_mixtures", "n_skipped", "visual_weights",
                 "SDR_common", "SIR_common", "SAR_common", "n_common", *spread_columns(MEAN_COLUMNS)]
METRICS = ("sdr", "sir", "sar")


def common_means(per_mixture: list[pd.DataFrame], metrics: tuple[str, ...] = METRICS) -> tuple[list[dict[str, float]], int]:
    """Each row's mean of ``metrics`` over the mixtures that every row scored, and how many those are.

    The reference protocol skips a mixture when a reference or an estimate is silent, so a model that outputs
    silence on its hardest mixtures is averaged without them; these means compare the rows of a table on the
    same mixtures (``status == "scored"`` in every per-mixture file).
    """
    scored = [set(df.loc[df["status"] == "scored", "mixture_id"]) for df in per_mixture]
    common = set.intersection(*scored) if scored else set()
    means = []
    for df in per_mixture:
        rows = df[df["mixture_id"].isin(common)]
        means.append({m: float(rows[m].mean()) if common else float("nan") for m in metrics})
    return means, len(common)


def _runs(files: Sequence[Path | str | Sequence[Path | str]]) -> list[list[Path]]:
    """Per table row, its run files: a list per row (one per training seed), or a single file."""
    return [[Path(f)] if isinstance(f, (str, Path)) else [Path(x) for x in f] for f in files]


def separation_table(summaries: Sequence[Path | Sequence[Path]], labels: list[str],
                     per_mixture: Sequence[Path | Sequence[Path]]) -> pd.DataFrame:
    """HFRA Table 1 layout (method, SDR, SIR, SAR) plus dataset, mixture counts, encoder weights and the means
    over the mixtures every row scored (``*_common``, ``n_common``; from ``per_mixture``, one file per row).

    A row given several runs (one summary and one per-mixture file per training seed, the same order in both) is
    their mean, with ``<metric>_std`` over the seeds and ``n_seeds`` (:func:`avsep.reporting.seeds.mean_over_seeds`);
    the common mixtures are then those every run of every row scored.
    """
    runs, mixes = _runs(summaries), _runs(per_mixture)
    if [len(r) for r in runs] != [len(r) for r in mixes]:
        raise ValueError(f"separation table: the runs of each row differ between summaries {runs} and per-mixture files {mixes}")
    rows = []
    for paths, label in zip(runs, labels):
        seeds = []
        for path in paths:
            s = json.loads(Path(path).read_text())
            if s["n_scored"] == 0:
                raise ValueError(f"{path}: no test mixture was scored ({s['n_skipped']} skipped); refusing to write a table row")
            seeds.append({
                "method": label,
                "SDR": s["sdr"],
                "SIR": s["sir"],
                "SAR": s["sar"],
                "dataset": s["dataset"],
                "n_mixtures": s["n_scored"],
                "n_skipped": s["n_skipped"],
                "visual_weights": s["visual_weights"],
            })
        rows.append(seeds)
    means, n = common_means([pd.read_parquet(p) for paths in mixes for p in paths])
    it = iter(means)
    for seeds in rows:
        for row in seeds:
            row.update({f"{k.upper()}_common": v for k, v in next(it).items()}, n_common=n)
    return pd.DataFrame(mean_over_seeds(rows, MEAN_COLUMNS), columns=TABLE_COLUMNS)


def separation_vs_paper(ours: pd.DataFrame, methods: list[str], table: str) -> pd.DataFrame:
    """Our SDR/SIR/SAR beside the paper's for the same rows (NaN where the paper has no such row)."""
    from avsep.reporting.paper import PAPER_DATASET, SEPARATION

    paper = SEPARATION.get(table, {})
    rows = []
    for key, (_, r) in zip(methods, ours.iterrows()):
        p = paper.get(key, (float("nan"),) * 3)
        rows.append({
            "method": r["method"], "SDR": r["SDR"], "SIR": r["SIR"], "SAR": r["SAR"], "dataset": r["dataset"],
            "visual_weights": r["visual_weights"], "paper_SDR": p[0], "paper_SIR": p[1], "paper_SAR": p[2],
            "paper_dataset": PAPER_DATASET.get(table, ""),
            **{c: r[c] for c in spread_columns(("SDR", "SIR", "SAR")) if c in r},
        })
    return pd.DataFrame(rows)


def values_vs_paper(ours: pd.DataFrame, keys: list[str], column: str, paper: dict[str, float], table: str) -> pd.DataFrame:
    """One value per row (probe accuracy, modality gap) beside the paper's."""
    from avsep.reporting.paper import PAPER_DATASET

    out = ours.copy()
    out[f"paper_{column}"] = [paper.get(k, float("nan")) for k in keys]
    out["paper_dataset"] = PAPER_DATASET.get(table, "")
    return spread_last(out, [std_column(column), N_SEEDS])


def spread_last(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``df`` with the seed-spread ``columns`` it has moved to the end (after the paper's, as in every table)."""
    last = [c for c in columns if c in df.columns]
    return df[[c for c in df.columns if c not in last] + last]
