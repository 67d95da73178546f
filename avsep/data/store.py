"""Reading extracted clips: audio crops from wav files and frames from JPEG directories."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from PIL import Image

from avsep.data.mixtures import MixSpec


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
        """(channels, length) float32 crop; raises naming the file if it is short or at another rate."""
        path = self.root / str(self._row(clip)["audio"])
        with sf.SoundFile(path) as f:
            if f.samplerate != self.sample_rate:
                raise ValueError(f"{path}: sample rate {f.samplerate} Hz, expected {self.sample_rate} Hz")
            f.seek(start)
            data = f.read(length, dtype="float32", always_2d=True)
        if data.shape[0] < length:
            raise ValueError(f"{path}: crop [{start}, {start + length}) runs past the end ({start + data.shape[0]})")
        x = data.T
        if x.shape[0] != self.channels:
            raise ValueError(f"{path}: {x.shape[0]} channel(s), expected {self.channels}")
        return np.ascontiguousarray(x)

    def frame(self, clip: str, index: int, size: int) -> np.ndarray:
        """Frame ``index`` (0-based) of ``clip`` resized to size x size, float32 (3, size, size) in [0, 1]."""
        folder = self.root / str(self._row(clip)["frames"])
        return _load_frame(str(folder / f"{index + 1:06d}.jpg"), size)


@functools.lru_cache(maxsize=4096)
def _load_frame(path: str, size: int) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB").resize((size, size), Image.BILINEAR)
        arr = np.asarray(im, dtype=np.float32) / 255.0
    arr = arr.transpose(2, 0, 1).copy()
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
    return torch.from_numpy(frames)


def load_audio(store: ClipStore, specs: list[MixSpec], clip_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Audio crops (B, N, C, L) and gains (B, N) of a list of mixtures."""
    audio = np.stack(
        [np.stack([store.audio(c, s, clip_samples) for c, s in zip(sp.clips, sp.starts)]) for sp in specs]
    )
    gains = np.array([sp.gains for sp in specs], dtype=np.float32)
    return torch.from_numpy(audio), torch.from_numpy(gains)


def load_batch(
    store: ClipStore, specs: list[MixSpec], clip_samples: int, frame_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Audio (B, N, C, L), frames (B, N, K, 3, S, S) and gains (B, N) for a list of mixtures."""
    audio, gains = load_audio(store, specs, clip_samples)
    return audio, load_frames(store, specs, frame_size), gains
