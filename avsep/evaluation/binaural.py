"""LAVSS evaluation per ear on the fixed test lists (SDR/SIR of each ear and their mean)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from avsep.audio.frontend import FrontendConfig
from avsep.config.lavss import EARS
from avsep.core.progress import progress
from avsep.data.binaural_batches import Batch, LAVSSData
from avsep.data.mixtures import specs_from_table
from avsep.evaluation.metrics import aggregate, evaluate_mixture
from avsep.losses.binaural import masked_waves, predict_masks
from avsep.models.lavss.network import LAVSSNet


@torch.no_grad()
def separate_batch(model: LAVSSNet | None, batch: Batch, frontend: FrontendConfig,
                   threshold: float | None) -> torch.Tensor:
    """Estimates ``(B, N, E, L)``; ``model=None`` is mix-gt (every source's estimate is the ear's mixture)."""
    n = batch.sources.shape[1]
    if model is None:
        return batch.mixture.unsqueeze(1).expand(-1, n, -1, -1).clone()
    model.eval()
    masks, spec = predict_masks(model, batch, frontend)
    return masked_waves(masks, spec, frontend, threshold)


def evaluate_lavss(
    model: LAVSSNet | None, data: LAVSSData, table: pd.DataFrame, batch_size: int,
    threshold: float | None, desc: str = "evaluate",
) -> pd.DataFrame:
    """One row per mixture: SDR / SIR / SAR of each ear (means over the two sources) and their ear average.

    A mixture is ``skipped`` when either ear is (silent reference or estimate, the HFRA protocol).
    """
    specs = specs_from_table(table, 2)
    ids = list(table["mixture_id"])
    rows: list[dict[str, object]] = []
    bar = progress(total=len(specs), desc=desc, unit="mix")
    for i in range(0, len(specs), batch_size):
        chunk = specs[i:i + batch_size]
        batch = data.batch(chunk)
        est = separate_batch(model, batch, data.frontend, threshold)
        for j, spec in enumerate(chunk):
            mid = ids[i + j]
            row: dict[str, object] = {"mixture_id": mid, "clips": ",".join(spec.clips), "labels": ",".join(spec.labels)}
            e = est[j].double().numpy()
            if not np.all(np.isfinite(e)):
                raise FloatingPointError(f"mixture {mid} (clips {', '.join(spec.clips)}): the estimate contains NaN or inf")
            per_ear = []
            for k, ear in enumerate(EARS[: e.shape[1]]):
                res = evaluate_mixture(batch.sources[j, :, k].double().numpy(), e[:, k])
                per_ear.append(res)
                for m in ("sdr", "sir", "sar"):
                    row[f"{m}_{ear}"] = np.nan if res is None else res[m]
            if any(r is None for r in per_ear):
                row.update(status="skipped", sdr=np.nan, sir=np.nan, sar=np.nan)
            else:
                row.update(status="scored", **{m: float(np.mean([r[m] for r in per_ear])) for m in ("sdr", "sir", "sar")})
            rows.append(row)
        bar.update(len(chunk))
    bar.close()
    return pd.DataFrame(rows)


def summarize_ears(per_mixture: pd.DataFrame) -> dict[str, Any]:
    """Means over scored mixtures of each ear's SDR / SIR / SAR and of the ear average, with the counts."""
    scored = per_mixture[per_mixture["status"] == "scored"]
    out: dict[str, Any] = dict(aggregate([None if r["status"] == "skipped" else r for _, r in per_mixture.iterrows()]))
    for ear in EARS:
        for m in ("sdr", "sir", "sar"):
            col = f"{m}_{ear}"
            out[col] = float(scored[col].mean()) if len(scored) and col in scored else math.nan
    return out
