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
