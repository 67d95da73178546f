"""Ultralytics YOLO, offline: the detection configs, the ultralytics environment, loading and naming weights.

Ultralytics is kept offline (:func:`ultralytics_env`): ``YOLO_OFFLINE=1``, ``YOLO_AUTOINSTALL=False``, a
project-local ``YOLO_CONFIG_DIR`` holding a TTF font as ``Arial.ttf`` (the dataset check asks for it),
settings ``sync=False`` and integrations off, and training with ``amp=False`` (the AMP check downloads a
model) and ``plots=False``.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from avsep.core.io import atomic_path

if TYPE_CHECKING:
    from avsep.config.params import Params

#: Where ultralytics keeps its settings and fonts unless ``YOLO_CONFIG_DIR`` is set (ignored by git).
DEFAULT_CONFIG_DIR = Path(".cache") / "ultralytics"

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
