"""The detection stages (rules/detect.smk): train the YOLO detector, score it, detect objects in every clip.

Two sources of weights (``detect.weights`` in params.yaml):

* ``trained`` (the offline default): a small YOLO built from its yaml (``detect.train.model``) is trained
  here on a synthetic dataset's extracted frames and the renderer's ground-truth boxes
  (:func:`avsep.detection.dataset.make_yolo_dataset`, :func:`avsep.detection.train.train_detector`);
  :func:`avsep.detection.train.evaluate_detector` scores it on the frames of the held-out (test split) clips.
* a pretrained weights file or ultralytics tag, e.g. an Open Images V7 model ``yolov8m-oiv7.pt`` for real
  data. Its class names are mapped to the dataset's labels by :func:`avsep.detection.labels.class_labels`
  (:data:`avsep.detection.labels.LABEL_TO_OIV7`).

:func:`avsep.detection.objects.detect_dataset` writes ``boxes.parquet`` and ``objects.parquet``;
ultralytics is kept offline by :func:`avsep.detection.yolo.ultralytics_env`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from avsep.core.io import status_counts, write_csv, write_json, write_parquet
from avsep.core.weights import weights_label
from avsep.detection import train
from avsep.detection.dataset import make_yolo_dataset
from avsep.detection.objects import clip_status, detect_dataset
from avsep.detection.train import REPORT_COLUMNS, evaluate_detector
from avsep.detection.yolo import DetectConfig, load_yolo

if TYPE_CHECKING:
    from avsep.config.params import Params


def train_detector(
    p: Params, dataset: str, extract_manifest: str | Path, raw_boxes: str | Path, out_weights: str | Path,
) -> Path:
    """Rule train_detector: the YOLO dataset of ``dataset`` (next to the weights) and the trained weights."""
    cfg = DetectConfig.from_params(p)
    out = Path(out_weights)
    report = make_yolo_dataset(extract_manifest, raw_boxes, out.parent / "yolo", cfg.fps, cfg.train.frame_stride)
    n = report.groupby("split")["images"].sum().to_dict()
    print(f"train_detector {dataset}: clips {status_counts(report)}; images {n}", flush=True)
    write_parquet(report, out.parent / "dataset.parquet")
    train.train_detector(out.parent / "yolo" / "data.yaml", cfg.train, out, out.parent / "run", device=cfg.device)
    write_json({"dataset": dataset, "train": asdict(cfg.train), "weights": weights_label(out)}, out.parent / "train.json")
    print(f"train_detector {dataset}: wrote {out} ({weights_label(out)})", flush=True)
    return out


def detector_report(p: Params, datasets: Sequence[str], weights: Sequence[str | Path], out_csv: str | Path) -> pd.DataFrame:
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


def detect(
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
