"""Seeds as a table dimension (params ``seeds:``): a table row of a trained variant is the mean over its training
seeds of each per-seed value, with the sample standard deviation beside it (``<metric>_std``, ddof 1; empty with
one seed) and ``n_seeds``. A non-learned baseline is one run: ``n_seeds`` 1.

With one seed every value is the run's own, unchanged (same number, same type), so a one-seed table has the
columns it had before plus the ``*_std`` and ``n_seeds`` ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

N_SEEDS = "n_seeds"


def std_column(metric: str) -> str:
    return f"{metric}_std"


def spread_columns(metrics: Sequence[str]) -> list[str]:
    """The columns a seeded table adds after its own: ``<metric>_std`` for each metric, then ``n_seeds``."""
    return [*(std_column(m) for m in metrics), N_SEEDS]


def _mean(values: Sequence[float]) -> float:
    return values[0] if len(values) == 1 else float(np.mean(values))


def sample_std(values: Sequence[float]) -> float:
    """The sample standard deviation (ddof 1) over seeds; NaN for one seed (no spread to estimate)."""
    return float(np.std(np.asarray(values, dtype=np.float64), ddof=1)) if len(values) > 1 else float("nan")


def _same(values: Sequence[Any]) -> bool:
    first = values[0]
    return all(v == first or (isinstance(v, float) and isinstance(first, float) and math.isnan(v) and math.isnan(first))
               for v in values[1:])


def mean_over_seeds(runs: Sequence[Sequence[Mapping[str, Any]]], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per entry of ``runs`` (a table row: its per-seed rows, the same keys in each), in order.

    ``metrics`` are averaged over the seeds, with ``<metric>_std`` and ``n_seeds`` added after the row's own
    keys. Any other key keeps its value where the seeds agree (label, dataset, weights); where they differ, a
    number is averaged (mixture counts) and text joined with ``"; "``.
    """
    out = []
    for seeds in runs:
        if not seeds:
            raise ValueError("mean over seeds: a table row with no run")
        row: dict[str, Any] = {}
        for key in seeds[0]:
            vals = [s[key] for s in seeds]
            if key in metrics:
                row[key] = _mean([float(v) for v in vals])
            elif _same(vals):
                row[key] = vals[0]
            elif all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in vals):
                row[key] = _mean([float(v) for v in vals])
            else:
                row[key] = "; ".join(dict.fromkeys(str(v) for v in vals))
        for m in metrics:
            row[std_column(m)] = sample_std([float(s[m]) for s in seeds])
        row[N_SEEDS] = len(seeds)
        out.append(row)
    return out


def series_over_seeds(per_seed: Sequence[pd.Series]) -> tuple[pd.Series, pd.Series]:
    """The mean and the sample std (ddof 1) over seeds of per-seed series sharing an index (e.g. SDR per
    instrument); an index entry missing from a seed is averaged over the seeds that have it. One seed: the series
    itself and NaN."""
    if len(per_seed) == 1:
        s = per_seed[0]
        return s, pd.Series(float("nan"), index=s.index, name=s.name)
    frame = pd.concat(list(per_seed), axis=1)
    return frame.mean(axis=1), frame.std(axis=1, ddof=1)


def group_runs(files: Sequence[str], runs: Mapping[str, Sequence[str]], name_of: Any) -> dict[str, list[str]]:
    """The files of each table row: ``runs`` maps a row (method) to its run names, ``name_of(file)`` gives the run
    name of a file (its stem, or its directory for a checkpoint). Every run must have exactly one file."""
    by_name: dict[str, str] = {}
    for f in files:
        name = name_of(f)
        if by_name.get(name, f) != f:
            raise ValueError(f"two inputs for run {name!r}: {by_name[name]} and {f}")
        by_name[name] = f
    missing = [r for rs in runs.values() for r in rs if r not in by_name]
    if missing:
        raise ValueError(f"no input file for run(s) {missing} (inputs: {sorted(by_name)})")
    return {m: [by_name[r] for r in rs] for m, rs in runs.items()}
