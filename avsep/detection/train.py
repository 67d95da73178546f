"""Training the YOLO detector offline and scoring it on the held-out frames of its YOLO dataset.

A small YOLO built from its yaml (``detect.train.model``) is trained on a dataset written by
:func:`avsep.detection.dataset.make_yolo_dataset` (:func:`train_detector`); :func:`evaluate_detector`
scores it on the frames of the held-out (test split) clips.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from avsep.core.io import atomic_dir, atomic_path
from avsep.core.progress import progress
from avsep.detection.yolo import DetectTrainConfig, load_yolo, ultralytics_env


def _resolved_data_yaml(data_yaml: Path, where: Path) -> Path:
    """A copy of ``data.yaml`` with an absolute ``path`` (ultralytics resolves relative ones elsewhere)."""
    data = yaml.safe_load(Path(data_yaml).read_text())
    data["path"] = str(Path(data_yaml).parent.resolve())
    out = where / "data.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out




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
