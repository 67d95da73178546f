"""The front-end's sizes as a plain dataclass (no torch: the workflow reads it while it plans the DAG)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrontendConfig:
    """STFT and warp sizes (the papers' values are the defaults)."""

    sample_rate: int = 11025
    clip_samples: int = 65535
    n_fft: int = 1022
    hop: int = 256
    warp_bins: int = 256

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def n_frames(self) -> int:
        return self.clip_samples // self.hop + 1
