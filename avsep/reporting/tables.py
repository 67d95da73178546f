"""Paper tables as CSV, each labelled with the dataset and the encoder weights that made it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

TABLE_COLUMNS = ["method", "SDR", "SIR", "SAR", "dataset", "n_mixtures", "n_skipped", "visual_weights"]


def separation_table(summaries: list[Path], labels: list[str]) -> pd.DataFrame:
    """HFRA Table 1 layout (method, SDR, SIR, SAR) plus dataset, mixture counts and encoder weights."""
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
