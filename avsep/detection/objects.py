"""Detection on extracted clips: per-frame boxes of a model and each clip's top object(s).

:func:`detect_dataset` runs a model over every extracted clip and writes ``boxes.parquet`` (one row per
box: clip, frame, time, class, score, x1, y1, x2, y2 normalised to [0, 1], instrument) and
``objects.parquet`` (per clip its top-scoring object(s), top two for duets, with their position, or a
``failed`` row with the reason).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from avsep.core.io import STATUS_FAILED, STATUS_OK, read_manifest, write_parquet
from avsep.core.progress import progress
from avsep.data.boxes import box_iou
from avsep.detection.dataset import clip_frames, frame_number
from avsep.detection.labels import class_labels, clip_labels
from avsep.detection.yolo import DetectConfig

#: Columns of ``boxes.parquet``.
BOX_COLUMNS = ("clip", "frame", "time", "class", "score", "x1", "y1", "x2", "y2", "instrument")
#: Columns of ``objects.parquet``.
OBJECT_COLUMNS = (
    "clip", "rank", "status", "reason", "label", "split", "class", "matched", "score", "frame", "x1", "y1", "x2",
    "y2", "cx", "cy", "frames_seen", "median_cx", "median_cy", "n_frames", "n_boxes", "weights",
)  # fmt: skip


def predict_frames(model: Any, frames: Sequence[Path], cfg: DetectConfig) -> pd.DataFrame:
    """Boxes of ``model`` on ``frames`` (``BOX_COLUMNS`` except ``clip`` and ``instrument``)."""
    cols = [c for c in BOX_COLUMNS if c not in ("clip", "instrument")]
    rows: list[pd.DataFrame] = []
    if not frames:
        return pd.DataFrame(columns=cols)
    results = model.predict(
        source=[str(f) for f in frames], imgsz=cfg.imgsz, conf=cfg.conf, iou=cfg.iou, max_det=cfg.max_det,
        device=cfg.device, verbose=False, stream=True, save=False, batch=16,
    )
    for f, r in zip(frames, results, strict=True):
        b = r.boxes
        if b is None or len(b) == 0:
            continue
        xyxy = b.xyxyn.cpu().numpy().astype(np.float64)
        n = frame_number(f)
        rows.append(pd.DataFrame({
            "frame": n, "time": (n - 1) / cfg.fps, "class": [r.names[int(c)] for c in b.cls.cpu().numpy()],
            "score": b.conf.cpu().numpy().astype(np.float64),
            "x1": xyxy[:, 0], "y1": xyxy[:, 1], "x2": xyxy[:, 2], "y2": xyxy[:, 3],
        }))
    return pd.concat(rows, ignore_index=True)[cols] if rows else pd.DataFrame(columns=cols)


def top_objects(boxes: pd.DataFrame, k: int, same_object_iou: float = 0.3) -> pd.DataFrame:
    """The ``k`` top-scoring distinct objects of one clip's boxes (all frames).

    Boxes are taken by decreasing score (ties: earlier frame first; with a boolean ``matched`` column,
    matched boxes before all others); a box overlapping an already chosen one by IoU >= ``same_object_iou``
    is the same object in another frame and is skipped. Each chosen row gets ``frames_seen`` (frames with a
    box on that object) and the median centre over those frames.
    """
    if boxes.empty or k < 1:
        return boxes.iloc[0:0]
    keys = (["matched"] if "matched" in boxes.columns else []) + ["score", "frame"]
    order = [False] * (len(keys) - 1) + [True]
    b = boxes.sort_values(keys, ascending=order, kind="stable").reset_index(drop=True)
    xy = b[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
    chosen: list[int] = []
    for i in range(len(b)):
        if not chosen or box_iou(xy[i], xy[chosen]).max() < same_object_iou:
            chosen.append(i)
            if len(chosen) == k:
                break
    out = b.iloc[chosen].copy()
    ious = box_iou(xy[chosen], xy)  # (k, n)
    owner = np.where(ious.max(axis=0) >= same_object_iou, ious.argmax(axis=0), -1)
    cx, cy = (xy[:, 0] + xy[:, 2]) / 2, (xy[:, 1] + xy[:, 3]) / 2
    out["cx"] = (out["x1"] + out["x2"]) / 2
    out["cy"] = (out["y1"] + out["y2"]) / 2
    out["frames_seen"] = [int(b.loc[owner == j, "frame"].nunique()) for j in range(len(chosen))]
    out["median_cx"] = [float(np.median(cx[owner == j])) for j in range(len(chosen))]
    out["median_cy"] = [float(np.median(cy[owner == j])) for j in range(len(chosen))]
    return out.reset_index(drop=True)


def objects_per_clip(row: Mapping[str, Any]) -> int:
    """How many objects a clip shows: its ``instances`` (synthetic), else one per instrument in its label."""
    inst = row.get("instances")
    if inst is not None and not pd.isna(inst) and int(inst) >= 1:
        return int(inst)
    return max(1, len(clip_labels(row.get("label"))))


def summarize_clip(
    clip: Mapping[str, Any], boxes: pd.DataFrame, labels_of: Mapping[str, tuple[str, ...]], n_frames: int,
    weights: str = "",
) -> pd.DataFrame:
    """``objects.parquet`` rows of one clip: its top object(s) and their position, or why there are none.

    Candidates are the instrument boxes (classes that stand for a label, see :func:`class_labels`); boxes
    whose class stands for the clip's own label(s) (``matched``) are chosen before the others. One row per
    expected object (:func:`objects_per_clip`); an object that was not found is a ``failed`` row.
    """
    k = objects_per_clip(clip)
    base = {
        "clip": str(clip["id"]), "label": clip.get("label"), "split": clip.get("split"), "n_frames": int(n_frames),
        "n_boxes": len(boxes), "weights": weights,
    }
    if clip.get("status", STATUS_OK) != STATUS_OK:
        return _failed_rows(base, k, 1, f"extract failed: {clip.get('reason')}")
    if n_frames == 0:
        return _failed_rows(base, k, 1, "no extracted frames")
    if boxes.empty:
        return _failed_rows(base, k, 1, f"nothing detected in {n_frames} frame(s)")
    cand = boxes[[bool(labels_of.get(c)) for c in boxes["class"]]]
    if cand.empty:
        seen = ", ".join(sorted(boxes["class"].astype(str).unique())[:5])
        return _failed_rows(base, k, 1, f"no instrument detected in {n_frames} frame(s) (classes seen: {seen})")
    wanted = set(clip_labels(clip.get("label")))
    cand = cand.assign(matched=[bool(wanted & set(labels_of.get(c, ()))) for c in cand["class"]])
    top = top_objects(cand, k)
    top = top.assign(**base, rank=np.arange(1, len(top) + 1), status=STATUS_OK, reason="")
    rows = [top]
    if len(top) < k:
        rows.append(_failed_rows(base, k, len(top) + 1, f"only {len(top)} distinct object(s) detected, {k} expected"))
    return pd.concat(rows, ignore_index=True)[list(OBJECT_COLUMNS)]


def _failed_rows(base: Mapping[str, Any], k: int, first_rank: int, reason: str) -> pd.DataFrame:
    n = k - first_rank + 1
    df = pd.DataFrame({c: [np.nan] * n for c in OBJECT_COLUMNS})
    for key, v in base.items():
        df[key] = v
    df["rank"] = np.arange(first_rank, k + 1)
    df["status"] = STATUS_FAILED
    df["reason"] = reason
    df["class"] = None
    df["matched"] = False
    df["frames_seen"] = 0
    return df


def _objects_frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(OBJECT_COLUMNS))
    df = df[list(OBJECT_COLUMNS)]
    for c in ("rank", "frames_seen", "n_frames", "n_boxes"):
        df[c] = df[c].astype("int64")
    df["frame"] = df["frame"].astype("Int64")
    df["matched"] = df["matched"].astype(bool)
    for c in ("score", "x1", "y1", "x2", "y2", "cx", "cy", "median_cx", "median_cy"):
        df[c] = df[c].astype("float64")
    return df


def detect_dataset(
    extract_manifest: str | Path, model: Any, cfg: DetectConfig, out_boxes: str | Path, out_objects: str | Path,
    weights: str = "", show_progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run ``model`` over every clip of an extract manifest; write ``boxes.parquet`` and ``objects.parquet``.

    A clip that failed extraction, has no frames or where nothing (no instrument) is detected gets a
    ``failed`` object row with the reason; the run goes on. Returns (boxes, objects).
    """
    manifest_path = Path(extract_manifest)
    manifest = read_manifest(manifest_path)
    labels = sorted({t for lab in manifest["label"].dropna() for t in clip_labels(lab)})
    labels_of = class_labels(model.names, labels)
    all_boxes: list[pd.DataFrame] = []
    objects: list[pd.DataFrame] = []
    counts = {"ok": 0, "failed": 0}
    bar = progress(manifest.to_dict("records"), desc=f"detect {manifest_path.parent.parent.name}", unit="clip",
                   disable=not show_progress)
    for clip in bar:
        frames_dir = manifest_path.parent / str(clip.get("frames") or "")
        ok_clip = clip.get("status") == STATUS_OK and bool(clip.get("frames"))
        frames = clip_frames(frames_dir, cfg.frame_stride) if ok_clip else []
        boxes = predict_frames(model, frames, cfg) if frames else pd.DataFrame(columns=list(BOX_COLUMNS))
        boxes = boxes.assign(clip=str(clip["id"]), instrument=[bool(labels_of.get(c)) for c in boxes["class"]])
        all_boxes.append(boxes[list(BOX_COLUMNS)])
        rows = summarize_clip(clip, boxes, labels_of, len(frames), weights)
        objects.append(rows)
        counts["ok" if (rows["status"] == STATUS_OK).all() else "failed"] += 1
        bar.set_postfix(counts, refresh=False)
    box_df = pd.concat([b for b in all_boxes if not b.empty], ignore_index=True) if any(
        not b.empty for b in all_boxes) else pd.DataFrame({c: [] for c in BOX_COLUMNS})
    box_df = box_df.astype({"clip": str, "frame": "int64", "time": "float64", "class": str, "score": "float64",
                            "x1": "float64", "y1": "float64", "x2": "float64", "y2": "float64", "instrument": bool})
    obj_df = _objects_frame(objects)
    write_parquet(box_df, out_boxes)
    write_parquet(obj_df, out_objects)
    return box_df, obj_df


def clip_status(objects: pd.DataFrame) -> pd.DataFrame:
    """One row per clip: ``ok`` when all its expected objects were found, else ``failed`` with the reasons."""
    g = objects.groupby("clip", sort=True)
    status = g["status"].agg(lambda s: STATUS_OK if (s == STATUS_OK).all() else STATUS_FAILED)
    reason = g["reason"].agg(lambda s: "; ".join(sorted({str(x) for x in s if x})))
    return pd.DataFrame({"id": status.index, "status": status.to_numpy(), "reason": reason.to_numpy()})
