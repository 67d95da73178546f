"""The training engine: one loop for every model family, seeded, deterministic on CPU, resumable, distributed,
with a CSV log and a progress bar. A family supplies a :class:`TrainTask` (:mod:`avsep.engine.hfra`,
:mod:`avsep.engine.lavss`)."""

from __future__ import annotations

import contextlib
import csv
import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from avsep.core.io import atomic_path
from avsep.core.progress import progress
from avsep.core.seeding import deterministic_algorithms, seed_everything
from avsep.engine import checkpoint
from avsep.engine.config import TrainConfig
from avsep.engine.distributed import DistContext, dist_context
from avsep.engine.loader import StepBatches

LR_SCHEDULES = ("step", "warmup_linear")
AMP_MODES = ("fp32", "bf16", "fp16")


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
    # foreach: the multi-tensor Adam, a few ops for all parameters instead of a dozen per parameter (the same
    # arithmetic: the weights are bit-identical to the per-parameter loop's)
    return torch.optim.Adam(param_groups(model, cfg), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay,
                            foreach=True)


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

    #: The loss columns of ``train_log.csv``: ``loss`` first, then the parts :meth:`batch_loss` returns, in order.
    loss_columns: tuple[str, ...]

    def build(self) -> torch.nn.Module:
        """A new model (called once, right after seeding, so its initial weights are seeded)."""
        ...

    def batch(self, step: int, batch_size: int, rank_offset: int, device: torch.device) -> Any:
        """This process's share of the step's global batch: everything the loss needs that does not depend on the
        weights (read, mixed, spectral inputs and targets), on the CPU. A pure function of the step (no random
        generator's state), so it can be made ahead, in another thread or process (:mod:`avsep.engine.loader`);
        work that is better done on ``device`` (a GPU's STFT) may be left to :meth:`batch_loss`."""
        ...

    def batch_loss(self, model: torch.nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss of a :meth:`batch` and its parts (detached scalar tensors)."""
        ...

    def checkpoint_config(self) -> dict[str, Any]:
        """The model config saved with the weights (enough to rebuild the model)."""
        ...

    def checkpoint_meta(self) -> dict[str, Any]:
        """Family-specific metadata saved with the weights (e.g. which pre-trained parts were transferred)."""
        ...


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.amp`` on ``device``: None for ``fp32`` and always on the CPU (the CPU
    trains in fp32, bit for bit reproducibly; ``amp`` is a GPU setting, inert there)."""
    if cfg.amp not in AMP_MODES:
        raise ValueError(f"unknown train.amp {cfg.amp!r}; expected one of {AMP_MODES}")
    if cfg.amp == "fp32" or device.type != "cuda":
        return None
    return torch.bfloat16 if cfg.amp == "bf16" else torch.float16


def _autocast(dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _check_cpu_fp32(device: torch.device) -> None:
    """Training on the CPU is fp32: refuse to run a step under a CPU autocast (e.g. a caller's ``torch.autocast``)."""
    if device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        raise RuntimeError("CPU autocast is enabled around training: the CPU trains in fp32 (train.amp applies to GPUs)")


def _engine_settings(device: torch.device) -> None:
    """Process-wide torch settings of a training run, after :func:`seed_everything`: on a GPU, deterministic mode
    stays on where an op has a deterministic kernel and warns where it has not (the bilinear upsampling and grid
    sampling backward of the U-Net and the unwarp); on the CPU every op is deterministic (strict)."""
    if device.type == "cuda":
        deterministic_algorithms(torch, warn_only=True)


class _NonFinite:
    """The first step whose loss was not finite, checked at every step on the CPU and at log and checkpoint steps on
    a GPU (a check is a host-device synchronisation)."""

    def __init__(self, name: str, sync_each_step: bool) -> None:
        self.name = name
        self.each = sync_each_step
        self.pending: list[tuple[int, torch.Tensor]] = []

    def add(self, step: int, loss: torch.Tensor) -> None:
        if self.each:
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss became {loss.item()} at step {step} ({self.name})")
        else:
            self.pending.append((step, loss.detach()))

    def check(self) -> None:
        if not self.pending:
            return
        losses = torch.stack([t.float() for _, t in self.pending]).cpu()
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            i = int(bad[0, 0])
            raise FloatingPointError(f"training loss became {losses[i].item()} at step {self.pending[i][0]} ({self.name})")
        self.pending = []


def _step_values(loss: torch.Tensor, parts: dict[str, Any], ctx: DistContext) -> torch.Tensor:
    """``[loss, *parts]`` of a step as float64 on the device, averaged over the ranks (the global-batch values).
    The same float64 arithmetic as summing ``.item()`` values in Python, without a synchronisation per step."""
    vals = torch.stack([loss.detach().to(torch.float64),
                        *(torch.as_tensor(v).detach().to(device=loss.device, dtype=torch.float64) for v in parts.values())])
    return ctx.mean_tensor(vals)


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

    Throughput settings: ``cfg.prefetch`` batches are made ahead of the step by a background thread (or
    ``cfg.loader_workers`` DataLoader processes, :mod:`avsep.engine.loader`; a batch is a pure function of its
    step, so weights and resumes are the same as the synchronous loop's); ``cfg.channels_last`` keeps the model
    in channels-last memory (on the CPU too, where oneDNN's channels-last convolutions make the demo's HFRA step
    20-40 % faster (benchmarks/README.md) but round differently, so the weights differ from a contiguous run's in the last bits, and from
    there on as training amplifies them; a channels-last run is as deterministic as a contiguous one); on a GPU,
    ``cfg.amp`` (bf16 or fp16 autocast, fp16 with a loss scaler whose state is part of the resume state), and the
    loss is checked for non-finite values and logged at the log and checkpoint steps instead of every step (each
    check waits for the GPU).
    """
    ctx = dist_context()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed, cfg.threads)
    _engine_settings(ctx.device)
    if cfg.batch_size % ctx.world_size:
        raise ValueError(f"train.batch_size={cfg.batch_size} is not divisible by the {ctx.world_size} processes")
    local_bs = cfg.batch_size // ctx.world_size
    amp = autocast_dtype(cfg, ctx.device)
    model = task.build().to(ctx.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = _optimizer(model, cfg)
    sched = _scheduler(opt, cfg)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    state_path = out / "state.pt"
    log_path = out / "train_log.csv"
    start = 0
    log_rows: list[dict[str, Any]] = []
    if state_path.exists():
        start, log_rows = load_resume_state(state_path, model, opt, sched, map_location=ctx.device, scaler=scaler)
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
    nonfinite = _NonFinite(name, sync_each_step=ctx.device.type == "cpu")
    sums: torch.Tensor | None = None
    columns: list[str] = []
    batches = StepBatches(functools.partial(_task_batch, task, local_bs, ctx.rank * local_bs, ctx.device),
                          range(start, cfg.steps), cfg.prefetch, cfg.loader_workers, pin=ctx.device.type == "cuda")
    with batches:
        for step, batch in batches:
            loss, parts = train_step(task, net, batch, ctx.device, amp, opt, sched, cfg.grad_clip, scaler,
                                     check=lambda loss, step=step: nonfinite.add(step, loss))
            values = _step_values(loss, parts, ctx)  # the global-batch loss on every rank
            columns = ["loss", *parts]
            sums = values if sums is None else sums + values
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                nonfinite.check()
                n = (done - 1) % cfg.log_every + 1
                totals = dict(zip(columns, sums.tolist()))
                log_rows.append({"step": done, **{k: v / n for k, v in totals.items()}, "lr": opt.param_groups[0]["lr"],
                                 "seconds": round(time.time() - t0, 2)})
                bar.set_postfix(loss=f"{totals['loss'] / n:.4f}")
                sums = None
            bar.update(1)
            if done % cfg.checkpoint_every == 0 and done < cfg.steps:
                nonfinite.check()
                if main:
                    checkpoint.save(state_path, resume_state(model, opt, sched, done, log_rows, scaler))
                ctx.barrier()
            if stop_after is not None and done >= stop_after:
                bar.close()
                return state_path
    nonfinite.check()
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


def _task_batch(task: TrainTask, batch_size: int, rank_offset: int, device: torch.device, step: int) -> Any:
    return task.batch(step, batch_size, rank_offset, device)


def train_step(task: TrainTask, net: torch.nn.Module, batch: Any, device: torch.device, amp: torch.dtype | None,
               opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler, grad_clip: float,
               scaler: torch.amp.GradScaler | None = None,
               check: Callable[[torch.Tensor], None] | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """One step of the loop on a made batch: the loss (under autocast when ``amp``, never on the CPU), ``check(loss)``
    (the non-finite check), backward, clipping, optimizer and scheduler step. ``net`` is the model as trained (maybe
    wrapped in DDP); the optimizer's parameters are its own."""
    _check_cpu_fp32(device)
    with _autocast(amp, device):
        loss, parts = task.batch_loss(net, batch, device)
    if check is not None:
        check(loss)
    model = net.module if isinstance(net, DDP) else net
    optimizer_step(loss, model, opt, sched, grad_clip, scaler)
    return loss, parts


def optimizer_step(loss: torch.Tensor, model: torch.nn.Module, opt: torch.optim.Optimizer,
                   sched: torch.optim.lr_scheduler.LRScheduler, grad_clip: float,
                   scaler: torch.amp.GradScaler | None = None) -> None:
    """Backpropagate ``loss``, clip the gradient norm of ``model`` (when ``grad_clip`` > 0), step and schedule.

    With ``scaler`` (fp16 autocast) the loss is scaled for the backward pass and the gradients unscaled before
    clipping; a step whose gradients overflowed is skipped by the scaler."""
    opt.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
    else:
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(opt)
        scaler.update()
    sched.step()


def resume_state(model: torch.nn.Module, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler,
                 step: int, log: list[dict[str, Any]], scaler: torch.amp.GradScaler | None = None) -> dict[str, Any]:
    """What a resumed run needs to continue bit for bit: weights, optimizer, scheduler, RNG, step and log so far
    (and the fp16 loss scaler's state)."""
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
             "torch_rng": torch.get_rng_state(), "step": step, "log": log}
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    return state


def load_resume_state(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
                      sched: torch.optim.lr_scheduler.LRScheduler, map_location: Any = "cpu",
                      scaler: torch.amp.GradScaler | None = None) -> tuple[int, list[dict[str, Any]]]:
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
    if scaler is not None and "scaler" in st:
        scaler.load_state_dict(st["scaler"])
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
