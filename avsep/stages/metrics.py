"""The tracking stages (rules/metrics.smk): each table's numbers for DVC metrics, its curves for DVC plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from avsep.reporting import tracking


def table_metrics(table: str, table_csv: str | Path, out_json: str | Path) -> dict[str, dict[str, float | None]]:
    """Rule table_metrics: every numeric cell of ``table_csv`` as JSON."""
    m = tracking.write_table_metrics(table_csv, out_json)
    print(f"{table}: {len(m)} rows -> {out_json}", flush=True)
    return m


def table_plots(table: str, out_dir: str | Path, train_logs: Sequence[str | Path], per_mixture: Sequence[str | Path],
                num_sources: int) -> None:
    """Rule table_plots: the training curve of each trained method (``models/<dataset>/<model>/train_log.csv``)
    and the per-instrument SDR of each method (``results/eval/<dataset>/<method>.parquet``)."""
    logs = {Path(f).parent.name: f for f in train_logs}
    evals = {Path(f).stem: f for f in per_mixture}
    tracking.write_table_plots(out_dir, logs, evals, num_sources)
    print(f"{table}: {len(logs)} training curves, {len(evals)} per-instrument SDR files", flush=True)
