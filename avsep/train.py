"""The training engine: seeded, deterministic on CPU, resumable, with a CSV log and a progress bar."""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import checkpoint
from .data.mixtures import TrainSampler
from .data.store import ClipStore, load_batch
from .frontend import FrontendConfig
from .io import atomic_path
from .mixing import mix_sources, spectral_batch, weighted_bce
from .models.separator import AVSeparator, SeparatorConfig
from .progress import progress
from .seeding import seed_everything


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


@dataclass
class TrainData:
    store: ClipStore
    sampler: TrainSampler
    frame_size: int
    frontend: FrontendConfig = field(default_factory=FrontendConfig)


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.MultiStepLR:
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.lr_milestones), gamma=cfg.lr_gamma)


def train_step(model: AVSeparator, data: TrainData, step: int, batch_size: int) -> torch.Tensor:
    """Loss of one training batch (mixtures drawn as a pure function of ``step``)."""
    specs = data.sampler.batch(step, batch_size)
    audio, frames, gains = load_batch(data.store, specs, data.frontend.clip_samples, data.frame_size)
    sources, mixture = mix_sources(audio[:, :, 0], gains)
    batch = spectral_batch(sources, mixture, data.frontend)
    out = model(batch.log_mag, frames)
    return weighted_bce(out["logits"], batch)


def train(
    model_cfg: SeparatorConfig,
    cfg: TrainConfig,
    data: TrainData,
    out_dir: str | Path,
    meta: dict[str, Any],
    stop_after: int | None = None,
) -> Path:
    """Train and write ``out_dir/checkpoint.pt`` (final) and ``out_dir/train_log.csv``.

    A resume state ``out_dir/state.pt`` is written every ``checkpoint_every`` steps; if it exists the
    run continues from it and ends with the same weights as an uninterrupted run. ``stop_after`` stops
    early after that many steps (for tests of resuming).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed, cfg.threads)
    model = AVSeparator(model_cfg)
    opt = _optimizer(model, cfg)
    sched = _scheduler(opt, cfg)
    state_path = out / "state.pt"
    log_path = out / "train_log.csv"
    start = 0
    log_rows: list[dict[str, Any]] = []
    if state_path.exists():
        st = checkpoint.load(state_path)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        torch.set_rng_state(st["torch_rng"])
        start = int(st["step"])
        log_rows = [dict(r) for r in st["log"]]
    model.train()
    bar = progress(total=cfg.steps, initial=start, desc=f"train {meta.get('model', '')}", unit="step")
    t0 = time.time()
    running = 0.0
    for step in range(start, cfg.steps):
        loss = train_step(model, data, step, cfg.batch_size)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        running += loss.item()
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            n = (done - 1) % cfg.log_every + 1
            log_rows.append(
                {"step": done, "loss": running / n, "lr": opt.param_groups[0]["lr"], "seconds": round(time.time() - t0, 2)}
            )
            bar.set_postfix(loss=f"{running / n:.4f}")
            running = 0.0
        bar.update(1)
        if done % cfg.checkpoint_every == 0 and done < cfg.steps:
            checkpoint.save(
                state_path,
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "step": done,
                    "log": log_rows,
                },
            )
        if stop_after is not None and done >= stop_after:
            bar.close()
            return state_path
    bar.close()
    _write_log(log_rows, log_path)
    final = out / "checkpoint.pt"
    checkpoint.save(
        final,
        {
            "model": model.state_dict(),
            "config": _plain(model_cfg.to_dict()),
            "meta": _plain({**meta, "train": asdict(cfg), "final_loss": log_rows[-1]["loss"] if log_rows else math.nan}),
        },
    )
    state_path.unlink(missing_ok=True)
    return final


def _write_log(rows: list[dict[str, Any]], path: Path) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["step", "loss", "lr", "seconds"], lineterminator="\n")
            w.writeheader()
            for r in rows:
                w.writerow({**r, "loss": f"{r['loss']:.6f}", "lr": f"{r['lr']:.3g}"})


def _plain(obj: Any) -> Any:
    """Tuples to lists, so metadata loads with ``weights_only=True``."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
