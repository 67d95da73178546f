"""Checkpoints: plain state dicts plus JSON-like metadata, loaded with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from avsep.core.io import atomic_path
from avsep.models.hfra.config import SeparatorConfig
from avsep.models.hfra.separator import AVSeparator


def save(path: str | Path, payload: dict[str, Any]) -> None:
    """Save atomically (a killed job never leaves a half-written checkpoint under the final name)."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint {p} does not exist")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:
        raise RuntimeError(f"checkpoint {p} could not be loaded safely: {e}") from e


def load_separator(path: str | Path) -> tuple[AVSeparator, dict[str, Any]]:
    """The trained separator of a final checkpoint (in eval mode) and its metadata."""
    ck = load(path)
    for key in ("model", "config", "meta"):
        if key not in ck:
            raise RuntimeError(f"checkpoint {path} lacks {key!r}: is it an avsep separator checkpoint?")
    model = AVSeparator(SeparatorConfig.from_dict(ck["config"]))
    model.load_state_dict(ck["model"])
    model.eval()
    return model, ck["meta"]
