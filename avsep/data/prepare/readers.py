"""Readers of the extract stage's outputs for later stages: a clip's wav and its JPEG frames.

They read what :mod:`avsep.data.prepare.extract` wrote (``audio/{id}.wav``, ``frames/{id}/000001.jpg``)
and check nothing beyond what they are asked: the sample rate of a wav, the order of the frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from avsep.data.prepare.media import MediaError


def load_audio(path: str | Path, expected_sr: int) -> np.ndarray:
    """Read a wav as float32 of shape ``(channels, n)`` in [-1, 1].

    Raises:
        MediaError: the file is missing/unreadable or its rate is not ``expected_sr`` (names the file).
    """
    p = Path(path)
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, sf.LibsndfileError) as e:
        raise MediaError(f"{p}: cannot read audio ({e})") from None
    if sr != expected_sr:
        raise MediaError(f"{p}: sample rate is {sr} Hz, expected {expected_sr} Hz (re-run extract?)")
    return np.ascontiguousarray(data.T)


def list_frames(frames_dir: str | Path) -> list[Path]:
    """The JPEG frames of a clip's frame directory, in temporal order (empty if there are none)."""
    d = Path(frames_dir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.suffix == ".jpg" and not p.name.startswith("."))


def load_frame(path: str | Path, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Read a frame as uint8 RGB of shape ``(H, W, 3)``.

    ``size`` resizes it (bilinear): an int gives ``size`` x ``size``, a tuple is ``(width, height)``.
    """
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        if size is not None:
            wh = (size, size) if isinstance(size, int) else tuple(size)
            rgb = rgb.resize(wh, Image.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)
