"""A YOLO detection dataset from a synthetic dataset's extracted frames and the renderer's ground-truth boxes.

:func:`make_yolo_dataset` writes ``images/``, ``labels/`` and ``data.yaml``: frames of ``train`` clips are
the training images, frames of the held-out ``test`` clips the validation images.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import yaml

from avsep.core.io import STATUS_FAILED, STATUS_OK, atomic_dir, read_manifest


def frame_number(path: str | Path) -> int:
    """The 1-based frame number of an extracted frame file (``000012.jpg`` -> 12)."""
    stem = Path(path).stem
    if not stem.isdigit():
        raise ValueError(f"{path}: not an extracted frame name (expected digits, like 000001.jpg)")
    return int(stem)


def clip_frames(frames_dir: str | Path, stride: int = 1) -> list[Path]:
    """Every ``stride``-th extracted frame of a clip, starting with the first (empty if there are none)."""
    from avsep.data.prepare.readers import list_frames

    if stride < 1:
        raise ValueError(f"frame stride must be >= 1, not {stride}")
    return list_frames(frames_dir)[::stride]


def frame_table(manifest: pd.DataFrame, base: Path, fps: float, stride: int) -> pd.DataFrame:
    """The frames used of every ``ok`` clip: id, label, split, frame, time ((frame - 1) / fps), path."""
    rows = []
    for r in manifest[manifest["status"] == STATUS_OK].itertuples(index=False):
        for f in clip_frames(base / str(r.frames), stride):
            n = frame_number(f)
            rows.append({"id": r.id, "label": r.label, "split": r.split, "frame": n, "time": (n - 1) / fps, "path": f})
    return pd.DataFrame(rows, columns=["id", "label", "split", "frame", "time", "path"])


def match_boxes(frames: pd.DataFrame, boxes: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """Ground-truth boxes of each extracted frame, matched by time (the rates of video and frames differ).

    ``frames`` has ``id, frame, time``; ``boxes`` the synthetic ``id, instance, time, x1, y1, x2, y2`` rows.
    Every instance of a clip is matched to the box whose time is nearest the frame's, within ``tolerance``
    seconds; frames without a match are dropped. Returns one row per (frame, instance).
    """
    inst = boxes[["id", "instance"]].drop_duplicates()
    left = frames.merge(inst, on="id").sort_values("time", kind="stable")
    right = boxes.rename(columns={"time": "box_time", "frame": "box_frame"}).drop(columns=["label"], errors="ignore")
    right = right.assign(time=right["box_time"]).sort_values("time", kind="stable")
    merged = pd.merge_asof(
        left, right, on="time", by=["id", "instance"], direction="nearest", tolerance=tolerance,
    )
    merged = merged.dropna(subset=["x1"])
    return merged.sort_values(["id", "frame", "instance"], kind="stable").reset_index(drop=True)


def box_time_step(boxes: pd.DataFrame) -> float:
    """The time between consecutive ground-truth boxes of an instance (1 / the video frame rate)."""
    steps = boxes.sort_values("time").groupby(["id", "instance"])["time"].diff().dropna()
    steps = steps[steps > 0]
    if steps.empty:
        raise ValueError("ground-truth boxes need at least two frames per object to find their frame rate")
    return float(steps.median())


def yolo_label_lines(rows: pd.DataFrame, class_index: Mapping[str, int]) -> str:
    """YOLO label text (``class cx cy w h`` per line, normalised) of one image's boxes."""
    lines = []
    for r in rows.itertuples(index=False):
        x1, y1, x2, y2 = (min(max(float(v), 0.0), 1.0) for v in (r.x1, r.y1, r.x2, r.y2))
        if x2 <= x1 or y2 <= y1:
            continue
        lines.append(f"{class_index[r.label]} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}")
    return "".join(line + "\n" for line in lines)


#: Manifest splits -> YOLO splits: the held-out clips are the validation images.
YOLO_SPLITS = {"train": "train", "test": "val"}


def make_yolo_dataset(
    extract_manifest: str | Path, raw_boxes: str | Path, out_dir: str | Path, fps: float, stride: int,
) -> pd.DataFrame:
    """Write a YOLO detection dataset (``images/``, ``labels/``, ``data.yaml``) under ``out_dir``.

    Frames of ``train`` clips become training images, frames of ``test`` clips validation images (every
    ``stride``-th extracted frame). Classes are the dataset's labels, sorted. The directory is replaced
    atomically. Returns one row per clip (id, split, status, reason, images); a clip whose frames match
    no ground-truth box is ``failed``.
    """
    manifest_path = Path(extract_manifest)
    manifest = read_manifest(manifest_path)
    boxes_path = Path(raw_boxes)
    if not boxes_path.is_file():
        raise FileNotFoundError(f"ground-truth boxes {boxes_path} do not exist (only synthetic datasets have them)")
    boxes = pd.read_parquet(boxes_path)
    missing = [c for c in ("id", "instance", "time", "label", "x1", "y1", "x2", "y2") if c not in boxes.columns]
    if missing:
        raise ValueError(f"{boxes_path}: missing column(s) {missing}")
    names = sorted(manifest["label"].dropna().astype(str).unique())
    class_index = {n: i for i, n in enumerate(names)}
    frames = frame_table(manifest, manifest_path.parent, fps, stride)
    frames = frames[frames["split"].isin(list(YOLO_SPLITS))]
    matched = match_boxes(frames[["id", "frame", "time"]], boxes, 0.5 * box_time_step(boxes) + 1e-6)
    matched = matched.merge(frames[["id", "frame", "label", "split", "path"]], on=["id", "frame"])
    out = Path(out_dir)
    report = []
    with atomic_dir(out) as tmp:
        for split in YOLO_SPLITS.values():
            (tmp / "images" / split).mkdir(parents=True)
            (tmp / "labels" / split).mkdir(parents=True)
        for r in manifest.itertuples(index=False):
            row = {"id": r.id, "split": r.split, "status": STATUS_OK, "reason": "", "images": 0}
            if r.status != STATUS_OK:
                row.update(status=STATUS_FAILED, reason=f"extract failed: {r.reason}")
            elif r.split not in YOLO_SPLITS:
                row.update(status=STATUS_FAILED, reason=f"split {r.split!r} is neither train nor test")
            else:
                clip = matched[matched["id"] == r.id]
                if clip.empty:
                    row.update(status=STATUS_FAILED, reason="no ground-truth box matches its frames")
                split = YOLO_SPLITS.get(str(r.split), "")
                for (frame, src), g in clip.groupby(["frame", "path"], sort=True):
                    stem = f"{r.id}_{int(frame):06d}"
                    _link_or_copy(Path(src), tmp / "images" / split / f"{stem}.jpg")
                    (tmp / "labels" / split / f"{stem}.txt").write_text(yolo_label_lines(g, class_index))
                    row["images"] += 1
            report.append(row)
        data = {"train": "images/train", "val": "images/val", "names": dict(enumerate(names))}
        (tmp / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return pd.DataFrame(report, columns=["id", "split", "status", "reason", "images"])


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
