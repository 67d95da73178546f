"""What experiment trackers read (DVC ``metrics`` and ``plots``): each table's numbers and its curves.

- ``results/metrics/<table>.json``: every numeric cell of a paper table, keyed by its row (the first
  column: the method, or the instrument for Table A1) and then by column, e.g.
  ``{"Sound-of-Pixels": {"SDR": 3.29, "SIR": 7.44, ...}}``.
- ``results/plots/<table>/train_loss/<model>.csv``: the training curve (step, loss, lr) of each trained
  method of the table, from ``models/<dataset>/<model>/train_log.csv``.
- ``results/plots/<table>/sdr_by_instrument/<method>.csv``: mean SDR per instrument (instrument, sdr) of
  each method over its scored test sources.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from avsep.core.io import atomic_dir, write_json
from avsep.reporting.analysis import per_class_sdr

TRAIN_CURVE_COLUMNS = ["step", "loss", "lr"]


def table_metrics(table_csv: str | Path) -> dict[str, dict[str, float | None]]:
    """Numeric cells of a table keyed by row, then column; empty cells become ``None``.

    A row's key is its first column (the method, or the instrument of Table A1); where that repeats, the
    text columns after it are joined in (``"LAVSS / left"``) until every row has its own key.
    """
    path = Path(table_csv)
    df = pd.read_csv(path)
    if df.empty:
        raise ValueError(f"{path}: the table has no rows; nothing to report as metrics")
    numeric = [c for c in df.columns[1:] if pd.api.types.is_numeric_dtype(df[c])]
    if not numeric:
        raise ValueError(f"{path}: no numeric column to report as metrics")
    text = [df.columns[0], *(c for c in df.columns[1:] if c not in numeric)]
    for n in range(1, len(text) + 1):
        keys = df[text[:n]].astype(str).agg(" / ".join, axis=1)
        if not keys.duplicated().any():
            break
    else:
        dup = sorted(set(keys[keys.duplicated()]))
        raise ValueError(f"{path}: rows are not unique by their text columns (repeated: {', '.join(dup)})")
    out: dict[str, dict[str, float | None]] = {}
    for key, (_, row) in zip(keys, df.iterrows()):
        cells = {}
        for c in numeric:
            v = float(row[c])
            cells[str(c)] = None if math.isnan(v) else v
        out[key] = cells
    return out


def write_table_metrics(table_csv: str | Path, out_json: str | Path) -> dict[str, dict[str, float | None]]:
    metrics = table_metrics(table_csv)
    write_json(metrics, out_json)
    return metrics


def train_curve(train_log: str | Path) -> pd.DataFrame:
    """(step, loss, lr) rows of a training log, checked."""
    path = Path(train_log)
    if not path.exists():
        raise FileNotFoundError(f"{path}: training log missing (written by the train rule beside checkpoint.pt)")
    df = pd.read_csv(path)
    missing = [c for c in TRAIN_CURVE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: training log lacks column(s) {', '.join(missing)}")
    if df.empty:
        raise ValueError(f"{path}: training log has no rows")
    return df[TRAIN_CURVE_COLUMNS]


def write_table_plots(
    out_dir: str | Path,
    train_logs: dict[str, str | Path],
    per_mixture: dict[str, str | Path],
    num_sources: int,
) -> None:
    """Write a table's plot data (see the module docstring) into ``out_dir``, atomically as a whole.

    ``train_logs`` and ``per_mixture`` map a method key (file stem) to its training log / per-mixture
    evaluation parquet.
    """
    with atomic_dir(out_dir) as tmp:
        (tmp / "train_loss").mkdir()  # both exist, possibly empty (a table of baselines has no curve)
        (tmp / "sdr_by_instrument").mkdir()
        for method, log in train_logs.items():
            train_curve(log).to_csv(tmp / "train_loss" / f"{method}.csv", index=False, lineterminator="\n")
        for method, parquet in per_mixture.items():
            sdr = per_class_sdr(pd.read_parquet(parquet), num_sources)
            if sdr.empty:
                raise ValueError(f"{parquet}: no scored test mixture, so no per-instrument SDR for {method}")
            df = sdr.rename_axis("instrument").reset_index(name="sdr")
            df.to_csv(
                tmp / "sdr_by_instrument" / f"{method}.csv", index=False, float_format="%.4f", lineterminator="\n"
            )
