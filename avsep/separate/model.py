"""A trained checkpoint as ``avsep separate`` uses it: the model, what it reads, and one window's separation.

The checkpoint carries everything (:func:`avsep.engine.checkpoint.inference_meta`): the front-end (the rate
the audio is resampled to, the clip length that is the window), the channels the model reads (1: the HFRA
family and mono pre-trained LAVSS; 2: binaural LAVSS), the extracted frame rate, the label vocabulary and, for
the CLIP variants, the CLIP model and weights. The file is read once (:func:`avsep.engine.checkpoint.load_model_checkpoint`,
as ``avsep info`` reads it) and the model built as the DAG's loaders build it (:func:`avsep.engine.checkpoint.separator_from`,
:func:`avsep.engine.lavss.lavss_from`); a window is separated
by the evaluation code (:func:`avsep.evaluation.inference.predict`, :func:`avsep.evaluation.binaural.separate_batch`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from avsep.audio.frontend import FrontendConfig
from avsep.data.store import pixels
from avsep.engine import checkpoint
from avsep.separate import SeparateError

HFRA, LAVSS = "hfra", "lavss"


@dataclass
class LoadedModel:
    """A checkpoint's model (eval mode, on ``device``) with what separation needs from its metadata."""

    path: Path
    family: str  # hfra | lavss
    model: torch.nn.Module
    config: dict[str, Any]
    meta: dict[str, Any]
    frontend: FrontendConfig
    channels: int
    fps: float
    labels: tuple[str, ...]
    device: torch.device
    threshold: float | None = 0.5
    clip: Any = field(default=None, repr=False)  # the CLIP encoder of an embedding variant (loaded lazily)

    @property
    def description(self) -> str:
        kind = "LAVSS (binaural)" if self.family == LAVSS and self.channels == 2 else (
            "LAVSS (mono)" if self.family == LAVSS else "HFRA family (mono)")
        return f"{self.meta.get('model', '?')} ({kind}), trained on {self.meta.get('dataset', '?')}"

    @property
    def visual_kind(self) -> str:
        """``frames`` (Sound-of-Pixels ResNet on frames), ``embedding`` (CLIP), or ``lavss`` (frame + box)."""
        return LAVSS if self.family == LAVSS else str(self.config["visual"]["kind"])

    # ------------------------------------------------------------------------------------------------
    # visual queries
    # ------------------------------------------------------------------------------------------------

    def hfra_query(self, crops: list[Image.Image]) -> torch.Tensor:
        """The HFRA visual input of one object from its crops (or query image): ``(K, 3, S, S)`` frames in [0, 1]
        for the Sound-of-Pixels ResNet (``n_frames`` of them; fewer crops are repeated), or the ``(512,)`` CLIP
        embedding of the middle crop."""
        v = self.config["visual"]
        if v["kind"] == "frames":
            k, size = int(v["n_frames"]), int(v["frame_size"])
            picks = [crops[min(len(crops) - 1, i * len(crops) // k)] for i in range(k)]
            arr = np.stack([pixels(im, size) for im in picks])
            return torch.from_numpy(arr)
        enc = self._clip_encoder()
        return torch.from_numpy(enc.embed_images([crops[len(crops) // 2]]))[0]

    def lavss_query(self, frame: Image.Image, box: tuple[float, float, float, float]) -> tuple[torch.Tensor, torch.Tensor]:
        """The LAVSS visual input of one object: its frame ``(3, S, S)`` at the model's image size and its
        normalised box ``(4,)`` (the model crops the box and encodes its position itself)."""
        size = int(self.config["image_size"])
        return torch.from_numpy(pixels(frame, size)), torch.tensor(box, dtype=torch.float32)

    def _clip_encoder(self) -> Any:
        if self.clip is None:
            from avsep.encoders.clip import load_clip

            c = self.meta.get("clip")
            if not c:
                raise SeparateError(f"{self.path}: a CLIP variant whose checkpoint does not name its CLIP encoder "
                                    "(meta['clip']): retrain it with this version of avsep")
            try:
                enc = load_clip(str(c["pretrained"]), model_name=str(c["model"]), seed=int(c.get("seed", 0)),
                                device=str(self.device))
            except (FileNotFoundError, ValueError, RuntimeError, OSError) as e:
                raise SeparateError(f"{self.path}: cannot load the CLIP encoder it names ({c['model']}, "
                                    f"{c['pretrained']}): {checkpoint.error_reason(e)}") from None
            if str(c.get("weights", enc.weights)) != enc.weights:
                raise SeparateError(f"{self.path}: the CLIP weights loaded ({enc.weights}) are not the ones the model "
                                    f"was trained with ({c['weights']})")
            self.clip = enc
        return self.clip

    # ------------------------------------------------------------------------------------------------
    # separation of one window
    # ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def separate_window(self, mixture: np.ndarray, visual: Any) -> np.ndarray:
        """``mixture`` ``(C, clip_samples)`` -> stems ``(N, C, clip_samples)`` for the N objects of ``visual``
        (:meth:`visual_batch`)."""
        x = torch.from_numpy(np.ascontiguousarray(mixture, dtype=np.float32)).to(self.device)
        if self.family == HFRA:
            from avsep.evaluation.inference import predict

            est, _ = predict(self.model, x[:1], visual.unsqueeze(0), self.frontend, self.threshold)  # (1, N, L)
            return est[0, :, None, :].cpu().numpy()
        from avsep.data.binaural_batches import Batch
        from avsep.evaluation.binaural import separate_batch

        images, boxes = visual
        n = images.shape[0]
        batch = Batch(sources=x.new_zeros(1, n, *x.shape), mixture=x[None], images=images[None], boxes=boxes[None])
        return separate_batch(self.model, batch, self.frontend, self.threshold)[0].cpu().numpy()  # (N, E, L)

    def visual_batch(self, queries: list[Any]) -> Any:
        """The per-object queries stacked on ``device``: a tensor (HFRA) or ``(images, boxes)`` (LAVSS)."""
        if self.family == HFRA:
            return torch.stack(queries).to(self.device)
        return (torch.stack([q[0] for q in queries]).to(self.device), torch.stack([q[1] for q in queries]).to(self.device))


#: What a checkpoint of format 1 carries for separation (:func:`avsep.engine.checkpoint.inference_meta`).
REQUIRED_META = ("frontend", "fps", "channels", "labels")


def load_model(path: str | Path, device: str = "cpu", threshold: float | None = 0.5) -> LoadedModel:
    """The checkpoint at ``path`` ready to separate, or a :class:`SeparateError` naming the file and the problem:
    missing, not a checkpoint (a resume state, a detector's weights, another program's file), written before
    checkpoints carried the front-end, by a newer format, or weights that do not fit the model they describe."""
    path = Path(path)
    if not path.is_file():
        raise SeparateError(f"{path}: checkpoint does not exist")
    dev = _device(device)
    try:
        ck = checkpoint.load_model_checkpoint(path)
    except ValueError as e:
        raise SeparateError(str(e)) from None
    meta, cfg = dict(ck["meta"]), dict(ck["config"])
    version = meta.get("format_version")
    if version is None:
        missing = ", ".join(k for k in REQUIRED_META if k not in meta)
        raise SeparateError(f"{path}: written before checkpoints carried what separation needs (missing meta: "
                            f"{missing}); retrain it with this version of avsep")
    if int(version) > checkpoint.FORMAT_VERSION:
        raise SeparateError(f"{path}: checkpoint format {version} is newer than this avsep reads "
                            f"({checkpoint.FORMAT_VERSION}); update avsep")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise SeparateError(f"{path}: checkpoint meta lacks {', '.join(missing)}")
    family = LAVSS if "backbone" in cfg else HFRA
    try:
        if family == LAVSS:
            from avsep.engine.lavss import lavss_from

            model = lavss_from(ck)
        else:
            model = checkpoint.separator_from(ck)
        frontend = FrontendConfig(**meta["frontend"])
    except (RuntimeError, TypeError, KeyError, ValueError) as e:
        raise SeparateError(f"{path}: incompatible with this version of avsep (its weights or config do not fit "
                            f"the model: {checkpoint.error_reason(e)})") from None
    return LoadedModel(path=path, family=family, model=model.to(dev).eval(), config=cfg, meta=meta,
                       frontend=frontend, channels=int(meta["channels"]), fps=float(meta["fps"]),
                       labels=tuple(meta["labels"]), device=dev, threshold=threshold)


def _device(name: str) -> torch.device:
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise SeparateError(f"--device {name}: expected cpu or cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SeparateError(f"--device {name}: no CUDA device is available")
    return torch.device(name)
