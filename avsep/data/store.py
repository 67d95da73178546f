"""Reading extracted clips: audio crops from wav files and frames from JPEG directories.

A store reads audio at one rate (its model family's front-end rate). A clip extracted at another rate
(``datasets.<name>.extract_rate``: HFRA runs at 11,625 Hz, LAVSS at 11,025 Hz, and both read MUSIC) is
resampled on read by :func:`resample_crop`, which gives the samples of the whole file resampled at once
without reading more than the crop; :func:`clips_at_rate` expresses a manifest's lengths at the store's rate.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import soundfile as sf
from PIL import Image

from avsep.core.io import read_manifest
from avsep.data.mixtures import MixSpec

if TYPE_CHECKING:  # torch only where tensors are made: the manifest-only jobs (mixture lists) start without it
    import torch


class ClipStore:
    """Random access to the clips of an extract manifest (paths relative to the manifest's folder)."""

    def __init__(self, manifest_path: str | Path, sample_rate: int, channels: int = 1) -> None:
        self.root = Path(manifest_path).parent
        m = pd.read_parquet(manifest_path)
        m = m[m["status"] == "ok"]
        self.rows = {str(r["id"]): r for _, r in m.iterrows()}
        self.sample_rate = sample_rate
        self.channels = channels

    def _row(self, clip: str) -> pd.Series:
        try:
            return self.rows[clip]
        except KeyError:
            raise KeyError(f"clip {clip!r} is not an extracted (ok) clip of {self.root}/manifest.parquet") from None

    def audio(self, clip: str, start: int, length: int) -> np.ndarray:
        """(channels, length) float32 crop at the store's rate (``start``, ``length`` in its samples); a file at
        another rate is resampled (:func:`resample_crop`). Raises naming the file if the crop runs past its end."""
        path = self.root / str(self._row(clip)["audio"])
        with sf.SoundFile(path) as f:
            if f.samplerate != self.sample_rate:
                x = resample_crop(f, start, length, self.sample_rate)
                got = x.shape[1]
            else:
                f.seek(start)
                data = f.read(length, dtype="float32", always_2d=True)
                x, got = data.T, data.shape[0]
        if got < length:
            raise ValueError(f"{path}: crop [{start}, {start + length}) runs past the end ({start + got})")
        if x.shape[0] != self.channels:
            raise ValueError(f"{path}: {x.shape[0]} channel(s), expected {self.channels}")
        return np.ascontiguousarray(x)

    def frame(self, clip: str, index: int, size: int) -> np.ndarray:
        """Frame ``index`` (0-based) of ``clip`` resized to size x size, float32 (3, size, size) in [0, 1]."""
        folder = self.root / str(self._row(clip)["frames"])
        return _load_frame(str(folder / f"{index + 1:06d}.jpg"), size)


#: Input samples read on each side of a resampled crop: more than resample_poly's filter half-length
#: (10 x max(up, down) / up input samples), so the crop equals the same samples of the whole file resampled.
RESAMPLE_PAD = 64


def resample_crop(f: sf.SoundFile, start: int, length: int, rate: int) -> np.ndarray:
    """Samples ``[start, start + length)`` at ``rate`` of the open sound file ``f`` (at another rate), float32
    (channels, n) with n < ``length`` only where the file ends.

    Output sample ``n`` lies at input position ``n * down / up`` (``up / down = rate / f.samplerate``); the read
    starts at a multiple of ``down`` so that the crop's samples are exactly the whole file's, resampled by
    ``scipy.signal.resample_poly``, away from the file's own ends.
    """
    ratio = Fraction(rate, f.samplerate)
    up, down = ratio.numerator, ratio.denominator
    n_out = math.ceil(f.frames * up / down)  # samples of the whole file resampled
    length = max(0, min(length, n_out - start))
    first = max(0, (start * down // up - RESAMPLE_PAD) // down * down)
    last = min(f.frames, math.ceil((start + length) * down / up) + RESAMPLE_PAD)
    f.seek(first)
    data = f.read(last - first, dtype="float64", always_2d=True)
    if last == f.frames:  # the file's own end, zero beyond it (as resampling the whole file)
        data = np.concatenate([data, np.zeros((RESAMPLE_PAD, data.shape[1]))])
    from scipy.signal import resample_poly  # here, not at import: most jobs never resample (0.5 s of their start)

    y = resample_poly(data, up, down, axis=0)
    offset = start - first * up // down
    return np.ascontiguousarray(y[offset:offset + length].T, dtype=np.float32)


def clips_at_rate(manifest: pd.DataFrame, rate: int) -> pd.DataFrame:
    """The manifest with each clip's ``n_samples`` at ``rate`` (as :meth:`ClipStore.audio` reads it) and
    ``sample_rate`` set to it; unchanged rows where the clip already is at ``rate``."""
    if "sample_rate" not in manifest.columns:
        return manifest
    src = pd.to_numeric(manifest["sample_rate"], errors="coerce")
    other = src.notna() & (src != rate)
    if not other.any():
        return manifest
    out = manifest.copy()
    n = out.loc[other, "n_samples"].astype("int64").to_numpy()
    r = src[other].astype("int64").to_numpy()
    out.loc[other, "n_samples"] = [math.ceil(int(a) * rate / int(b)) for a, b in zip(n, r)]
    out.loc[other, "sample_rate"] = rate
    return out


def read_clips(manifest_path: str | Path, rate: int) -> pd.DataFrame:
    """An extract manifest (:func:`avsep.core.io.read_manifest`) with its lengths at ``rate`` (:func:`clips_at_rate`)."""
    return clips_at_rate(read_manifest(manifest_path), rate)


def pixels(im: Image.Image, size: int) -> np.ndarray:
    """An image as the models read frames: RGB resized to size x size (bilinear), float32 (3, size, size) in [0, 1]."""
    arr = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
    return arr.transpose(2, 0, 1).copy()


@functools.lru_cache(maxsize=4096)
def _load_frame(path: str, size: int) -> np.ndarray:
    with Image.open(path) as im:
        arr = pixels(im, size)
    arr.setflags(write=False)
    return arr


def load_frames(store: ClipStore, specs: list[MixSpec], frame_size: int) -> torch.Tensor:
    """Frames (B, N, K, 3, S, S) of each source of a list of mixtures."""
    frames = np.stack(
        [
            np.stack([np.stack([store.frame(c, fi, frame_size) for fi in fr]) for c, fr in zip(sp.clips, sp.frames)])
            for sp in specs
        ]
    )
    import torch

    return torch.from_numpy(frames)


def load_audio(store: ClipStore, specs: list[MixSpec], clip_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Audio crops (B, N, C, L) and gains (B, N) of a list of mixtures."""
    audio = np.stack(
        [np.stack([store.audio(c, s, clip_samples) for c, s in zip(sp.clips, sp.starts)]) for sp in specs]
    )
    gains = np.array([sp.gains for sp in specs], dtype=np.float32)
    import torch

    return torch.from_numpy(audio), torch.from_numpy(gains)


def load_batch(
    store: ClipStore, specs: list[MixSpec], clip_samples: int, frame_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Audio (B, N, C, L), frames (B, N, K, 3, S, S) and gains (B, N) for a list of mixtures."""
    audio, gains = load_audio(store, specs, clip_samples)
    return audio, load_frames(store, specs, frame_size), gains
