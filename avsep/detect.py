"""Object detection with ultralytics YOLO: a detector trained on synthetic frames, per-frame boxes, per-clip objects.

Two sources of weights (``detect.weights`` in params.yaml):

* ``trained`` (the offline default): a small YOLO built from its yaml (``detect.train.model``) is trained
  here on a synthetic dataset's extracted frames and the renderer's ground-truth boxes
  (:func:`make_yolo_dataset`, :func:`train_detector`); :func:`evaluate_detector` scores it on the frames
  of the held-out (test split) clips.
* a pretrained weights file or ultralytics tag, e.g. an Open Images V7 model ``yolov8m-oiv7.pt`` for real
  data. Its class names are mapped to the dataset's labels by :func:`class_labels` (:data:`LABEL_TO_OIV7`).

:func:`detect_dataset` runs a model over every extracted clip and writes ``boxes.parquet`` (one row per
box: clip, frame, time, class, score, x1, y1, x2, y2 normalised to [0, 1], instrument) and
``objects.parquet`` (per clip its top-scoring object(s), top two for duets, with their position, or a
``failed`` row with the reason).

Ultralytics is kept offline (:func:`ultralytics_env`): ``YOLO_OFFLINE=1``, ``YOLO_AUTOINSTALL=False``, a
project-local ``YOLO_CONFIG_DIR`` holding a TTF font as ``Arial.ttf`` (the dataset check asks for it),
settings ``sync=False`` and integrations off, and training with ``amp=False`` (the AMP check downloads a
model) and ``plots=False``.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from .io import (
    STATUS_FAILED,
    STATUS_OK,
    atomic_dir,
    atomic_path,
    read_manifest,
    status_counts,
    write_csv,
    write_json,
    write_parquet,
)
from .progress import progress

if TYPE_CHECKING:
    from .config import Params

#: Where ultralytics keeps its settings and fonts unless ``YOLO_CONFIG_DIR`` is set (ignored by git).
DEFAULT_CONFIG_DIR = Path(".cache") / "ultralytics"

# --------------------------------------------------------------------------------------------------
# Class names: Open Images V7 -> dataset labels
# --------------------------------------------------------------------------------------------------

#: The instrument classes of Open Images V7 (the classes of the ``yolov8*-oiv7.pt`` models).
OIV7_INSTRUMENTS: tuple[str, ...] = (
    "Accordion", "Banjo", "Cello", "Drum", "Flute", "French horn", "Guitar", "Harp", "Piano", "Saxophone",
    "Trombone", "Trumpet", "Violin",
)  # fmt: skip
#: The generic OIV7 class; instruments without their own class (tuba, clarinet, xylophone, erhu, ...) map here.
OIV7_GENERIC = "Musical instrument"

#: Our instrument labels (MUSIC / MUSIC-21 / FAIR-Play names, normalised by :func:`normalise_name`) whose
#: OIV7 class is not simply their own name. Any other label maps to its own name if that is an OIV7
#: instrument class, else to :data:`OIV7_GENERIC`.
LABEL_TO_OIV7: dict[str, str] = {
    "acoustic_guitar": "Guitar",
    "electric_guitar": "Guitar",
    "electric_bass": "Guitar",
    "ukulele": "Guitar",
    "congas": "Drum",
    "drums": "Drum",
    "drum_kit": "Drum",
    "grand_piano": "Piano",
    "tuba": OIV7_GENERIC,
    "clarinet": OIV7_GENERIC,
    "xylophone": OIV7_GENERIC,
    "erhu": OIV7_GENERIC,
}


def normalise_name(name: str) -> str:
    """``"French horn"`` / ``"acoustic-guitar"`` / ``"Acoustic Guitar"`` -> ``"french_horn"`` / ``"acoustic_guitar"``."""
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


_OIV7_BY_NORM = {normalise_name(c): c for c in (*OIV7_INSTRUMENTS, OIV7_GENERIC)}


def oiv7_class(label: str) -> str:
    """The Open Images V7 class that detects objects of our ``label`` (the generic class if none)."""
    norm = normalise_name(label)
    if norm in LABEL_TO_OIV7:
        return LABEL_TO_OIV7[norm]
    return _OIV7_BY_NORM.get(norm, OIV7_GENERIC)


def class_labels(names: Mapping[int, str] | Sequence[str], labels: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """For each class name of a model, the dataset labels it stands for (empty: not an instrument of ours).

    A class named like a label (a detector trained on the dataset) stands for that label. An OIV7
    instrument class stands for every label whose :func:`oiv7_class` it is; the generic
    ``Musical instrument`` also for the labels without their own class. Other classes (``Person``, ...)
    stand for nothing.
    """
    values = list(names.values()) if isinstance(names, Mapping) else list(names)
    by_norm: dict[str, list[str]] = {}
    for lab in sorted(set(labels)):
        by_norm.setdefault(normalise_name(lab), []).append(lab)
    out: dict[str, tuple[str, ...]] = {}
    for name in values:
        norm = normalise_name(name)
        if norm in by_norm:
            out[name] = tuple(by_norm[norm])
        elif norm in _OIV7_BY_NORM:
            cls = _OIV7_BY_NORM[norm]
            out[name] = tuple(lab for labs in by_norm.values() for lab in labs if oiv7_class(lab) == cls)
            if cls == OIV7_GENERIC and not out[name]:
                out[name] = (OIV7_GENERIC,)  # still an instrument, even if no label of ours maps to it
            elif not out[name]:
                out[name] = (cls,)
        else:
            out[name] = ()
    return out


def clip_labels(label: object) -> list[str]:
    """The instruments named by a clip label: ``"violin"`` -> one, a MUSIC duet ``"flute violin"`` -> two."""
    if label is None or (isinstance(label, float) and math.isnan(label)):
        return []
    return [t for t in str(label).split() if t]


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectTrainConfig:
    """Training of the YOLO detector on a synthetic dataset (``detect.train``)."""

    model: str = "yolov8n.yaml"
    epochs: int = 10
    imgsz: int = 128
    batch: int = 16
    frame_stride: int = 4
    lr0: float = 0.01
    close_mosaic: int = 3
    seed: int = 0
    threads: int = 1


@dataclass(frozen=True)
class DetectConfig:
    """The detection stage (``detect`` in params.yaml)."""

    datasets: tuple[str, ...] = ()
    weights: str = "trained"
    train: DetectTrainConfig = DetectTrainConfig()
    imgsz: int = 128
    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 10
    frame_stride: int = 1
    device: str = "cpu"
    fps: float = 8.0

    @property
    def uses_trained(self) -> bool:
        """Whether detection uses the detector trained here (else pretrained ``weights``)."""
        return self.weights == "trained"

    @classmethod
    def from_params(cls, p: Params) -> DetectConfig:
        d = p.raw["detect"]
        t = d["train"]
        train = DetectTrainConfig(
            model=str(t["model"]), epochs=int(t["epochs"]), imgsz=int(t["imgsz"]), batch=int(t["batch"]),
            frame_stride=int(t["frame_stride"]), lr0=float(t["lr0"]), close_mosaic=int(t["close_mosaic"]),
            seed=p.seed, threads=p.threads,
        )
        return cls(
            datasets=tuple(d["datasets"]), weights=str(d["weights"]), train=train, imgsz=int(d["imgsz"]),
            conf=float(d["conf"]), iou=float(d["iou"]), max_det=int(d["max_det"]),
            frame_stride=int(d["frame_stride"]), device=str(d["device"]), fps=p.fps,
        )


# --------------------------------------------------------------------------------------------------
# Ultralytics, offline
# --------------------------------------------------------------------------------------------------

_INTEGRATIONS_OFF = {
    "sync": False, "clearml": False, "comet": False, "dvc": False, "mlflow": False, "raytune": False,
    "tensorboard": False, "wandb": False, "vscode_msg": False, "openvino_msg": False,
}  # fmt: skip


def _font_file() -> Path:
    """A TTF font that ships with matplotlib (a dependency of ultralytics): DejaVu Sans."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: matplotlib's DejaVuSans.ttf is missing (needed as ultralytics' Arial.ttf)")
    return path


def ultralytics_env(config_dir: str | Path | None = None) -> ModuleType:
    """Import ultralytics set up to never touch the network; return the module.

    Sets ``YOLO_OFFLINE=1``, ``YOLO_AUTOINSTALL=False``, ``YOLO_VERBOSE`` (unless already set) and
    ``YOLO_CONFIG_DIR`` (``config_dir``, default ``.cache/ultralytics``) before the first import; puts a font
    there as ``Arial.ttf`` / ``Arial.Unicode.ttf`` (ultralytics' dataset check otherwise downloads one) and
    turns off sync and the logging integrations in its settings. If ultralytics was imported earlier in
    the process its config directory is already fixed; that one gets the fonts.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ["YOLO_AUTOINSTALL"] = "False"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    if "ultralytics" not in sys.modules:
        cdir = Path(config_dir) if config_dir is not None else Path(os.environ.get("YOLO_CONFIG_DIR", DEFAULT_CONFIG_DIR))
        cdir.mkdir(parents=True, exist_ok=True)
        os.environ["YOLO_CONFIG_DIR"] = str(cdir.resolve())
    import ultralytics
    from ultralytics import utils as uutils

    cfg_dir = Path(uutils.USER_CONFIG_DIR)
    cfg_dir.mkdir(parents=True, exist_ok=True)
    font = _font_file()
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (cfg_dir / name).is_file():
            with atomic_path(cfg_dir / name) as tmp:
                shutil.copyfile(font, tmp)
    settings = uutils.SETTINGS
    # Runs, downloaded weights and datasets named by relative paths stay in the config dir, never elsewhere.
    wanted = {**_INTEGRATIONS_OFF, **{k: str(cfg_dir / k.removesuffix("_dir")) for k in ("runs_dir", "weights_dir", "datasets_dir")}}
    if any(settings.get(k) != v for k, v in wanted.items()):
        settings.update(wanted)
    return ultralytics


def load_yolo(spec: str | Path, config_dir: str | Path | None = None) -> Any:
    """A ``ultralytics.YOLO`` from a yaml (new, untrained), a weights file, or a tag (downloads if online)."""
    ultralytics_env(config_dir)
    from ultralytics import YOLO

    return YOLO(str(spec), task="detect")


def weights_label(spec: str | Path) -> str:
    """``<file name> sha256:<12 hex>`` for a weights file, the tag itself otherwise (downloaded on use)."""
    path = Path(spec)
    if path.is_file():
        return f"{path.name} sha256:{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
    return str(spec)


# --------------------------------------------------------------------------------------------------
# A YOLO dataset from extracted frames and ground-truth boxes
# --------------------------------------------------------------------------------------------------


def frame_number(path: str | Path) -> int:
    """The 1-based frame number of an extracted frame file (``000012.jpg`` -> 12)."""
    stem = Path(path).stem
    if not stem.isdigit():
        raise ValueError(f"{path}: not an extracted frame name (expected digits, like 000001.jpg)")
    return int(stem)


def clip_frames(frames_dir: str | Path, stride: int = 1) -> list[Path]:
    """Every ``stride``-th extracted frame of a clip, starting with the first (empty if there are none)."""
    from .data.extract import list_frames

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


def _resolved_data_yaml(data_yaml: Path, where: Path) -> Path:
    """A copy of ``data.yaml`` with an absolute ``path`` (ultralytics resolves relative ones elsewhere)."""
    data = yaml.safe_load(Path(data_yaml).read_text())
    data["path"] = str(Path(data_yaml).parent.resolve())
    out = where / "data.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


# --------------------------------------------------------------------------------------------------
# Training and evaluation
# --------------------------------------------------------------------------------------------------


def _set_threads(threads: int) -> Any:
    """An ultralytics callback that sets torch's CPU threads (``select_device`` resets them to cores - 1)."""

    def callback(_: Any) -> None:
        import torch

        torch.set_num_threads(max(1, threads))

    return callback


def _epoch_progress(bar: Any) -> Any:
    """An ultralytics callback advancing ``bar`` by one epoch, with the epoch's mean training losses."""

    def callback(trainer: Any) -> None:
        losses = trainer.label_loss_items(trainer.tloss, prefix="loss")
        bar.set_postfix({k.split("/")[-1]: f"{float(v):.3f}" for k, v in losses.items()}, refresh=False)
        bar.update(1)

    return callback


def train_detector(
    data_yaml: str | Path, cfg: DetectTrainConfig, out_weights: str | Path, run_dir: str | Path,
    device: str = "cpu", config_dir: str | Path | None = None,
) -> Path:
    """Train a YOLO from ``cfg.model`` (a yaml: from scratch; a ``.pt``: fine-tuned) on ``data_yaml``.

    Offline and seeded (``deterministic=True``, ``workers=0``, ``amp=False``, ``plots=False``,
    ``val=False``: the held-out frames choose nothing, the last epoch's weights are kept). The ultralytics
    run (``args.yaml``, ``results.csv``) goes to ``run_dir``, the weights atomically to ``out_weights``.
    """
    ultralytics_env(config_dir)
    model = load_yolo(cfg.model, config_dir)
    model.add_callback("on_pretrain_routine_end", _set_threads(cfg.threads))
    bar = progress(total=cfg.epochs, desc=f"train_detector {cfg.model}", unit="epoch")
    model.add_callback("on_train_epoch_end", _epoch_progress(bar))
    run = Path(run_dir).resolve()  # ultralytics puts a relative project under its runs_dir
    with bar, atomic_dir(run) as tmp, tempfile.TemporaryDirectory(prefix=".yolo-data-", dir=run.parent) as td:
        data = _resolved_data_yaml(Path(data_yaml), Path(td))
        model.train(
            data=str(data), epochs=cfg.epochs, imgsz=cfg.imgsz, batch=cfg.batch, optimizer="AdamW", lr0=cfg.lr0,
            close_mosaic=min(cfg.close_mosaic, cfg.epochs), seed=cfg.seed, deterministic=True, device=device,
            workers=0, amp=False, plots=False, val=False, cache=False, project=str(tmp.parent), name=tmp.name,
            exist_ok=True, verbose=False, patience=cfg.epochs + 1,
        )
        last = tmp / "weights" / "last.pt"
        if not last.is_file():
            raise RuntimeError(f"YOLO training wrote no {last}")
        with atomic_path(out_weights) as wtmp:
            shutil.copyfile(last, wtmp)
        shutil.rmtree(tmp / "weights")
    return Path(out_weights)


#: Columns of ``results/detector.csv``.
REPORT_COLUMNS = (
    "dataset", "model", "weights", "epochs", "imgsz", "images", "instances", "precision", "recall", "mAP50",
    "mAP50_95",
)  # fmt: skip


def evaluate_detector(
    weights: str | Path, data_yaml: str | Path, imgsz: int, device: str = "cpu", config_dir: str | Path | None = None,
) -> dict[str, float | int]:
    """Precision, recall, mAP50 and mAP50-95 of ``weights`` on the ``val`` images of ``data_yaml``."""
    model = load_yolo(weights, config_dir)
    data_yaml = Path(data_yaml)
    val_dir = data_yaml.parent / "images" / "val"
    n_images = sum(1 for p in val_dir.iterdir() if p.suffix == ".jpg") if val_dir.is_dir() else 0
    if n_images == 0:
        raise ValueError(f"{val_dir}: no held-out images to evaluate the detector on")
    labels = data_yaml.parent / "labels" / "val"
    n_inst = sum(len(p.read_text().splitlines()) for p in labels.iterdir() if p.suffix == ".txt")
    with tempfile.TemporaryDirectory(prefix=".yolo-val-") as td:
        data = _resolved_data_yaml(data_yaml, Path(td))
        m = model.val(
            data=str(data), split="val", imgsz=imgsz, batch=16, device=device, workers=0, plots=False,
            save_json=False, project=td, name="val", exist_ok=True, verbose=False,
        )
    return {
        "images": n_images, "instances": n_inst, "precision": float(m.box.mp), "recall": float(m.box.mr),
        "mAP50": float(m.box.map50), "mAP50_95": float(m.box.map),
    }


# --------------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# Stages (called by the Snakemake scripts)
# --------------------------------------------------------------------------------------------------


def stage_train(
    p: Params, dataset: str, extract_manifest: str | Path, raw_boxes: str | Path, out_weights: str | Path,
) -> Path:
    """Rule train_detector: the YOLO dataset of ``dataset`` (next to the weights) and the trained weights."""
    cfg = DetectConfig.from_params(p)
    out = Path(out_weights)
    report = make_yolo_dataset(extract_manifest, raw_boxes, out.parent / "yolo", cfg.fps, cfg.train.frame_stride)
    n = report.groupby("split")["images"].sum().to_dict()
    print(f"train_detector {dataset}: clips {status_counts(report)}; images {n}", flush=True)
    write_parquet(report, out.parent / "dataset.parquet")
    train_detector(out.parent / "yolo" / "data.yaml", cfg.train, out, out.parent / "run", device=cfg.device)
    write_json({"dataset": dataset, "train": asdict(cfg.train), "weights": weights_label(out)}, out.parent / "train.json")
    print(f"train_detector {dataset}: wrote {out} ({weights_label(out)})", flush=True)
    return out


def stage_report(p: Params, datasets: Sequence[str], weights: Sequence[str | Path], out_csv: str | Path) -> pd.DataFrame:
    """Rule detector_report: the trained detectors' scores on their held-out synthetic frames."""
    cfg = DetectConfig.from_params(p)
    rows = []
    for dataset, w in zip(datasets, weights, strict=True):
        data_yaml = Path(w).parent / "yolo" / "data.yaml"
        m = evaluate_detector(w, data_yaml, cfg.train.imgsz, cfg.device)
        rows.append({"dataset": dataset, "model": cfg.train.model, "weights": weights_label(w),
                     "epochs": cfg.train.epochs, "imgsz": cfg.train.imgsz, **m})
        print(f"detector_report {dataset}: mAP50 {m['mAP50']:.3f} mAP50-95 {m['mAP50_95']:.3f} "
              f"on {m['images']} held-out frames", flush=True)
    df = pd.DataFrame(rows, columns=list(REPORT_COLUMNS))
    write_csv(df, out_csv)
    return df


def stage_detect(
    p: Params, dataset: str, extract_manifest: str | Path, weights: str | Path, out_boxes: str | Path,
    out_objects: str | Path,
) -> pd.DataFrame:
    """Rule detect: boxes and per-clip objects of every extracted clip of ``dataset``."""
    import torch

    cfg = DetectConfig.from_params(p)
    torch.set_num_threads(max(1, p.threads))
    model = load_yolo(weights)
    _, objects = detect_dataset(extract_manifest, model, cfg, out_boxes, out_objects, weights=weights_label(weights))
    print(f"detect {dataset}: {status_counts(clip_status(objects))}", flush=True)
    return objects
