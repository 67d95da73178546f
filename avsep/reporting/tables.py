"""Paper tables as CSV, each labelled with the dataset and the encoder weights that made it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

TABLE_COLUMNS = ["method", "SDR", "SIR", "SAR", "dataset", "n_mixtures", "n_skipped", "visual_weights",
                 "SDR_common", "SIR_common", "SAR_common", "n_common"]
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


def separation_table(summaries: list[Path], labels: list[str], per_mixture: list[Path]) -> pd.DataFrame:
    """HFRA Table 1 layout (method, SDR, SIR, SAR) plus dataset, mixture counts, encoder weights and the means
    over the mixtures every row scored (``*_common``, ``n_common``; from ``per_mixture``, one file per row)."""
    rows = []
    for path, label in zip(summaries, labels):
        s = json.loads(Path(path).read_text())
        if s["n_scored"] == 0:
            raise ValueError(f"{path}: no test mixture was scored ({s['n_skipped']} skipped); refusing to write a table row")
        rows.append(
            {
                "method": label,
                "SDR": s["sdr"],
                "SIR": s["sir"],
                "SAR": s["sar"],
                "dataset": s["dataset"],
                "n_mixtures": s["n_scored"],
                "n_skipped": s["n_skipped"],
                "visual_weights": s["visual_weights"],
            }
        )
    means, n = common_means([pd.read_parquet(p) for p in per_mixture])
    for row, m in zip(rows, means):
        row.update({f"{k.upper()}_common": v for k, v in m.items()}, n_common=n)
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


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
        })
    return pd.DataFrame(rows)


def values_vs_paper(ours: pd.DataFrame, keys: list[str], column: str, paper: dict[str, float], table: str) -> pd.DataFrame:
    """One value per row (probe accuracy, modality gap) beside the paper's."""
    from avsep.reporting.paper import PAPER_DATASET

    out = ours.copy()
    out[f"paper_{column}"] = [paper.get(k, float("nan")) for k in keys]
    out["paper_dataset"] = PAPER_DATASET.get(table, "")
    return out
