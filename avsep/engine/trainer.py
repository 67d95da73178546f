"""The training engine: one loop for every model family, seeded, deterministic on CPU, resumable, distributed,
with a CSV log and a progress bar. A family supplies a :class:`TrainTask` (:mod:`avsep.engine.hfra`,
:mod:`avsep.engine.lavss`)."""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from avsep.core.io import atomic_path
from avsep.core.progress import progress
from avsep.core.seeding import seed_everything
from avsep.engine import checkpoint
from avsep.engine.config import TrainConfig
from avsep.engine.distributed import dist_context

LR_SCHEDULES = ("step", "warmup_linear")


def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Adam's parameter groups: with ``cfg.lr_visual`` the model's visual encoder (the modules its class names in
    ``VISUAL_MODULES``, e.g. LAVSS's crop encoder; the papers' code trains it at a lower lr) is a group at that lr."""
    prefixes = tuple(f"{m}." for m in getattr(model, "VISUAL_MODULES", ()))
    if cfg.lr_visual is None or not prefixes:
        return [{"params": list(model.parameters()), "lr": cfg.lr}]
    named = list(model.named_parameters())
    visual = [q for n, q in named if n.startswith(prefixes)]
    rest = [q for n, q in named if not n.startswith(prefixes)]
    return [g for g in ({"params": rest, "lr": cfg.lr}, {"params": visual, "lr": cfg.lr_visual}) if g["params"]]


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(param_groups(model, cfg), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """The lr multiplier of ``warmup_linear`` after ``step`` optimizer steps: ``(step + 1) / warmup_steps`` while
    warming up, then linear from 1 at ``warmup_steps`` to ``lr_gamma`` at ``decay_steps``, then ``lr_gamma``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if step >= cfg.decay_steps:
        return cfg.lr_gamma
    frac = (step - cfg.warmup_steps) / max(1, cfg.decay_steps - cfg.warmup_steps)
    return 1.0 - (1.0 - cfg.lr_gamma) * frac


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.lr_schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.lr_milestones), gamma=cfg.lr_gamma)
    if cfg.lr_schedule == "warmup_linear":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    raise ValueError(f"unknown lr_schedule {cfg.lr_schedule!r}; expected one of {LR_SCHEDULES}")


class TrainTask(Protocol):
    """What the engine needs from a model family (HFRA-family separators, LAVSS)."""

    #: The loss columns of ``train_log.csv``: ``loss`` first, then the parts :meth:`loss` returns, in order.
    loss_columns: tuple[str, ...]

    def build(self) -> torch.nn.Module:
        """A new model (called once, right after seeding, so its initial weights are seeded)."""
        ...

    def loss(self, model: torch.nn.Module, step: int, batch_size: int, rank_offset: int,
             device: torch.device) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of this process's share of the step's global batch and its parts (floats)."""
        ...

    def checkpoint_config(self) -> dict[str, Any]:
        """The model config saved with the weights (enough to rebuild the model)."""
        ...

    def checkpoint_meta(self) -> dict[str, Any]:
        """Family-specific metadata saved with the weights (e.g. which pre-trained parts were transferred)."""
        ...


def fit(task: TrainTask, cfg: TrainConfig, out_dir: str | Path, meta: dict[str, Any],
        stop_after: int | None = None) -> Path:
    """Train ``task``'s model and write ``out_dir/checkpoint.pt`` (final) and ``out_dir/train_log.csv``.

    The one training loop of every model: Adam with ``cfg``'s betas and weight decay (and ``lr_visual`` for the
    visual encoder, :func:`param_groups`), the lr multiplied by ``lr_gamma`` at ``lr_milestones`` or warmed up and
    decayed linearly (``lr_schedule``, :func:`lr_factor`), gradient clipping, a non-finite loss stops the run. A resume state
    ``out_dir/state.pt`` is written every ``checkpoint_every`` steps; if it exists the run continues from it
    and ends with the same weights as an uninterrupted run. ``stop_after`` stops early after that many steps
    (for tests of resuming).

    Under ``torchrun`` (:mod:`avsep.engine.distributed`) each of the W processes trains on its 1/W share of
    every global batch of ``cfg.batch_size`` mixtures (the same mixtures a single process would use),
    gradients are averaged by DistributedDataParallel, and only rank 0 writes states, logs and the checkpoint.
    """
    ctx = dist_context()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed, cfg.threads)
    if cfg.batch_size % ctx.world_size:
        raise ValueError(f"train.batch_size={cfg.batch_size} is not divisible by the {ctx.world_size} processes")
    local_bs = cfg.batch_size // ctx.world_size
    model = task.build().to(ctx.device)
    opt = _optimizer(model, cfg)
    sched = _scheduler(opt, cfg)
    state_path = out / "state.pt"
    log_path = out / "train_log.csv"
    start = 0
    log_rows: list[dict[str, Any]] = []
    if state_path.exists():
        start, log_rows = load_resume_state(state_path, model, opt, sched, map_location=ctx.device)
    net: torch.nn.Module = model
    if ctx.world_size > 1:
        # Each rank normalises over its own share; SyncBatchNorm keeps batch statistics global on GPUs.
        if ctx.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = DDP(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    net.train()
    main = ctx.rank == 0
    name = meta.get("model", "")
    bar = progress(total=cfg.steps, initial=start, desc=f"train {name}", unit="step", disable=not main)
    t0 = time.time()
    sums: dict[str, float] = {}
    for step in range(start, cfg.steps):
        loss, parts = task.loss(net, step, local_bs, ctx.rank * local_bs, ctx.device)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at step {step} ({name})")
        optimizer_step(loss, model, opt, sched, cfg.grad_clip)
        values = ctx.mean([loss.item(), *parts.values()])  # the global-batch loss on every rank
        for k, v in zip(("loss", *parts), values):
            sums[k] = sums.get(k, 0.0) + v
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            n = (done - 1) % cfg.log_every + 1
            log_rows.append({"step": done, **{k: v / n for k, v in sums.items()}, "lr": opt.param_groups[0]["lr"],
                             "seconds": round(time.time() - t0, 2)})
            bar.set_postfix(loss=f"{sums['loss'] / n:.4f}")
            sums = {}
        bar.update(1)
        if done % cfg.checkpoint_every == 0 and done < cfg.steps:
            if main:
                checkpoint.save(state_path, resume_state(model, opt, sched, done, log_rows))
            ctx.barrier()
        if stop_after is not None and done >= stop_after:
            bar.close()
            return state_path
    bar.close()
    final = out / "checkpoint.pt"
    if main:
        write_log(log_rows, log_path, task.loss_columns)
        checkpoint.save(
            final,
            {
                "model": {k: v.cpu() for k, v in model.state_dict().items()},
                "config": plain(task.checkpoint_config()),
                "meta": plain({**meta, "train": asdict(cfg), **task.checkpoint_meta(), "world_size": ctx.world_size,
                                "final_loss": log_rows[-1]["loss"] if log_rows else math.nan}),
            },
        )
        state_path.unlink(missing_ok=True)
    ctx.barrier()
    return final


def optimizer_step(loss: torch.Tensor, model: torch.nn.Module, opt: torch.optim.Optimizer,
                   sched: torch.optim.lr_scheduler.LRScheduler, grad_clip: float) -> None:
    """Backpropagate ``loss``, clip the gradient norm of ``model`` (when ``grad_clip`` > 0), step and schedule."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    sched.step()


def resume_state(model: torch.nn.Module, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler,
                 step: int, log: list[dict[str, Any]]) -> dict[str, Any]:
    """What a resumed run needs to continue bit for bit: weights, optimizer, scheduler, RNG, step and log so far."""
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "torch_rng": torch.get_rng_state(), "step": step, "log": log}


def load_resume_state(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
                      sched: torch.optim.lr_scheduler.LRScheduler, map_location: Any = "cpu") -> tuple[int, list[dict[str, Any]]]:
    """Restore what :func:`resume_state` saved into ``model``, ``opt`` and ``sched``; returns the step and log.

    A state written by another architecture or code version (missing or unexpected weights, other shapes)
    stops with the file named: resuming from it would train a different model.
    """
    st = checkpoint.load(path, map_location=map_location)
    try:
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()
        raise RuntimeError(f"{path}: this resume state does not fit the model being trained (written by another "
                           f"architecture or code version; delete it to train from the start): "
                           f"{' '.join(first[:2])}") from e
    sched.load_state_dict(st["scheduler"])
    torch.set_rng_state(st["torch_rng"].cpu())
    return int(st["step"]), [dict(r) for r in st["log"]]


def write_log(rows: list[dict[str, Any]], path: Path, loss_cols: Sequence[str]) -> None:
    """``train_log.csv``: step, the loss columns (6 decimals), lr and seconds, written atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["step", *loss_cols, "lr", "seconds"], lineterminator="\n")
        w.writeheader()
        for r in rows:
            losses = {k: f"{r[k]:.6f}" for k in loss_cols if k in r}
            w.writerow({**r, **losses, "lr": f"{r['lr']:.3g}"})


def plain(obj: Any) -> Any:
    """Tuples to lists, so metadata loads with ``weights_only=True``."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj
