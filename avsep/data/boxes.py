"""Object boxes per clip and frame (detected or ground truth) and their centres at a time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from avsep.data.mixtures import MixSpec

if TYPE_CHECKING:  # torch is imported where it is used: the workflow imports this module while it plans the DAG
    import torch

BOX_KINDS = ("detected", "ground_truth")
SAME_OBJECT_IOU = 0.3  # a box of the same object in another frame overlaps the kept one at least this much


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a`` (n, 4) and ``b`` (m, 4), xyxy -> (n, m)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area = lambda x: np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


class BoxSource:
    """The box of a clip's object in any of its extracted frames, and the clip's horizontal position.

    ``tracks[clip] = (times (n,), boxes (n, 4), scores (n,))``; :meth:`box` takes the best-scoring box of the
    nearest time; ``positions[clip]`` is the object's median horizontal centre in [0, 1].
    """

    def __init__(self, kind: str, tracks: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                 positions: dict[str, float], fps: float, source: str, excluded: dict[str, str] | None = None) -> None:
        self.kind = kind
        self.tracks = tracks
        self.positions = positions
        self.fps = fps
        self.source = source
        self.excluded = dict(excluded or {})

    @property
    def label(self) -> str:
        return "detected boxes" if self.kind == "detected" else "ground-truth boxes"

    def box(self, clip: str, frame: int) -> np.ndarray:
        """(x1, y1, x2, y2) in [0, 1] of ``clip``'s object in extracted frame ``frame`` (0-based)."""
        try:
            times, boxes, scores = self.tracks[clip]
        except KeyError:
            why = self.excluded.get(clip, "not in the box source")
            raise KeyError(f"clip {clip!r} has no {self.label} ({why}; {self.source})") from None
        t = frame / self.fps
        dt = np.abs(times - t)
        near = np.flatnonzero(dt <= dt.min() + 1e-9)
        return boxes[near[np.argmax(scores[near])]]

    def boxes(self, specs: Sequence[MixSpec]) -> torch.Tensor:
        """(B, N, 4) float32 boxes of the (single) frame of every source of ``specs``."""
        import torch

        out = np.array([[self.box(c, fr[len(fr) // 2]) for c, fr in zip(sp.clips, sp.frames)] for sp in specs])
        return torch.from_numpy(out.astype(np.float32))

    @staticmethod
    def ground_truth(raw_boxes: str | Path, fps: float) -> BoxSource:
        """The renderer's boxes (``raw/boxes.parquet``: id, instance, time, x1..y2, cx); instance 0 of each clip."""
        df = pd.read_parquet(raw_boxes)
        need = ["id", "instance", "time", "x1", "y1", "x2", "y2", "cx"]
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise ValueError(f"{raw_boxes}: ground-truth boxes lack column(s) {missing}")
        df = df[df["instance"] == 0]
        tracks, pos = {}, {}
        for clip, g in df.groupby("id", sort=True):
            g = g.sort_values("time")
            xy = g[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
            tracks[str(clip)] = (g["time"].to_numpy(np.float64), xy, np.ones(len(g)))
            pos[str(clip)] = float(np.median(g["cx"]))
        return BoxSource("ground_truth", tracks, pos, fps, str(raw_boxes))

    @staticmethod
    def detected(objects: str | Path, boxes: str | Path, fps: float) -> BoxSource:
        """Boxes of the detection stage (``detect/objects.parquet`` + ``detect/boxes.parquet``)."""
        obj = pd.read_parquet(objects)
        need = ["clip", "rank", "status", "reason", "x1", "y1", "x2", "y2", "median_cx"]
        missing = [c for c in need if c not in obj.columns]
        if missing:
            raise ValueError(f"{objects}: detected objects lack column(s) {missing}")
        bx = pd.read_parquet(boxes)
        missing = [c for c in ("clip", "time", "score", "x1", "y1", "x2", "y2") if c not in bx.columns]
        if missing:
            raise ValueError(f"{boxes}: detected boxes lack column(s) {missing}")
        if "instrument" in bx.columns:
            bx = bx[bx["instrument"].astype(bool)]
        per_clip = {str(c): g for c, g in bx.groupby("clip", sort=False)}
        tracks, pos, excluded = {}, {}, {}
        for _, r in obj[obj["rank"] == 1].iterrows():
            clip = str(r["clip"])
            if r["status"] != "ok":
                excluded[clip] = f"detection failed: {r['reason']}"
                continue
            top = np.array([r["x1"], r["y1"], r["x2"], r["y2"]], dtype=np.float64)
            g = per_clip.get(clip)
            times, xy, sc = np.zeros(0), np.zeros((0, 4)), np.zeros(0)
            if g is not None and len(g):
                xy = g[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
                keep = box_iou(top, xy)[0] >= SAME_OBJECT_IOU
                times, xy, sc = g["time"].to_numpy(np.float64)[keep], xy[keep], g["score"].to_numpy(np.float64)[keep]
            if len(times) == 0:  # only the top box itself is known
                times, xy, sc = np.zeros(1), top[None], np.ones(1)
            order = np.argsort(times, kind="stable")
            tracks[clip] = (times[order], xy[order], sc[order])
            pos[clip] = float(r["median_cx"]) if np.isfinite(r["median_cx"]) else float((top[0] + top[2]) / 2)
        return BoxSource("detected", tracks, pos, fps, f"{objects} + {boxes}", excluded)


def box_inputs(kind: str, dataset: str) -> list[str]:
    """The files the boxes of ``dataset`` are read from (Snakemake inputs, in :func:`load_boxes` order)."""
    if kind == "detected":
        return [f"data/{dataset}/detect/objects.parquet", f"data/{dataset}/detect/boxes.parquet"]
    if kind == "ground_truth":  # the renderer's boxes (an output of rule synth)
        return [f"data/{dataset}/raw/boxes.parquet"]
    raise ValueError(f"unknown box source {kind!r}; expected one of {BOX_KINDS}")


def load_boxes(kind: str, files: Sequence[str | Path], fps: float) -> BoxSource:
    """The boxes of kind ``kind`` from ``files`` (:func:`box_inputs`)."""
    paths = [Path(f) for f in files]
    for f in paths:
        if not f.exists():
            raise FileNotFoundError(f"{f}: {kind} boxes are missing (lavss.boxes={kind})")
    if kind == "detected":
        return BoxSource.detected(paths[0], paths[1], fps)
    if kind == "ground_truth":
        return BoxSource.ground_truth(paths[0], fps)
    raise ValueError(f"unknown box source {kind!r}; expected one of {BOX_KINDS}")
