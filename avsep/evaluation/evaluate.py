"""Scoring a trained separator on the fixed test mixture list (SDR/SIR/SAR, reference protocol)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from avsep.audio.frontend import FrontendConfig
from avsep.audio.mixing import mix_sources
from avsep.core.progress import progress
from avsep.data.inputs import VisualInputs
from avsep.data.mixtures import specs_from_table
from avsep.data.store import ClipStore, load_audio
from avsep.evaluation.inference import predict
from avsep.evaluation.metrics import aggregate, evaluate_mixture
from avsep.models.hfra.separator import AVSeparator


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = 8
    mask_threshold: float | None = 0.5
    num_sources: int = 2


def evaluate_model(
    model: AVSeparator,
    store: ClipStore,
    mixtures: pd.DataFrame,
    visual: VisualInputs,
    cfg: EvalConfig,
    frontend: FrontendConfig,
    desc: str = "evaluate",
) -> pd.DataFrame:
    """One row per test mixture: ids, status (scored / skipped) and SDR, SIR, SAR (means over sources)."""
    specs = specs_from_table(mixtures, cfg.num_sources)
    ids = list(mixtures["mixture_id"])
    rows: list[dict[str, object]] = []
    bar = progress(total=len(specs), desc=desc, unit="mix")
    for i in range(0, len(specs), cfg.batch_size):
        chunk = specs[i : i + cfg.batch_size]
        audio, gains = load_audio(store, chunk, frontend.clip_samples)
        sources, mixture = mix_sources(audio[:, :, 0], gains)
        est, probs = predict(model, mixture, visual(chunk), frontend, cfg.mask_threshold)
        for j, spec in enumerate(chunk):
            mid = ids[i + j]
            est_j = est[j].double().numpy()
            # A thresholded NaN mask would silently become an all-zero (skipped) estimate: check the masks too.
            if not (torch.isfinite(probs[j]).all() and np.all(np.isfinite(est_j))):
                raise FloatingPointError(f"mixture {mid} (clips {', '.join(spec.clips)}): the model output contains NaN or inf")
            res = evaluate_mixture(sources[j].double().numpy(), est_j)
            row: dict[str, object] = {"mixture_id": mid, "clips": ",".join(spec.clips), "labels": ",".join(spec.labels)}
            if res is None:
                row.update(status="skipped", sdr=np.nan, sir=np.nan, sar=np.nan)
            else:
                row.update(status="scored", sdr=res["sdr"], sir=res["sir"], sar=res["sar"])
                for k, lab in enumerate(spec.labels):
                    row[f"sdr_{k}"] = float(res["sdr_src"][k])
            rows.append(row)
        bar.update(len(chunk))
    bar.close()
    return pd.DataFrame(rows)


def evaluate_baseline(
    method: str,
    store: ClipStore,
    mixtures: pd.DataFrame,
    cfg: EvalConfig,
    frontend: FrontendConfig,
    seed: int = 0,
    desc: str = "evaluate",
) -> pd.DataFrame:
    """Score a non-learned, audio-only baseline (``nmf_mfcc`` | ``rpca``) on the same mixtures.

    Their estimates are unordered, so each mixture is scored with the best-SDR assignment of estimates
    to references (:func:`avsep.evaluation.baselines.evaluate_permuted`); the table rows are otherwise identical.
    """
    from avsep.evaluation.baselines import evaluate_permuted, nmf_mfcc_separate, rpca_separate

    specs = specs_from_table(mixtures, cfg.num_sources)
    rows: list[dict[str, object]] = []
    bar = progress(total=len(specs), desc=desc, unit="mix")
    for mid, spec in zip(mixtures["mixture_id"], specs):
        audio, gains = load_audio(store, [spec], frontend.clip_samples)
        sources, mixture = mix_sources(audio[:, :, 0], gains)
        mix = mixture[0].double().numpy()
        if method == "nmf_mfcc":
            est = nmf_mfcc_separate(mix, cfg.num_sources, frontend.sample_rate, seed=seed, n_fft=frontend.n_fft, hop=frontend.hop)
        elif method == "rpca":
            est = rpca_separate(mix, frontend.sample_rate, n_fft=frontend.n_fft, hop=frontend.hop)
            if cfg.num_sources != 2:
                raise ValueError("RPCA gives two estimates (sparse, low-rank): it needs mixing.num_sources = 2")
        else:
            raise ValueError(f"unknown baseline method {method!r} (nmf_mfcc | rpca)")
        res = evaluate_permuted(sources[0].double().numpy(), est)
        row: dict[str, object] = {"mixture_id": mid, "clips": ",".join(spec.clips), "labels": ",".join(spec.labels)}
        if res is None:
            row.update(status="skipped", sdr=np.nan, sir=np.nan, sar=np.nan)
        else:
            row.update(status="scored", sdr=res["sdr"], sir=res["sir"], sar=res["sar"])
            for k in range(cfg.num_sources):
                row[f"sdr_{k}"] = float(res["sdr_src"][k])
        rows.append(row)
        bar.update(1)
    bar.close()
    return pd.DataFrame(rows)


def summarize(per_mixture: pd.DataFrame) -> dict[str, float | int]:
    """Mean SDR/SIR/SAR over scored mixtures and the counts (via :func:`avsep.evaluation.metrics.aggregate`)."""
    recs = [
        None if r["status"] == "skipped" else {"sdr": r["sdr"], "sir": r["sir"], "sar": r["sar"]}
        for _, r in per_mixture.iterrows()
    ]
    return aggregate(recs)

