"""The sounding objects of a video and their visual queries: detected, given as boxes, or given as images.

* **detected** (the default): the detection stage's YOLO (:func:`avsep.detection.yolo.load_yolo`,
  :func:`avsep.detection.objects.predict_frames`) runs over up to :data:`MAX_DETECT_FRAMES` frames spread over
  the video; the instrument classes (:func:`avsep.detection.labels.class_labels` in the checkpoint's vocabulary)
  are kept and the distinct objects chosen as the detection stage chooses a clip's objects
  (:func:`avsep.detection.objects.top_objects`: by score, the same object in other frames skipped by IoU). An
  object must be seen in at least :data:`MIN_SEEN` of the frames with an instrument. Its box is its most
  confident one, its label :func:`avsep.detection.labels.detected_label`;
* ``--box x1,y1,x2,y2[:label]``: pixels of the video frame, or fractions of it when all four are <= 1;
* ``--query-image IMG`` (HFRA family only): the image is the object's visual query (it has no position).

The visual query of a boxed object: for the HFRA family the crop of its box (the Sound-of-Pixels ResNet and CLIP
both saw whole frames of one object in training, so the crop keeps a margin of :data:`CROP_CONTEXT` times the
box around it); for LAVSS the frame and the box (the model crops and locates the box itself).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from avsep.separate import SeparateError

#: Frames the detector runs on at most (evenly spread over the video).
MAX_DETECT_FRAMES = 48
#: Share of the frames with an instrument box in which an object must be seen to count as sounding.
MIN_SEEN = 0.25
#: Side of the square crop of a box for the HFRA family, in units of the box's longer side.
CROP_CONTEXT = 1.5


@dataclass
class SoundingObject:
    """One object to separate: 1-based ``index``, ``label``, normalised ``box`` (None for a query image), the
    0-based extracted ``frame`` it is taken from, the detector's ``score`` and where it came from."""

    index: int
    label: str
    box: tuple[float, float, float, float] | None
    frame: int
    source: str  # detected | box | query image
    score: float | None = None
    image: Path | None = None

    @property
    def name(self) -> str:
        """The stem's file name without extension: ``<n>_<label>``."""
        return f"{self.index}_{safe_label(self.label)}"


def safe_label(label: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_-]+", "_", str(label)).strip("_")
    return s or "object"


_NUM = r"\s*([-+]?(?:\d+\.?\d*|\.\d+))\s*"
_BOX = re.compile(rf"^{_NUM},{_NUM},{_NUM},{_NUM}(?::\s*(.+))?$")


def parse_box(spec: str, width: int, height: int) -> tuple[tuple[float, float, float, float], str | None]:
    """``x1,y1,x2,y2[:label]`` in pixels of a ``width`` x ``height`` frame (or fractions when all <= 1) ->
    (normalised box, label or None); a :class:`SeparateError` for a malformed, empty or outside box."""
    m = _BOX.match(spec)
    if not m:
        raise SeparateError(f"--box {spec}: expected x1,y1,x2,y2 (pixels, or fractions of the frame), optionally "
                            ":label")
    x1, y1, x2, y2 = (float(v) for v in m.groups()[:4])
    fractions = max(x1, y1, x2, y2) <= 1.0
    w, h = (1.0, 1.0) if fractions else (float(width), float(height))
    if not (x1 < x2 and y1 < y2):
        raise SeparateError(f"--box {spec}: empty box (need x1 < x2 and y1 < y2)")
    if min(x1, y1) < 0 or x2 > w or y2 > h:
        frame = "[0, 1] x [0, 1]" if fractions else f"the {width}x{height} frame"
        raise SeparateError(f"--box {spec}: outside {frame}")
    return (x1 / w, y1 / h, x2 / w, y2 / h), (m.group(5).strip() if m.group(5) else None)


def boxed_objects(specs: Sequence[str], width: int, height: int, n_frames: int) -> list[SoundingObject]:
    """Objects from ``--box`` options; their reference frame is the middle of the video."""
    out = []
    for i, spec in enumerate(specs, start=1):
        box, label = parse_box(spec, width, height)
        out.append(SoundingObject(i, label or "box", box, n_frames // 2, "box"))
    return out


def image_objects(paths: Sequence[str | Path], first_index: int) -> list[SoundingObject]:
    """Objects from ``--query-image`` options (label: the file's stem); the image must be readable."""
    out = []
    for i, p in enumerate(paths, start=first_index):
        path = Path(p)
        try:
            with Image.open(path) as im:
                im.verify()
        except (OSError, SyntaxError) as e:
            raise SeparateError(f"{path}: not a readable image for --query-image ({e})") from None
        out.append(SoundingObject(i, path.stem, None, 0, "query image", image=path))
    return out


def detected_objects(frames: Sequence[Path], detector: str | Path, vocabulary: Sequence[str], max_objects: int,
                     device: str, video: Path) -> list[SoundingObject]:
    """The sounding objects the detector finds in ``frames`` (see the module docstring)."""
    from avsep.detection.labels import class_labels, detected_label
    from avsep.detection.objects import predict_frames, top_objects
    from avsep.detection.yolo import DetectConfig, load_yolo

    try:
        model = load_yolo(detector)
    except Exception as e:  # noqa: BLE001 (ultralytics raises many kinds: missing file, offline download, bad format)
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise SeparateError(f"{detector}: cannot load the detector ({reason})") from None
    step = max(1, math.ceil(len(frames) / MAX_DETECT_FRAMES))
    use = list(frames)[::step]
    imgsz = int((getattr(model, "overrides", {}) or {}).get("imgsz") or 640)
    cfg = DetectConfig(imgsz=imgsz, device="cpu" if device == "cpu" else "0")
    boxes = predict_frames(model, use, cfg)
    labels_of = class_labels(model.names, vocabulary)
    cand = boxes[[bool(labels_of.get(c)) for c in boxes["class"]]] if len(boxes) else boxes
    if cand.empty:
        seen = ", ".join(sorted(set(map(str, boxes["class"])))[:5]) if len(boxes) else "nothing"
        raise SeparateError(f"{video}: no sounding object found by the detector {Path(str(detector)).name} in "
                            f"{len(use)} frames (it saw: {seen}); give the objects with --box x1,y1,x2,y2")
    top = top_objects(cand.reset_index(drop=True), max_objects)
    n_seen = cand["frame"].nunique()
    top = top[top["frames_seen"] >= MIN_SEEN * n_seen]
    top = top.sort_values("cx", kind="stable").reset_index(drop=True)  # numbered left to right
    out = []
    for i, r in enumerate(top.to_dict("records"), start=1):
        box = (float(r["x1"]), float(r["y1"]), float(r["x2"]), float(r["y2"]))
        # predict_frames numbers frames from 1 (the extracted file names)
        out.append(SoundingObject(i, detected_label(str(r["class"]), vocabulary), box, int(r["frame"]) - 1,
                                  "detected", score=float(r["score"])))
    return out


def crop(frame: Image.Image, box: tuple[float, float, float, float], context: float = CROP_CONTEXT) -> Image.Image:
    """A square crop of ``frame`` around the normalised ``box``: side ``context`` x the box's longer side, centred
    on the box and shifted (then clipped) to stay inside the frame."""
    w, h = frame.size
    x1, y1, x2, y2 = box[0] * w, box[1] * h, box[2] * w, box[3] * h
    side = min(max(x2 - x1, y2 - y1) * context, float(min(w, h)))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = float(np.clip(cx - side / 2, 0, w - side))
    top = float(np.clip(cy - side / 2, 0, h - side))
    return frame.crop((round(left), round(top), round(left + side), round(top + side)))


def query_frames(n_frames: int, ref: int, k: int) -> list[int]:
    """``k`` 0-based frame indices around ``ref`` (consecutive, clipped to the video)."""
    lo = min(max(0, ref - k // 2), max(0, n_frames - k))
    return [min(n_frames - 1, lo + i) for i in range(k)]


def objects_table(objects: Sequence[SoundingObject]) -> pd.DataFrame:
    """One row per object (what ``summary`` prints)."""
    return pd.DataFrame([{"n": o.index, "label": o.label, "source": o.source, "score": o.score,
                          "box": None if o.box is None else ",".join(f"{v:.3f}" for v in o.box),
                          "frame": o.frame} for o in objects])
