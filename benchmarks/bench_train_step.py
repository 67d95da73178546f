"""Benchmark: each model family's training step against the same architecture written plainly.

Run from the repository root (the project installed, e.g. ``. .venv/bin/activate``)::

    python benchmarks/bench_train_step.py                      # CPU: demo sizes (params.yaml), 1 torch thread
    python benchmarks/bench_train_step.py --device cuda        # GPU: the papers' sizes (params/paper.yaml)
    python benchmarks/bench_train_step.py --families sop,lavss --steps 5

For each family (``sop``: Sound-of-Pixels on frames; ``clipsep_late``: CLIPSep late fusion on cached CLIP
embeddings; ``hfra_align``: HFRA hierarchical fusion + CLAP alignment on cached CLIP/CLAP embeddings; ``lavss``:
LAVSS with position and IPD) it times the project's training step (:func:`avsep.engine.trainer.train_step` on the
batches of :class:`avsep.engine.loader.StepBatches`, the engine's own loop body, the model in channels-last memory
where the family's ``train.channels_last`` trains it so, or as ``--channels-last on|off`` says) against the same architecture
written plainly: contiguous, fp32, each batch loaded synchronously when its step starts, the late fusion as
``repeat_interleave`` + ``einsum``, NCHW max-pooling, the per-parameter Adam, torch's deterministic-mode NaN fill
of new tensors and, for the CLIP variants, CLIP ViT-B-32 (random weights, built offline through open_clip as
:mod:`avsep.encoders.clip` does) run on the centre frame of every source at every step, as the CLIPSep reference
code does, instead of the cached embeddings. Both read the same synthetic clips (audio and JPEG frames written to a
temporary folder and read through the project's :class:`avsep.data.store.ClipStore`). Steps alternate in blocks
between the two, and the medians are compared.

Also reported: on the CPU the model FLOPs of a step (forward + backward, ``torch.utils.flop_counter``) per second
of step time against the machine's measured fp32 matmul peak (one thread and all threads); the loader's batches/s
against the step's consumption (target >= 5x, judged on a GPU); on a GPU the utilisation of the step at the papers' sizes with
autocast (bf16), channels-last and DataLoader workers (busy kernel time / wall time from ``torch.profiler``;
target >= 60 %). ``run(argv)`` returns the records (name, value, target, passed, unit) for
``benchmarks/run_all.py``; this is a script, not a test (timings depend on the machine).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("sop", "clipsep_late", "hfra_align", "lavss")
LAVSS_VARIANT = "sop_pos_ipd"  # the demo's LAVSS architecture (SoP backbone, Fig. 3 fusion, position, IPD)
TARGET_CLIP_RATIO = 2.0  # cached CLIP makes the HFRA step >= 2x faster than on-the-fly CLIP
TARGET_LOADER_RATIO = 5.0  # the loader makes batches >= 5x as fast as the step consumes them
TARGET_GPU_UTIL = 60.0  # % of wall time the GPU is busy during the step (papers' sizes, autocast, loader workers)


# ----------------------------------------------------------------------------------------------------------
# synthetic clips read through the project's stores
# ----------------------------------------------------------------------------------------------------------


def write_clips(root: Path, n_clips: int, seconds: float, rate: int, channels: int, fps: float, frame_px: int) -> Path:
    """``n_clips`` clips (a harmonic tone per clip, a coloured picture per frame) as the extract stage lays them
    out: ``audio/<id>.wav``, ``frames/<id>/000001.jpg ...`` and ``manifest.parquet``; returns the manifest."""
    import pandas as pd
    import soundfile as sf
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    n = int(seconds * rate)
    t = np.arange(n) / rate
    for i in range(n_clips):
        cid = f"clip{i:02d}"
        f0 = 110.0 * 2 ** (i / 4)
        x = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 5)) * (0.6 + 0.4 * np.sin(2 * np.pi * (1 + i) * t / 3))
        x = 0.2 * x + 0.01 * rng.standard_normal(n)
        wave = np.stack([x, np.roll(x, 3 + i)], axis=1) if channels == 2 else x[:, None]
        (root / "audio").mkdir(parents=True, exist_ok=True)
        sf.write(root / "audio" / f"{cid}.wav", wave.astype(np.float32), rate, subtype="PCM_16")
        folder = root / "frames" / cid
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, size=3)
        for j in range(int(seconds * fps)):
            img = np.empty((frame_px, frame_px, 3), dtype=np.uint8)
            img[:] = base
            y0 = (j * 7) % (frame_px // 2)
            img[y0:y0 + frame_px // 3, frame_px // 4: frame_px // 2] = 255 - base
            Image.fromarray(img).save(folder / f"{j + 1:06d}.jpg", quality=90)
        rows.append({"id": cid, "status": "ok", "audio": f"audio/{cid}.wav", "frames": f"frames/{cid}",
                     "label": f"instrument{i}", "split": "train", "n_samples": n, "sample_rate": rate})
    path = root / "manifest.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path


@dataclasses.dataclass
class StepSampler:
    """Two-source training mixtures as a pure function of (seed, step, index), like the project's samplers."""

    clips: list[str]
    clip_samples: int
    total_samples: int
    rate: int
    fps: float
    n_frames: int
    seed: int = 0

    def _rng(self, *parts: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *parts])

    def batch(self, step: int, batch_size: int, rank_offset: int = 0) -> list[Any]:
        from avsep.data.mixtures import MixSpec

        out = []
        for i in range(rank_offset, rank_offset + batch_size):
            g = self._rng(step, i)
            pick = g.choice(len(self.clips), 2, replace=False)
            starts = [int(s) for s in g.integers(0, self.total_samples - self.clip_samples, size=2)]
            frames = []
            for s in starts:
                times = (s + (np.arange(self.n_frames) + 0.5) * self.clip_samples / self.n_frames) / self.rate
                frames.append(tuple(int(f) for f in np.floor(times * self.fps)))
            out.append(MixSpec(clips=tuple(self.clips[j] for j in pick), labels=("a", "b"), starts=tuple(starts),
                               frames=tuple(frames), gains=tuple(float(x) for x in g.uniform(0.5, 1.5, size=2))))
        return out

    def keys(self, step: int, batch_size: int, rank_offset: int = 0) -> list[str]:
        return [f"{step}:{i}" for i in range(rank_offset, rank_offset + batch_size)]

    def mirror_flags(self, step: int, batch_size: int, p: float, rank_offset: int = 0) -> torch.Tensor:
        return torch.tensor([bool(self._rng(step, i, 7).random() < p) for i in range(rank_offset, rank_offset + batch_size)])


class KeyedTargets:
    """Cached (CLAP) embeddings looked up by mixture key, as :class:`avsep.data.inputs.ClapTargets` does."""

    def __init__(self, dim: int = 512, rows: int = 256) -> None:
        a = np.random.default_rng(1).standard_normal((rows, dim)).astype(np.float32)
        self.array = a / np.linalg.norm(a, axis=1, keepdims=True)

    def __call__(self, keys: list[str]) -> torch.Tensor:
        return torch.from_numpy(self.array[[zlib.crc32(k.encode()) % len(self.array) for k in keys]])


def write_clip_cache(root: Path, clips: list[str], frames_per_clip: int, dim: int = 512) -> tuple[Path, Path]:
    """A CLIP embedding cache of every frame (``.npy`` + index parquet, the embed stage's format)."""
    import pandas as pd

    a = np.random.default_rng(2).standard_normal((len(clips) * frames_per_clip, dim)).astype(np.float32)
    np.save(root / "clip.npy", a / np.linalg.norm(a, axis=1, keepdims=True))
    idx = pd.DataFrame([{"clip": c, "frame": f, "row": i * frames_per_clip + f} for i, c in enumerate(clips)
                        for f in range(frames_per_clip)])
    idx.to_parquet(root / "clip.parquet")
    return root / "clip.npy", root / "clip.parquet"


class CentreFrames:
    """The centre frame of every source, (B, N, 3, S, S) in [0, 1]: what CLIP sees when it runs on the fly."""

    def __init__(self, store: Any, size: int = 224) -> None:
        self.store, self.size = store, size

    def __call__(self, specs: list[Any]) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.stack([self.store.frame(c, fr[len(fr) // 2], self.size)
                                                    for c, fr in zip(sp.clips, sp.frames)]) for sp in specs]))


# ----------------------------------------------------------------------------------------------------------
# the plain versions
# ----------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def plain_ops() -> Iterator[None]:
    """The project's models with their ops written plainly: late fusion as ``repeat_interleave`` + ``einsum``, NCHW
    max-pooling, and torch's deterministic-mode NaN fill of every new tensor."""
    import avsep.models.hfra.separator as sep
    import avsep.models.hfra.visual as vis
    import avsep.models.lavss.network as net
    from avsep.models.late_fusion import late_fusion_ears_reference, late_fusion_reference

    saved = (sep.late_fusion, net.late_fusion_ears, vis.MaxPool2d.forward, torch.utils.deterministic.fill_uninitialized_memory)
    sep.late_fusion, net.late_fusion_ears = late_fusion_reference, late_fusion_ears_reference
    vis.MaxPool2d.forward = torch.nn.MaxPool2d.forward
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        yield
    finally:
        sep.late_fusion, net.late_fusion_ears, vis.MaxPool2d.forward, torch.utils.deterministic.fill_uninitialized_memory = saved


class OnTheFlyClip:
    """An HFRA-family task whose visual input is CLIP run on the centre frames at every step (no grad, as CLIPSep's
    code does), instead of the cached embeddings: batches carry frames, the loss embeds them first."""

    def __init__(self, task: Any, frames: CentreFrames, clip: torch.nn.Module) -> None:
        self.task, self.clip = task, clip
        self.data = dataclasses.replace(task.data, visual=frames)
        self.loss_columns = task.loss_columns
        mean = torch.tensor((0.48145466, 0.4578275, 0.40821073)).view(1, 3, 1, 1)
        std = torch.tensor((0.26862954, 0.26130258, 0.27577711)).view(1, 3, 1, 1)
        self.norm = (mean, std)

    def batch(self, step: int, batch_size: int, rank_offset: int, device: torch.device) -> Any:
        from avsep.engine.hfra import make_batch

        return make_batch(self.data, step, batch_size, self.task.align_lambda > 0, rank_offset, spectral=device.type == "cpu")

    def batch_loss(self, model: torch.nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        frames = batch.visual.to(device)
        b, n = frames.shape[:2]
        mean, std = (t.to(device) for t in self.norm)
        with torch.no_grad():
            emb = self.clip.encode_image((frames.flatten(0, 1) - mean) / std, normalize=True).float()
        return self.task.batch_loss(model, dataclasses.replace(batch, visual=emb.view(b, n, -1)), device)


# ----------------------------------------------------------------------------------------------------------
# the setups
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Setup:
    name: str
    task: Any  # the project's task
    plain: Any  # the same architecture, written plainly
    batch_size: int
    cfg: Any  # the TrainConfig (lr, grad clip, ...)


def _params(size: str) -> Any:
    import yaml

    from avsep.config.params import Params

    if size == "paper":
        from avsep.config.paper import paper_params

        return Params(paper_params())
    return Params(yaml.safe_load((ROOT / "params.yaml").read_text()))


def build_setups(families: list[str], size: str, workdir: Path, clip_model: Callable[[], torch.nn.Module]) -> list[Setup]:
    from avsep.data.binaural_batches import LAVSSData
    from avsep.data.boxes import BoxSource
    from avsep.data.inputs import EmbeddingInputs, FrameInputs
    from avsep.data.store import ClipStore
    from avsep.engine.hfra import HFRATask, TrainData
    from avsep.engine.lavss import LAVSSTask

    p = _params(size)
    fe, fps = p.frontend, p.fps
    seconds = 1.6 * fe.clip_samples / fe.sample_rate + 0.5
    n_frames_total = int(seconds * fps)
    frame_px = 256 if size == "paper" else 160
    setups: list[Setup] = []
    hfra = [f for f in families if f != "lavss"]
    if hfra:
        root = workdir / "mono"
        manifest = write_clips(root, 8, seconds, fe.sample_rate, 1, fps, frame_px)
        store = ClipStore(manifest, fe.sample_rate, 1)
        clips = sorted(store.rows)
        cache = write_clip_cache(root, clips, n_frames_total)
        clip = clip_model() if any(f != "sop" for f in hfra) else None
        for fam in hfra:
            v = p.model(fam)
            sampler = StepSampler(clips, fe.clip_samples, int(seconds * fe.sample_rate), fe.sample_rate, fps,
                                  v.separator.visual.n_frames)
            if fam == "sop":
                visual: Any = FrameInputs(store, v.separator.visual.frame_size)
            else:
                visual = EmbeddingInputs([cache])
            data = TrainData(store, sampler, visual, fe, KeyedTargets() if v.aligned else None)
            task = HFRATask(v.separator, data, v.align_lambda)
            plain = task if fam == "sop" else OnTheFlyClip(task, CentreFrames(store, 224), clip)
            setups.append(Setup(fam, task, plain, p.train.batch_size, p.train))
    if "lavss" in families:
        lp = p.lavss
        lfe = lp.frontend
        root = workdir / "stereo"
        manifest = write_clips(root, 8, seconds, lfe.sample_rate, 2, lp.fps, frame_px)
        store = ClipStore(manifest, lfe.sample_rate, 2)
        clips = sorted(store.rows)
        tracks = {c: (np.zeros(1), np.array([[0.1 + 0.08 * i, 0.2, 0.45 + 0.06 * i, 0.8]]), np.ones(1))
                  for i, c in enumerate(clips)}
        boxes = BoxSource("ground_truth", tracks, {c: float(np.mean(t[1][0, [0, 2]])) for c, t in tracks.items()},
                          lp.fps, "synthetic boxes")
        variant = LAVSS_VARIANT if size != "paper" else "sep_pos_ipd"
        v = lp.variant(variant)
        data = LAVSSData(store, boxes, lfe, v.arch.image_size)
        sampler = StepSampler(clips, lfe.clip_samples, int(seconds * lfe.sample_rate), lfe.sample_rate, lp.fps, 1)
        task = LAVSSTask(v.arch, lp.train, sampler, data)
        setups.append(Setup("lavss", task, task, lp.train.batch_size, lp.train))
    return setups


# ----------------------------------------------------------------------------------------------------------
# timing
# ----------------------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclasses.dataclass
class Runner:
    """A model, its optimizer and the loop settings of one variant; :meth:`block` runs consecutive steps."""

    task: Any
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    device: torch.device
    amp: torch.dtype | None
    batch_size: int
    grad_clip: float
    prefetch: int = 0
    workers: int = 0
    plain: bool = False
    next_step: int = 0

    def make(self, step: int) -> Any:
        return self.task.batch(step, self.batch_size, 0, self.device)

    def block(self, steps: int) -> list[float]:
        """Wall times of steps 2 .. ``steps`` of a block (the first waits for its loader to start): per step on the
        CPU (each from the previous step's end: loading included); on a GPU, which is synchronised only after the
        first and the last step (so that loading and launches overlap the GPU's work as in training), their mean."""
        from avsep.engine.loader import StepBatches
        from avsep.engine.trainer import train_step

        scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        times: list[float] = []
        ctx = plain_ops() if self.plain else contextlib.nullcontext()
        rng = range(self.next_step, self.next_step + steps)
        self.next_step += steps
        t = time.perf_counter()
        with ctx, StepBatches(self.make, rng, self.prefetch, self.workers, pin=self.device.type == "cuda") as it:
            for i, (_, batch) in enumerate(it):
                train_step(self.task, self.model, batch, self.device, self.amp, self.opt, self.sched, self.grad_clip,
                           scaler)
                if i == 0 or self.device.type == "cpu":
                    _sync(self.device)
                    now = time.perf_counter()
                    if i > 0:
                        times.append(now - t)
                    t = now
            _sync(self.device)
            if self.device.type != "cpu" and steps > 1:
                times = [(time.perf_counter() - t) / (steps - 1)] * (steps - 1)
        return times


def make_runner(setup: Setup, plain: bool, device: torch.device, amp: torch.dtype | None, prefetch: int, workers: int,
                channels_last: bool) -> Runner:
    from avsep.core.seeding import seed_everything
    from avsep.engine.trainer import _engine_settings, _optimizer, _scheduler

    seed_everything(0, torch.get_num_threads())  # deterministic mode, as in training
    _engine_settings(device)
    task = setup.plain if plain else setup.task
    inner = getattr(task, "task", task)
    model = inner.build().to(device)
    if channels_last and not plain:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    cfg = setup.cfg
    if plain:
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas,
                                                      weight_decay=cfg.weight_decay, foreach=False)
    else:
        opt = _optimizer(model, cfg)
    return Runner(task, model, opt, _scheduler(opt, dataclasses.replace(cfg, lr_milestones=())), device,
                  None if plain else amp, setup.batch_size, cfg.grad_clip, 0 if plain else prefetch,
                  0 if plain else workers, plain)


def step_flops(runner: Runner) -> int:
    """Model FLOPs of one step, forward + backward (convolutions, matrix products; torch's flop counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    batch = runner.make(10_000)
    with FlopCounterMode(display=False) as fc:
        loss, _ = runner.task.batch_loss(runner.model, batch, runner.device)
        loss.backward()
    runner.opt.zero_grad(set_to_none=True)
    return int(fc.get_total_flops())


def loader_rate(runner: Runner, n: int) -> float:
    """Batches per second that the runner's loader (its prefetch / workers settings) makes on its own."""
    from avsep.engine.loader import StepBatches

    with StepBatches(runner.make, range(20_000, 20_001 + n), max(1, runner.prefetch), runner.workers,
                     pin=runner.device.type == "cuda") as it:
        next(it)  # startup (worker processes) not counted
        t = time.perf_counter()
        for _ in it:
            pass
        return n / (time.perf_counter() - t)


def matmul_peak(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """fp32 GFLOP/s of a large ``torch.mm`` at ``threads`` threads (the best of ``repeats``)."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    finally:
        torch.set_num_threads(old)
    return 2 * n**3 / best / 1e9


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def gpu_utilisation(runner: Runner, steps: int) -> float:
    """% of the wall time of ``steps`` steps in which a CUDA kernel runs (merged kernel intervals / wall)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        _sync(runner.device)
        t = time.perf_counter()
        runner.block(steps)
        wall = time.perf_counter() - t
    spans = sorted((e.time_range.start, e.time_range.end) for e in prof.events() if e.device_type == DeviceType.CUDA)
    busy, end = 0.0, -1.0
    for s, e in spans:
        if e <= end:
            continue
        busy += e - max(s, end)
        end = e
    return 100.0 * busy / 1e6 / wall


# ----------------------------------------------------------------------------------------------------------
# the benchmark
# ----------------------------------------------------------------------------------------------------------


def _rec(name: str, value: float | None, unit: str, target: str = "", passed: bool | None = None) -> dict[str, Any]:
    return {"name": name, "value": None if value is None else round(float(value), 3), "target": target,
            "passed": passed, "unit": unit}


def run(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark; returns one record per figure (name, value, target, passed, unit)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--families", default=",".join(FAMILIES), help=f"comma-separated subset of {','.join(FAMILIES)}")
    ap.add_argument("--size", choices=("demo", "paper"), help="model sizes (default: demo on CPU, paper on GPU)")
    ap.add_argument("--steps", type=int, help="timed steps per block (default: 3 on CPU, 10 on GPU)")
    ap.add_argument("--rounds", type=int, default=2, help="blocks per variant, alternating project / plain")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads of the step (the demo trains at 1)")
    ap.add_argument("--workers", type=int, help="loader worker processes of the project's step (default: 0 CPU, 6 GPU)")
    ap.add_argument("--prefetch", type=int, help="batches made ahead (default: 0 CPU, 4 GPU)")
    ap.add_argument("--amp", choices=("fp32", "bf16", "fp16"), default="bf16", help="autocast of the project's GPU step")
    ap.add_argument("--channels-last", choices=("config", "on", "off"), default="config",
                    help="channels-last model memory in the project's step (config: as the family's train section sets "
                         "it, train.channels_last or lavss.train.channels_last; the plain step is always contiguous)")
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and cuda) else "cpu")
    if device.type == "cuda" and not cuda:
        raise SystemExit("--device cuda: no GPU is available")
    gpu = device.type == "cuda"
    size = args.size or ("paper" if gpu else "demo")
    steps = args.steps or (10 if gpu else 3)
    workers = args.workers if args.workers is not None else (min(6, os.cpu_count() or 1) if gpu else 0)
    prefetch = args.prefetch if args.prefetch is not None else (4 if gpu else 0)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise SystemExit(f"unknown families {unknown}; expected some of {FAMILIES}")
    from avsep.encoders.clip import load_clip
    from avsep.engine.config import TrainConfig
    from avsep.engine.trainer import autocast_dtype

    amp = autocast_dtype(TrainConfig(amp=args.amp), device)  # None on the CPU: the CPU trains in fp32
    old_threads = torch.get_num_threads()
    old_det = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
               torch.utils.deterministic.fill_uninitialized_memory)
    torch.set_num_threads(args.threads)
    recs: list[dict[str, Any]] = []
    where = f"{device.type}, {size} sizes, {args.threads} thread(s)" + (f", {args.amp}, {workers} workers" if gpu else "")
    try:
        with tempfile.TemporaryDirectory(prefix="avsep-bench-train-") as tmp:
            def clip_model() -> torch.nn.Module:
                return load_clip("random", "ViT-B-32", seed=0).model.to(device).eval()

            setups = build_setups(families, size, Path(tmp), clip_model)
            flop_rates: dict[str, float] = {}
            for s in setups:
                cl = s.cfg.channels_last if args.channels_last == "config" else args.channels_last == "on"
                proj = make_runner(s, False, device, amp, prefetch, workers, channels_last=cl)
                plain = make_runner(s, True, device, None, 0, 0, channels_last=False)
                proj.block(2)  # warm-up (allocations, kernels, caches)
                plain.block(2)
                tp: list[float] = []
                tq: list[float] = []
                for _ in range(args.rounds):
                    tp += proj.block(steps + 1)
                    tq += plain.block(steps + 1)
                mp, mq = statistics.median(tp), statistics.median(tq)
                ratio = mq / mp
                plain_what = "on-the-fly CLIP" if s.plain is not s.task else "plain ops"
                recs.append(_rec(f"{s.name}: project step ({where}{', channels-last' if cl else ''})", s.batch_size / mp, "samples/s"))
                recs.append(_rec(f"{s.name}: plain step ({plain_what}, fp32, synchronous)", s.batch_size / mq, "samples/s"))
                if s.plain is not s.task:
                    passed = ratio >= TARGET_CLIP_RATIO
                    recs.append(_rec(f"{s.name}: cached CLIP vs on-the-fly CLIP, step speed-up", ratio, "x",
                                     f">= {TARGET_CLIP_RATIO:g}x (cached CLIP makes the HFRA step >= 2x faster)", passed))
                else:
                    recs.append(_rec(f"{s.name}: project vs plain step speed-up", ratio, "x"))
                rate = loader_rate(proj, n=max(4, steps))
                # the target is the GPU's (its step is fast; on the CPU the loader's work is a small part of it)
                recs.append(_rec(f"{s.name}: loader batches/s vs step consumption", rate * mp, "x",
                                 f">= {TARGET_LOADER_RATIO:g}x" + ("" if gpu else " on a GPU"),
                                 rate * mp >= TARGET_LOADER_RATIO if gpu else None))
                if gpu:
                    util = gpu_utilisation(proj, steps)
                    recs.append(_rec(f"{s.name}: GPU utilisation (kernel busy / wall)", util, "%",
                                     f">= {TARGET_GPU_UTIL:g} %", util >= TARGET_GPU_UTIL))
                else:
                    flops = step_flops(proj)
                    recs.append(_rec(f"{s.name}: model FLOPs per step (forward + backward)", flops / 1e9, "GFLOP"))
                    recs.append(_rec(f"{s.name}: achieved FLOP/s of the step", flops / mp / 1e9, "GFLOP/s"))
                    flop_rates[s.name] = flops / mp / 1e9
            if not gpu:
                peak1 = matmul_peak(1)
                peak_all = matmul_peak(os.cpu_count() or 1)
                recs.append(_rec("CPU fp32 matmul peak, 1 thread (torch.mm 2048^2)", peak1, "GFLOP/s"))
                recs.append(_rec(f"CPU fp32 matmul peak, {os.cpu_count()} threads", peak_all, "GFLOP/s"))
                for name, r in flop_rates.items():
                    recs.append(_rec(f"{name}: step FLOP/s as % of the 1-thread peak", 100 * r / peak1, "%",
                                     f"(of the all-thread peak: {100 * r / peak_all:.1f} %)"))
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det[0], warn_only=old_det[1])
        torch.utils.deterministic.fill_uninitialized_memory = old_det[2]
    return recs


def main(argv: list[str] | None = None) -> int:
    t = time.perf_counter()
    recs = run(argv)
    width = max(len(r["name"]) for r in recs)
    print(f"{'figure':<{width}}  {'value':>10}  unit       verdict  target")
    for r in recs:
        verdict = {True: "PASS", False: "FAIL", None: "-"}[r["passed"]]
        print(f"{r['name']:<{width}}  {r['value']!s:>10}  {r['unit']:<9}  {verdict:<7}  {r['target']}")
    print(f"({time.perf_counter() - t:.0f} s)")
    return 1 if any(r["passed"] is False for r in recs) else 0


if __name__ == "__main__":
    sys.exit(main())
