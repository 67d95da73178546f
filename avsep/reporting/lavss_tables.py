"""LAVSS tables 1-4 beside the paper's FAIR-Play numbers (rows by what each variant reproduces)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from avsep.config.lavss import MIX_GT, LAVSSParams, Variant
from avsep.models.lavss.config import LAVSSConfig
from avsep.reporting.tables import common_means

# The paper's numbers (FAIR-Play): (SDR L, SIR L, SDR R, SIR R).
PAPER_TABLE1 = {"SoP": (3.98, 7.03, 3.96, 6.99), "2.5D-sep": (4.44, 8.20, 4.47, 8.26),
                "LAVSS": (5.89, 10.08, 5.93, 10.30)}
PAPER_TABLE2_INSTRUMENTS = ("cello", "drum", "guitar", "harp", "piano", "trumpet")
PAPER_TABLE2 = {
    "SoP": (-2.12, -1.88, -2.69, -1.77, -2.35, -1.78),
    "2.5D-sep": (-0.93, 0.86, -2.00, -1.49, 0.35, -2.55),
    "mix-gt": (0.58, 0.25, 0.67, 0.47, 1.17, 1.51),
    "LAVSS": (1.53, 2.67, 3.72, 1.83, 3.13, 3.12),
}
#: Table 3 rows by (backbone, position, IPD, pre-training: none | finetune | frozen).
PAPER_TABLE3 = {
    ("sop", False, False, "none"): (3.34, 6.45, 3.29, 6.42),
    ("sop", True, False, "none"): (4.00, 7.31, 4.02, 7.27),
    ("sop", True, True, "none"): (4.32, 7.90, 4.38, 7.86),
    ("sop", False, False, "frozen"): (4.22, 7.84, 4.23, 7.88),
    ("sop", False, False, "finetune"): (4.79, 8.36, 4.82, 8.39),
    ("sop", False, True, "finetune"): (5.14, 8.57, 5.15, 8.55),
    ("sop", True, True, "finetune"): (5.32, 8.71, 5.36, 8.73),
    ("sep25d", False, False, "none"): (3.85, 7.24, 3.73, 7.44),
    ("sep25d", True, False, "none"): (4.90, 8.38, 4.82, 8.48),
    ("sep25d", True, True, "none"): (5.27, 9.27, 5.25, 9.28),
    ("sep25d", False, False, "frozen"): (4.67, 8.02, 4.70, 8.03),
    ("sep25d", False, False, "finetune"): (5.03, 8.56, 5.08, 8.59),
    ("sep25d", False, True, "finetune"): (5.53, 9.14, 5.59, 9.18),
    ("sep25d", True, True, "finetune"): (5.89, 10.08, 5.93, 10.30),
}
# A SoP-backbone LAVSS is compared with its own row of table 3 (position + IPD, fine-tuned), not the paper's LAVSS.
PAPER_TABLE1["LAVSS (SoP backbone)"] = PAPER_TABLE3[("sop", True, True, "finetune")]
PAPER_TABLE4 = {"full": (5.89, 10.08, 5.93, 10.30), "w/o VP atten.": (5.27, 9.34, 5.16, 9.37),
                "w/o AVP atten.": (5.04, 8.63, 5.05, 8.65), "w/o multi.": (4.90, 8.38, 4.82, 8.48),
                "Tile-Concat": (4.83, 8.41, 4.81, 8.38)}
PAPER_DATASET = "FAIR-Play"
EAR_COLUMNS = ["SDR_left", "SIR_left", "SDR_right", "SIR_right", "SDR", "SIR"]


def paper_method(lp: LAVSSParams, method: str) -> str | None:
    """Which paper row (tables 1-2) a method reproduces: SoP / 2.5D-sep (whole frame, per ear), LAVSS, mix-gt."""
    if method == MIX_GT:
        return "mix-gt"
    v = lp.variant(method)
    a = v.arch
    if a.visual == "frame" and not a.ipd:
        if a.backbone == "sop" and not a.bottleneck_fusion:
            return "SoP"
        return "2.5D-sep" if a.backbone == "sep25d" and a.tile_concat else None
    if a.visual == "crop" and a.position and a.ipd and module_ablation(a) == "full" and v.pretrain and v.finetune:
        # The paper's LAVSS row (tables 1-2) is its 2.5D-sep-backbone model (= table 3's last row); with the
        # Sound-of-Pixels backbone it is table 3's row "SoP + position + IPD, fine-tuned", which only table 1's
        # columns (per ear SDR/SIR) report.
        return "LAVSS" if a.backbone == "sep25d" else "LAVSS (SoP backbone)"
    return None


def module_ablation(a: LAVSSConfig) -> str | None:
    """The table 4 row an architecture is (None without bottleneck fusion or with several modules removed)."""
    if not a.bottleneck_fusion:
        return None
    if a.tile_concat:
        return "Tile-Concat"
    off = [name for name, on in (("w/o VP atten.", a.vp_attention), ("w/o AVP atten.", a.avp_attention),
                                 ("w/o multi.", a.multi_scale)) if not on]
    return "full" if not off else (off[0] if len(off) == 1 else None)


def _pretrain_kind(v: Variant) -> str:
    return "none" if v.pretrain is None else ("finetune" if v.finetune else "frozen")


def _ear_row(s: dict[str, Any]) -> dict[str, Any]:
    if s["n_scored"] == 0:
        raise ValueError(f"{s['method']} ({s['kind']}): no test mixture was scored ({s['n_skipped']} skipped); refusing "
                         "to write a table row")
    return {"SDR_left": s["sdr_left"], "SIR_left": s["sir_left"], "SDR_right": s["sdr_right"],
            "SIR_right": s["sir_right"], "SDR": s["sdr"], "SIR": s["sir"]}


def _provenance(s: dict[str, Any]) -> dict[str, Any]:
    return {"dataset": s["dataset"], "boxes": s["boxes"], "weights": s["weights"], "n_mixtures": s["n_scored"],
            "n_skipped": s["n_skipped"]}


def _paper_cols(vals: tuple[float, ...] | None) -> dict[str, float]:
    v = vals or (math.nan,) * 4
    return {"paper_SDR_left": v[0], "paper_SIR_left": v[1], "paper_SDR_right": v[2], "paper_SIR_right": v[3],
            "paper_SDR": (v[0] + v[2]) / 2, "paper_SIR": (v[1] + v[3]) / 2}


def _add_common(rows: list[dict[str, Any]], per_mixture: list[str], sdr: str = "SDR") -> None:
    """``<sdr>_common``, ``SIR_common``, ``n_common``: each row's mean over the mixtures every row scored."""
    means, n = common_means([pd.read_parquet(f) for f in per_mixture], ("sdr", "sir"))
    for row, m in zip(rows, means):
        row.update({f"{sdr}_common": m["sdr"], "SIR_common": m["sir"], "n_common": n})


def _read(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def table1(lp: LAVSSParams, methods: list[str], summaries: list[str], per_mixture: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 1: SDR / SIR of the left and right ear and their average, different-instrument mixtures (and the
    averages over the mixtures every row scored)."""
    rows, vs = [], []
    for m, f in zip(methods, summaries):
        s = _read(f)
        row = {"method": lp.label(m), **_ear_row(s), **_provenance(s)}
        rows.append(row)
        key = paper_method(lp, m)
        vs.append({**{k: row[k] for k in ("method", *EAR_COLUMNS)}, "paper_method": key or "",
                   **_paper_cols(PAPER_TABLE1.get(key or "")), "dataset": s["dataset"], "boxes": s["boxes"],
                   "paper_dataset": PAPER_DATASET})
    _add_common(rows, per_mixture)
    return pd.DataFrame(rows), pd.DataFrame(vs)


def _instrument_key(label: str) -> str:
    return "guitar" if "guitar" in label else label


def table2(lp: LAVSSParams, methods: list[str], summaries: list[str], per_mixture: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 2: same-instrument mixtures, SDR averaged over both ears, per instrument (columns) and overall."""
    rows, vs = [], []
    for m, f, pm in zip(methods, summaries, per_mixture):
        s = _read(f)
        _ear_row(s)
        d = pd.read_parquet(pm)
        d = d[d["status"] == "scored"]
        inst = d["labels"].str.split(",").str[0]
        per = d.groupby(inst)["sdr"].mean()
        row: dict[str, Any] = {"method": lp.label(m), **{lab: float(per[lab]) for lab in sorted(per.index)},
                               "average": s["sdr"], "SDR_left": s["sdr_left"], "SDR_right": s["sdr_right"],
                               **_provenance(s)}
        rows.append(row)
        key = paper_method(lp, m)
        paper = dict(zip(PAPER_TABLE2_INSTRUMENTS, PAPER_TABLE2.get(key or "", (math.nan,) * 6)))
        v: dict[str, Any] = {"method": row["method"], "paper_method": key or ""}
        for lab in sorted(per.index):
            v[lab] = row[lab]
            v[f"paper_{lab}"] = paper.get(_instrument_key(lab), math.nan)
        v["average"] = s["sdr"]
        v["paper_average"] = float(np.mean(list(paper.values()))) if key in PAPER_TABLE2 else math.nan
        vs.append({**v, "dataset": s["dataset"], "boxes": s["boxes"], "paper_dataset": PAPER_DATASET})
    instruments = sorted({k for r in rows for k in r} - {"method", "average", "SDR_left", "SDR_right", "dataset", "boxes",
                                                         "weights", "n_mixtures", "n_skipped"})
    _add_common(rows, per_mixture, sdr="average")
    cols = ["method", *instruments, "average", "SDR_left", "SDR_right", "dataset", "boxes", "weights", "n_mixtures",
            "n_skipped", "average_common", "SIR_common", "n_common"]
    for v in vs:  # the paper's value of every instrument column, also where a method scored no such mixture
        paper = dict(zip(PAPER_TABLE2_INSTRUMENTS, PAPER_TABLE2.get(v["paper_method"], (math.nan,) * 6)))
        for lab in instruments:
            v[f"paper_{lab}"] = paper.get(_instrument_key(lab), math.nan)
    vs_cols = ["method", "paper_method", *[c for i in instruments for c in (i, f"paper_{i}")], "average", "paper_average",
               "dataset", "boxes", "paper_dataset"]
    return pd.DataFrame(rows, columns=cols), pd.DataFrame(vs, columns=vs_cols)


def _flags(v: Variant) -> dict[str, Any]:
    pre = {"none": "no", "finetune": "yes", "frozen": "yes*"}[_pretrain_kind(v)]
    return {"backbone": {"sop": "SoP", "sep25d": "2.5D-sep"}[v.arch.backbone], "position": v.arch.position,
            "ipd": v.arch.ipd, "ipd_features": "+".join(v.arch.ipd_features) if v.arch.ipd else "",
            "pretrain": pre}


def table3(lp: LAVSSParams, methods: list[str], summaries: list[str], same_type: list[str],
           per_mixture: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 3: backbone x (position, IPD, mono pre-training); plus the SDR on same-instrument mixtures."""
    rows, vs = [], []
    for m, f, st in zip(methods, summaries, same_type):
        v, s, s2 = lp.variant(m), _read(f), _read(st)
        row = {"method": v.label, **_flags(v), **_ear_row(s), "SDR_same_type": _ear_row(s2)["SDR"], **_provenance(s)}
        rows.append(row)
        key = (v.arch.backbone, v.arch.position, v.arch.ipd, _pretrain_kind(v))
        vs.append({**{k: row[k] for k in ("method", "backbone", "position", "ipd", "ipd_features", "pretrain", *EAR_COLUMNS)},
                   **_paper_cols(PAPER_TABLE3.get(key)), "dataset": s["dataset"], "boxes": s["boxes"],
                   "paper_dataset": PAPER_DATASET})
    _add_common(rows, per_mixture)
    return pd.DataFrame(rows), pd.DataFrame(vs)


def table4(lp: LAVSSParams, methods: list[str], summaries: list[str], same_type: list[str],
           per_mixture: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 4: module ablation (full, w/o VP attention, w/o AVP attention, w/o multi-scale, Tile-Concat)."""
    rows, vs = [], []
    for m, f, st in zip(methods, summaries, same_type):
        v, s, s2 = lp.variant(m), _read(f), _read(st)
        arch = module_ablation(v.arch)
        row = {"method": v.label, "architecture": arch or "", **_ear_row(s), "SDR_same_type": _ear_row(s2)["SDR"],
               **_provenance(s)}
        rows.append(row)
        vs.append({**{k: row[k] for k in ("method", "architecture", *EAR_COLUMNS)},
                   **_paper_cols(PAPER_TABLE4.get(arch or "")), "dataset": s["dataset"], "boxes": s["boxes"],
                   "paper_dataset": PAPER_DATASET})
    _add_common(rows, per_mixture)
    return pd.DataFrame(rows), pd.DataFrame(vs)
