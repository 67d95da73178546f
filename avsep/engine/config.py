"""The engine's training settings (a plain dataclass, so the typed params can hold it without importing the loop)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-4
    lr_milestones: tuple[int, ...] = ()  # steps at which the lr is multiplied by lr_gamma
    lr_gamma: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    checkpoint_every: int = 100
    log_every: int = 10
    seed: int = 0
    threads: int = 1
