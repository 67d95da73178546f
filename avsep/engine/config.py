"""The engine's training settings (a plain dataclass, so the typed params can hold it without importing the loop)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-4
    lr_milestones: tuple[int, ...] = ()  # steps at which the lr is multiplied by lr_gamma (lr_schedule "step")
    lr_gamma: float = 0.1
    lr_schedule: str = "step"  # step (milestones) | warmup_linear (CLIPSep's and HFRA's code)
    warmup_steps: int = 0  # warmup_linear: the lr rises linearly to lr over these steps,
    decay_steps: int = 0  # then falls linearly to lr_gamma x lr at this step and stays there
    lr_visual: float | None = None  # lr of the model's visual encoder (VISUAL_MODULES); None: lr
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    checkpoint_every: int = 100
    log_every: int = 10
    seed: int = 0
    threads: int = 1
    # Throughput (the defaults are the plain synchronous fp32 loop; only channels_last changes CPU weights, by rounding):
    prefetch: int = 0  # batches made ahead of the step in the background (0: each when its step starts)
    loader_workers: int = 0  # with prefetch: 0 = one thread of the training process; > 0 = DataLoader worker processes
    amp: str = "fp32"  # fp32 | bf16 | fp16: autocast of the forward pass on a GPU (fp16 with a loss scaler); inert on CPU
    channels_last: bool = False  # channels-last memory format for the model (GPU and CPU; on the CPU it rounds differently)
