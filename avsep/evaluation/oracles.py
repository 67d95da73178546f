"""Oracle masks for binaural mixtures: how much of a separation the interaural cues allow at all.

A diagnostic, not a model. For each two-source binaural mixture of a LAVSS test list it scores, per ear, the
estimates ``ISTFT(mask x mixture STFT)`` of a few masks built from the mixture and the sources' horizontal
positions (the box centres ``cx`` of the list, mapped to an azimuth as the synthetic renderer does):

* ``ibm``: the eq. 7 masks from the true sources (the ceiling of any binary-mask separator);
* ``ipd_template``: each bin goes to the source whose expected IPD ``-2 pi f ITD(azimuth)`` (wrapped) is
  nearer the observed one: what position + IPD determine, with the frequency of each bin known;
* ``ipd_sign``: the left source takes the bins with ``sin IPD > 0``: the side cue alone, no frequency;
* ``ild_sign``: the left source takes the bins louder in the left ear (a cue the per-ear LAVSS input lacks);
* ``mixture``: every source's estimate is the ear's mixture (mix-gt).

If ``ipd_template`` is far above ``mixture`` the data carries the position cue; a location-guided model
far below it has not learnt to use it. ``python -m avsep.cli lavss-oracles`` prints the table once the DAG
has made the LAVSS test lists.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from avsep.audio.binaural import phase_difference
from avsep.audio.frontend import FrontendConfig, masked_istft, stft
from avsep.config.params import Params
from avsep.data.binaural_batches import LAVSSData, lavss_data
from avsep.data.boxes import box_inputs
from avsep.data.mixtures import specs_from_table
from avsep.data.prepare.spatial import position_to_azimuth, woodworth_itd
from avsep.evaluation.metrics import evaluate_mixture

ORACLES = ("ibm", "ipd_template", "ipd_sign", "ild_sign", "mixture")


def expected_ipd(n_freq: int, sample_rate: int, azimuth: float) -> torch.Tensor:
    """``angle(X_L) - angle(X_R)`` of a source at ``azimuth`` (radians) per linear STFT bin, wrapped: the far
    ear is the delayed one, so a source on the right (positive ITD) has a negative IPD at low frequencies."""
    freqs = torch.linspace(0.0, sample_rate / 2.0, n_freq, dtype=torch.float64)
    return torch.angle(torch.exp(-2j * math.pi * freqs * woodworth_itd(azimuth))).float()


def oracle_masks(mix_spec: torch.Tensor, src_spec: torch.Tensor, positions: Sequence[float],
                 sample_rate: int) -> dict[str, torch.Tensor]:
    """The masks of :data:`ORACLES`, each ``(2 sources, 2 ears, F, T)``.

    ``mix_spec``: ``(2 ears, F, T)`` complex; ``src_spec``: ``(2 sources, 2 ears, F, T)`` complex;
    ``positions``: the two sources' horizontal positions in [0, 1] (0: left edge of the frame).
    """
    if mix_spec.dim() != 3 or mix_spec.shape[0] != 2 or src_spec.shape != (2, *mix_spec.shape):
        raise ValueError(f"expected a (2, F, T) mixture and (2, 2, F, T) sources, got {tuple(mix_spec.shape)} "
                         f"and {tuple(src_spec.shape)}")
    if len(positions) != 2:
        raise ValueError(f"oracle masks are for two sources, got {len(positions)} positions")
    e, f, t = mix_spec.shape

    def pair(first: torch.Tensor) -> torch.Tensor:  # (F, T) or (E, F, T) mask of source 0 -> both sources
        m = first.float().expand(e, f, t)
        return torch.stack([m, 1.0 - m])

    observed = phase_difference(mix_spec[0], mix_spec[1])
    dist = [torch.angle(torch.exp(1j * (observed - expected_ipd(f, sample_rate, position_to_azimuth(x))[:, None]))).abs()
            for x in positions]
    left_first = positions[0] <= positions[1]
    side = torch.sin(observed) > 0
    louder_left = mix_spec[0].abs() > mix_spec[1].abs()
    mags = src_spec.abs()
    return {
        "ibm": pair(mags[0] >= mags[1]),
        "ipd_template": pair(dist[0] <= dist[1]),
        "ipd_sign": pair(side if left_first else ~side),
        "ild_sign": pair(louder_left if left_first else ~louder_left),
        "mixture": torch.ones(2, e, f, t),
    }


def score_oracles(batch_sources: torch.Tensor, batch_mixture: torch.Tensor, positions: Sequence[Sequence[float]],
                  frontend: FrontendConfig) -> pd.DataFrame:
    """SDR / SIR (means over both ears) of every oracle for a batch: ``sources`` (B, 2, 2, L), ``mixture``
    (B, 2, L); one row per (mixture, oracle). A mixture with a silent reference in an ear gets NaN."""
    mix_spec, src_spec = stft(batch_mixture, frontend), stft(batch_sources, frontend)
    rows = []
    for j in range(batch_mixture.shape[0]):
        masks = oracle_masks(mix_spec[j], src_spec[j], positions[j], frontend.sample_rate)
        for name, m in masks.items():
            est = masked_istft(m, mix_spec[j].unsqueeze(0), frontend, length=batch_sources.shape[-1])
            res = [evaluate_mixture(batch_sources[j, :, k].double().numpy(), est[:, k].double().numpy())
                   for k in range(2)]
            ok = all(r is not None for r in res)
            rows.append({"index": j, "oracle": name,
                         "sdr": float(np.mean([r["sdr"] for r in res])) if ok else math.nan,  # type: ignore[index]
                         "sir": float(np.mean([r["sir"] for r in res])) if ok else math.nan})  # type: ignore[index]
    return pd.DataFrame(rows)


def oracle_table(data: LAVSSData, mixtures: pd.DataFrame, batch_size: int = 8) -> pd.DataFrame:
    """Mean SDR / SIR per oracle over a LAVSS test list (columns ``cx_0``, ``cx_1``: the box centres)."""
    specs = specs_from_table(mixtures, 2)
    cx = mixtures[["cx_0", "cx_1"]].to_numpy(dtype=float)
    parts = []
    for i in range(0, len(specs), batch_size):
        batch = data.batch(specs[i:i + batch_size])
        part = score_oracles(batch.sources, batch.mixture, cx[i:i + batch_size].tolist(), data.frontend)
        parts.append(part.assign(index=part["index"] + i))
    per = pd.concat(parts, ignore_index=True)
    out = per.groupby("oracle", sort=False)[["sdr", "sir"]].mean().reindex(list(ORACLES))
    return out.assign(mixtures=per.groupby("oracle")["sdr"].count().reindex(list(ORACLES))).reset_index()


def run_oracles(p: Params, kinds: Sequence[str] = ("same_type", "different"), root: str | Path = ".") -> pd.DataFrame:
    """:func:`oracle_table` of each LAVSS test list of the DAG under ``root``; needs the extract, detection
    and ``lavss_mixtures`` outputs of ``lavss.dataset``."""
    lp = p.lavss
    base = Path(root)
    manifest = base / f"data/{lp.dataset}/extract/manifest.parquet"
    data = lavss_data(p, lp.dataset, manifest, [str(base / f) for f in box_inputs(lp.boxes, lp.dataset)])
    tables = []
    for kind in kinds:
        path = base / f"data/{lp.dataset}/lavss/mixtures_{kind}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no LAVSS test list; run the DAG's lavss_mixtures stage first")
        tables.append(oracle_table(data, pd.read_parquet(path)).assign(mixtures_kind=kind))
    return pd.concat(tables, ignore_index=True)
