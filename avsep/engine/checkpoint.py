"""Checkpoints: plain state dicts plus JSON-like metadata, loaded with ``weights_only=True``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from avsep.audio.frontend import FrontendConfig
from avsep.core.io import atomic_path
from avsep.models.hfra.config import SeparatorConfig
from avsep.models.hfra.separator import AVSeparator

#: Version of what a final checkpoint's ``meta`` carries for separation outside the DAG (``avsep separate``):
#: 1 = ``frontend``, ``fps``, ``channels``, ``labels`` and, for CLIP variants, ``clip`` (:func:`inference_meta`).
#: Checkpoints without ``format_version`` (written before) still load; ``avsep separate`` names what they lack.
FORMAT_VERSION = 1


def inference_meta(frontend: FrontendConfig, fps: float, channels: int, labels: Iterable[str],
                   clip: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a final checkpoint carries so that ``avsep separate`` needs nothing but the file: the front-end
    (rate, STFT, clip length, warp), the extracted frame rate, the audio channels the model reads, the label
    vocabulary of its training clips (a MUSIC duet label names two) and, for CLIP variants, the CLIP model,
    weights spec and label (``model``, ``pretrained``, ``seed``, ``weights``)."""
    vocab = sorted({t for lab in labels for t in str(lab).split() if t})
    out: dict[str, Any] = {"format_version": FORMAT_VERSION, "frontend": asdict(frontend), "fps": float(fps),
                           "channels": int(channels), "labels": vocab}
    if clip is not None:
        out["clip"] = dict(clip)
    return out


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


def error_reason(e: BaseException) -> str:
    """The first sentence of an error (torch's refusal to load a file is a page of text: its first sentence is the
    reason)."""
    text = str(e.__cause__ or e).strip()
    return (text.splitlines() or [type(e).__name__])[0].split(". ")[0]


def load_model_checkpoint(path: str | Path) -> dict[str, Any]:
    """A final model checkpoint (``model``, ``config``, ``meta``) as ``avsep info`` and ``avsep separate`` read it,
    or a ValueError naming the file: not readable (the reason), or another kind of file (a resume state, another
    program's). A missing file is a FileNotFoundError (:func:`load`)."""
    try:
        ck = load(path)
    except RuntimeError as e:
        raise ValueError(f"{path}: not a readable checkpoint ({error_reason(e)})") from None
    if not isinstance(ck, dict) or not {"model", "config", "meta"} <= set(ck):
        what = "a training resume state (state.pt)" if isinstance(ck, dict) and "optimizer" in ck else "another kind of file"
        raise ValueError(f"{path}: not an avsep model checkpoint (no model/config/meta): {what}")
    return ck


def load_separator(path: str | Path) -> tuple[AVSeparator, dict[str, Any]]:
    """The trained separator of a final checkpoint (in eval mode) and its metadata."""
    ck = load(path)
    for key in ("model", "config", "meta"):
        if key not in ck:
            raise RuntimeError(f"checkpoint {path} lacks {key!r}: is it an avsep separator checkpoint?")
    return separator_from(ck), ck["meta"]


def separator_from(ck: dict[str, Any]) -> AVSeparator:
    """The separator (eval mode) of a loaded final checkpoint."""
    model = AVSeparator(SeparatorConfig.from_dict(ck["config"]))
    model.load_state_dict(ck["model"])
    model.eval()
    return model
