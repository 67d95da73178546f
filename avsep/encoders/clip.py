"""CLIP image embeddings (open_clip ViT-B-32), the visual input of HFRA and CLIPSep.

``pretrained`` selects the weights:

- ``random``: the architecture with open_clip's own initialisation, seeded (``random(seed=N)``), so it is
  deterministic; the offline default;
- a local file (``.pt``, ``.pth``, ``.bin`` or ``.safetensors``; open_clip loads each, strictly): labelled
  ``file:<name>@sha256:<first 12 hex>``;
- an open_clip tag of the model (``laion2b_s34b_b79k``, ``openai``, ...): downloaded by open_clip on first
  use (needs internet), labelled by the tag.

A ``.safetensors`` file whose metadata names its provenance (key ``avsep.weights``, written by
:mod:`avsep.encoders.pretrain_clip`) is labelled ``<provenance>@sha256:<first 12 hex>`` instead, e.g.
``synth-pretrained(synth-pretrain, seed=1234)@sha256:0123456789ab``.

``model_name`` is an open_clip architecture: a built-in one (``ViT-B-32``) or one of this package's small
configs in ``avsep/encoders/configs/`` (``avsep-ViT-Ti-8-64``: the domain encoder pre-trained on the synthetic
clips), registered with open_clip on first use. Each gets its own evaluation transform (at its image size).

Preprocessing is open_clip's evaluation transform of the model (resize the short side to 224 px, bicubic,
centre crop 224 x 224, RGB, CLIP mean/std). Embeddings are ``encode_image`` (the 512-d projection) L2-
normalised, as CLIPSep (which HFRA follows for CLIP features) and open_clip's zero-shot usage do: a point
on CLIP's unit sphere, comparable across images and with text embeddings, ready for HFRA's Linear layers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from avsep.core.weights import file_label

MODEL_NAME = "ViT-B-32"
EMBED_DIM = 512
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
#: This package's open_clip model configs (``<name>.json``), registered by :func:`register_configs`.
CONFIG_DIR = Path(__file__).parent / "configs"
#: safetensors metadata key naming where the weights come from (their label, before the hash).
PROVENANCE_KEY = "avsep.weights"
_REGISTERED: list[bool] = []


def register_configs() -> None:
    """Make the model configs of :data:`CONFIG_DIR` known to open_clip (once per process)."""
    import open_clip

    if not _REGISTERED:
        if CONFIG_DIR not in open_clip.factory._MODEL_CONFIG_PATHS:
            open_clip.add_model_config(CONFIG_DIR)
        _REGISTERED.append(True)


def weights_file_label(path: Path) -> str:
    """``<provenance>@sha256:<12 hex>`` for a safetensors file that names its provenance, else
    :func:`avsep.core.weights.file_label`."""
    label = file_label(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            provenance = (f.metadata() or {}).get(PROVENANCE_KEY)
        if provenance:
            return f"{provenance}@{label.rsplit('@', 1)[1]}"
    return label


@dataclass
class ClipEncoder:
    """A frozen open_clip image tower with its preprocessing and weights label."""

    model: torch.nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    model_name: str
    weights: str
    preprocess_cfg: dict[str, Any]

    @property
    def encoder(self) -> str:
        return f"open_clip {self.model_name}"

    @torch.no_grad()
    def embed_tensor(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, 224, 224) preprocessed pixels -> (B, 512) L2-normalised float32 embeddings."""
        device = next(self.model.parameters()).device
        return self.model.encode_image(pixels.to(device), normalize=True).float().cpu()

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """(N, 512) float32 embeddings of PIL images (any size and mode), in batches of ``batch_size``."""
        out = [np.zeros((0, EMBED_DIM), dtype=np.float32)]
        for i in range(0, len(images), batch_size):
            pixels = torch.stack([self.preprocess(im) for im in images[i : i + batch_size]])
            out.append(self.embed_tensor(pixels).numpy())
        return np.concatenate(out)


def _random_init(model_name: str, seed: int) -> Any:
    import open_clip

    register_configs()
    # open_clip initialises from torch's global generator: seed a forked copy so callers' RNG is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return open_clip.create_model_and_transforms(model_name, pretrained=None)


def resolve_pretrained(pretrained: str, model_name: str = MODEL_NAME) -> tuple[str, str]:
    """``(kind, value)`` with kind ``random``, ``file`` or ``tag``; raises naming the bad value."""
    import open_clip

    register_configs()
    if model_name not in open_clip.list_models():
        raise ValueError(f"clip.model: {model_name!r} is not an open_clip architecture (built-in or in {CONFIG_DIR})")
    if pretrained == "random":
        return "random", pretrained
    path = Path(pretrained)
    if path.suffix.lower() in WEIGHT_SUFFIXES or "/" in pretrained or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"clip.pretrained: weights file {path} does not exist")
        if path.suffix.lower() not in WEIGHT_SUFFIXES:
            raise ValueError(f"clip.pretrained: {path} is not a {'/'.join(WEIGHT_SUFFIXES)} file")
        return "file", str(path)
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if pretrained not in tags:
        raise ValueError(
            f"clip.pretrained: {pretrained!r} is neither 'random', a weights file, nor an open_clip tag of "
            f"{model_name} ({', '.join(tags)})"
        )
    return "tag", pretrained


def load_clip(pretrained: str = "random", model_name: str = MODEL_NAME, seed: int = 0, device: str = "cpu") -> ClipEncoder:
    """The CLIP image encoder with ``pretrained`` weights (see the module docstring), in eval mode."""
    import open_clip

    kind, value = resolve_pretrained(pretrained, model_name)
    if kind == "random":
        model, _, preprocess = _random_init(model_name, seed)
        label = f"random(seed={seed})"
    elif kind == "file":
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=value)
        label = weights_file_label(Path(value))
    else:
        tag_cfg = open_clip.get_pretrained_cfg(model_name, value)
        quick_gelu = bool(tag_cfg.get("quick_gelu", False)) and "quickgelu" not in model_name.lower()
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=value, force_quick_gelu=quick_gelu
        )
        label = value
    model = model.to(device).eval()
    for prm in model.parameters():
        prm.requires_grad_(False)
    cfg = dict(getattr(model.visual, "preprocess_cfg", {}))
    return ClipEncoder(model=model, preprocess=preprocess, model_name=model_name, weights=label, preprocess_cfg=cfg)
