"""Detection on extracted clips: per-frame boxes of a model and each clip's top object(s).

:func:`detect_dataset` runs a model over every extracted clip and writes ``boxes.parquet`` (one row per
box: clip, frame, time, class, score, x1, y1, x2, y2 normalised to [0, 1], instrument) and
``objects.parquet`` (per clip its top-scoring object(s), top two for duets, with their position, or a
``failed`` row with the reason).

:func:`label_clips` derives from the boxes what a dataset without instrument labels (FAIR-Play) lacks: each
clip's instrument(s) and whether it is a solo or a duet (:func:`label_clip`, the rule of the detections that
LAVSS uses, rhgao/co-separation ``getTopDetections.py``).
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
from avsep.detection.labels import class_labels, clip_labels, detected_label
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


#: Columns of the per-clip result of :func:`label_clips`.
LABEL_COLUMNS = ("clip", "status", "reason", "kind", "label", "labels", "n_frames", "frames_two", "two_fraction")
#: Columns of its objects: rank 1 (the clip's most confident detection), rank 2 (the most confident other object).
LABELLED_OBJECT_COLUMNS = (
    "clip", "rank", "label", "class", "score", "frame", "x1", "y1", "x2", "y2", "cx", "cy", "frames_seen",
    "median_cx", "median_cy",
)  # fmt: skip
KINDS = ("solo", "duet")


def confident_boxes(boxes: pd.DataFrame, min_score: float = 0.9, nms_iou: float = 0.7) -> pd.DataFrame:
    """The instrument boxes with score > ``min_score``; in each frame a box overlapping a more confident kept one
    by IoU > ``nms_iou`` is dropped, whatever its class (co-separation ``reduce_by_overlap``)."""
    b = boxes[boxes["instrument"].astype(bool)] if "instrument" in boxes.columns else boxes
    b = b[b["score"] > min_score]
    keep: list[int] = []
    for _, g in b.groupby("frame", sort=True):
        g = g.sort_values("score", ascending=False, kind="stable")
        xy = g[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
        kept: list[int] = []
        for i in range(len(g)):
            if not kept or box_iou(xy[i], xy[kept]).max() <= nms_iou:
                kept.append(i)
        keep.extend(g.index[kept])
    return b.loc[sorted(keep)]


def _distinct(xy: np.ndarray, same_object_iou: float) -> list[int]:
    """Rows of ``xy`` (by decreasing score) that are distinct objects: IoU < ``same_object_iou`` with every earlier one."""
    out: list[int] = []
    for i in range(len(xy)):
        if not out or box_iou(xy[i], xy[out]).max() < same_object_iou:
            out.append(i)
    return out


def label_clip(
    boxes: pd.DataFrame, n_frames: int, vocabulary: Sequence[str], min_score: float = 0.9, nms_iou: float = 0.7,
    same_object_iou: float = 0.3, duet_fraction: float = 0.5,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """One clip's detected instrument(s) and kind (solo | duet) from its boxes (``boxes.parquet`` rows).

    The rule, after rhgao/co-separation ``getTopDetections.py`` (the detections LAVSS uses: score > 0.9,
    overlaps above IoU 0.7 removed, at most two classes):

    1. :func:`confident_boxes`: instrument boxes with score > ``min_score``, per-frame overlaps > ``nms_iou``
       removed;
    2. object 1 is the clip's most confident box (ties: the earlier frame; LAVSS paper 3.2: "the object with
       the highest confidence score"); its class, named by :func:`avsep.detection.labels.detected_label` in
       ``vocabulary``, is the clip's label;
    3. a frame shows two objects when two of its confident boxes overlap by IoU < ``same_object_iou`` (the
       threshold below which boxes are different objects, as in :func:`top_objects`); the clip is a **duet**
       when at least ``duet_fraction`` of its ``n_frames`` detected frames show two objects, else a **solo**
       (a second object seen in fewer frames, or only below ``min_score``, does not make a duet);
    4. object 2 is the most confident box of those frames that is not object 1 (in each frame, object 1 is the
       box overlapping object 1's best box most). More than two objects: the two most confident are kept.

    Unlike co-separation, objects are told apart by position, not by class: two guitars side by side are a duet
    (labels ``guitar guitar``). Returns the summary (:data:`LABEL_COLUMNS`) and the objects
    (:data:`LABELLED_OBJECT_COLUMNS`: rank 1, and rank 2 when a second object was seen, duet or not).
    """
    conf = confident_boxes(boxes, min_score, nms_iou).drop(columns=["matched"], errors="ignore")
    summary: dict[str, Any] = {"status": STATUS_OK, "reason": "", "kind": "", "label": None, "labels": None,
                               "n_frames": int(n_frames), "frames_two": 0, "two_fraction": 0.0}
    if conf.empty:
        summary.update(status=STATUS_FAILED, reason=f"no instrument box with score > {min_score} in {n_frames} frame(s)")
        return summary, pd.DataFrame(columns=list(LABELLED_OBJECT_COLUMNS))
    first = top_objects(conf, 1, same_object_iou)
    top_xy = first[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
    others: list[int] = []
    two = 0
    for _, g in conf.groupby("frame", sort=True):
        g = g.sort_values("score", ascending=False, kind="stable")
        xy = g[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
        d = _distinct(xy, same_object_iou)
        if len(d) < 2:
            continue
        two += 1
        ious = box_iou(top_xy, xy[d])[0]
        one = d[int(np.argmax(ious))] if ious.max() >= same_object_iou else d[0]
        others.extend(g.index[[i for i in d if i != one]])
    parts = [first]
    if others:
        parts.append(top_objects(conf.loc[others], 1, same_object_iou))
    objs = pd.concat(parts, ignore_index=True)
    objs["label"] = [detected_label(c, vocabulary) for c in objs["class"]]
    objs["rank"] = np.arange(1, len(objs) + 1)
    frac = two / n_frames if n_frames > 0 else 0.0
    duet = len(objs) > 1 and frac >= duet_fraction
    summary.update(kind="duet" if duet else "solo", label=objs["label"].iloc[0],
                   labels=" ".join(objs["label"].iloc[: 2 if duet else 1]), frames_two=two, two_fraction=frac)
    return summary, objs[list(LABELLED_OBJECT_COLUMNS)]


def label_clips(
    boxes: pd.DataFrame, objects: pd.DataFrame, vocabulary: Sequence[str], min_score: float = 0.9,
    nms_iou: float = 0.7, same_object_iou: float = 0.3, duet_fraction: float = 0.5, check_objects: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`label_clip` for every clip of ``objects.parquet`` (with the boxes of ``boxes.parquet``).

    A clip whose detection failed (extraction failed, no frames) keeps that reason. With ``check_objects`` (the
    boxes LAVSS reads are ``objects.parquet``'s rank-1 object, :class:`avsep.data.boxes.BoxSource`), a clip whose
    labelled object is not that object (IoU < ``same_object_iou``: ``objects.parquet`` preferred a box of the
    clip's metadata label) is ``failed`` too, so a label never goes with another object's box. Returns
    (one row per clip: :data:`LABEL_COLUMNS`, their objects: :data:`LABELLED_OBJECT_COLUMNS`).
    """
    rule = {"min_score": min_score, "nms_iou": nms_iou, "same_object_iou": same_object_iou, "duet_fraction": duet_fraction}
    per_clip = {str(c): g for c, g in boxes.groupby("clip", sort=False)}
    empty = boxes.iloc[0:0]
    rows, objs = [], []
    for clip, g in objects.groupby("clip", sort=True):
        g = g.sort_values("rank")
        r1 = g.iloc[0]
        n_frames = int(r1["n_frames"])
        if r1["status"] != STATUS_OK and not per_clip.get(str(clip), empty).shape[0]:
            rows.append({"clip": str(clip), "status": STATUS_FAILED, "reason": f"detection: {r1['reason']}", "kind": "",
                         "label": None, "labels": None, "n_frames": n_frames, "frames_two": 0, "two_fraction": 0.0})
            continue
        summary, o = label_clip(per_clip.get(str(clip), empty), n_frames, vocabulary, **rule)
        if summary["status"] == STATUS_OK and check_objects:
            ref = np.array([r1[c] for c in ("x1", "y1", "x2", "y2")], dtype=np.float64)
            mine = o[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)[0]
            if r1["status"] != STATUS_OK or not box_iou(mine, ref)[0, 0] >= same_object_iou:
                summary.update(status=STATUS_FAILED, reason="the labelled object (most confident box) is not "
                               "objects.parquet's rank-1 object, whose boxes LAVSS reads")
        rows.append({"clip": str(clip), **summary})
        objs.append(o.assign(clip=str(clip)))
    clips = pd.DataFrame(rows, columns=list(LABEL_COLUMNS))
    clips = clips.astype({"n_frames": "int64", "frames_two": "int64", "two_fraction": "float64"})
    found = [o for o in objs if not o.empty]
    obj = pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=list(LABELLED_OBJECT_COLUMNS))
    return clips, obj[list(LABELLED_OBJECT_COLUMNS)].reset_index(drop=True)


def clip_status(objects: pd.DataFrame) -> pd.DataFrame:
    """One row per clip: ``ok`` when all its expected objects were found, else ``failed`` with the reasons."""
    g = objects.groupby("clip", sort=True)
    status = g["status"].agg(lambda s: STATUS_OK if (s == STATUS_OK).all() else STATUS_FAILED)
    reason = g["reason"].agg(lambda s: "; ".join(sorted({str(x) for x in s if x})))
    return pd.DataFrame({"id": status.index, "status": status.to_numpy(), "reason": reason.to_numpy()})
