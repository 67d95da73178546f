"""The training engine's throughput options: what they change on the CPU, and what not.

Batches made ahead (a background thread or DataLoader worker processes) give the weights of the synchronous loop,
also across a resume; ``train.amp`` is inert on the CPU (no autocast ever runs there); ``train.channels_last`` trains
the model in channels-last memory, deterministically, to the contiguous run's weights up to rounding; the late-fusion
op that replaced ``repeat_interleave`` + ``einsum`` computes what they computed. No timings here
(benchmarks/bench_train_step.py).
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from avsep.audio.config import FrontendConfig
from avsep.config.lavss import LAVSSTrainConfig
from avsep.data.binaural_batches import LAVSSData
from avsep.data.mixtures import MixSpec
from avsep.data.tensors import TensorBatch, to_device
from avsep.engine import checkpoint
from avsep.engine.config import TrainConfig
from avsep.engine.hfra import HFRATask, TrainData
from avsep.engine.lavss import LAVSSTask
from avsep.engine.loader import StepBatches
from avsep.engine.trainer import _NonFinite, autocast_dtype, fit
from avsep.models.hfra.config import SeparatorConfig, UNetConfig, VisualConfig
from avsep.models.hfra.separator import AVSeparator
from avsep.models.late_fusion import late_fusion, late_fusion_ears, late_fusion_ears_reference, late_fusion_reference
from avsep.models.layout import repeat_groups
from avsep.models.lavss.config import LAVSSConfig

CFG = TrainConfig(steps=6, batch_size=4, lr=1e-2, lr_milestones=(4,), checkpoint_every=2, log_every=2, seed=3, threads=1)


@dataclass
class ToyBatch(TensorBatch):
    log_mag: torch.Tensor  # (B, 1, 16, 16)
    visual: torch.Tensor  # (B, 2, 8) embeddings
    masks: torch.Tensor  # (B, 2, 16, 16) targets


@dataclass
class ToyTask:
    """A tiny late-fusion separator on batches that are a pure function of the step (their own generator)."""

    fusion: str = "late"
    loss_columns: tuple[str, ...] = ("loss", "bce")
    threads_seen: set[str] = dataclasses.field(default_factory=set)
    autocast_seen: list[bool] = dataclasses.field(default_factory=list)

    def build(self) -> AVSeparator:
        return AVSeparator(SeparatorConfig(fusion=self.fusion, k=4, middle_dim=4, unet=UNetConfig(ngf=2, num_downs=2),
                                           visual=VisualConfig(kind="embedding", embedding_dim=8)))

    def batch(self, step: int, batch_size: int, rank_offset: int, device: torch.device) -> ToyBatch:
        self.threads_seen.add(threading.current_thread().name)
        g = torch.Generator().manual_seed(1000 + step)
        x = torch.randn(batch_size, 1, 16, 16, generator=g)
        return ToyBatch(x, torch.randn(batch_size, 2, 8, generator=g), (torch.rand(batch_size, 2, 16, 16, generator=g) > 0.5).float())

    def batch_loss(self, model: torch.nn.Module, batch: ToyBatch, device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.autocast_seen.append(torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda"))
        b = to_device(batch, device)
        bce = F.binary_cross_entropy_with_logits(model(b.log_mag, b.visual)["logits"], b.masks)
        return bce, {"bce": bce.detach()}

    def checkpoint_config(self) -> dict[str, Any]:
        return {}

    def checkpoint_meta(self) -> dict[str, Any]:
        return {}


def _train(tmp: Path, name: str, task: ToyTask | None = None, stop_after: int | None = None, **cfg: Any) -> Path:
    return fit(task or ToyTask(), dataclasses.replace(CFG, **cfg), tmp / name, {"model": "toy"}, stop_after=stop_after)


def _same(a: Path, b: Path) -> None:
    wa, wb = checkpoint.load(a)["model"], checkpoint.load(b)["model"]
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    la, lb = pd.read_csv(a.parent / "train_log.csv"), pd.read_csv(b.parent / "train_log.csv")
    pd.testing.assert_frame_equal(la.drop(columns="seconds"), lb.drop(columns="seconds"))


def test_prefetched_batches_train_the_same_weights_as_the_synchronous_loop(tmp_path):
    sync = ToyTask()
    ref = _train(tmp_path, "sync", sync)
    assert sync.threads_seen == {threading.current_thread().name}
    ahead = ToyTask()
    _same(ref, _train(tmp_path, "thread", ahead, prefetch=2))
    assert any(t.startswith("avsep-batches") for t in ahead.threads_seen)  # made in the background thread
    _same(ref, _train(tmp_path, "workers", loader_workers=1, prefetch=2))  # a DataLoader worker process


def test_a_prefetching_run_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    ref = _train(tmp_path, "straight")
    state = _train(tmp_path, "resumed", stop_after=3, prefetch=2)  # the background thread has made steps 3, 4
    assert state.name == "state.pt" and state.exists()
    before = set(threading.enumerate())
    _same(ref, _train(tmp_path, "resumed", prefetch=2))
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("avsep-batches")]  # no thread left


def test_amp_is_inert_on_the_cpu_and_autocast_never_runs_there(tmp_path):
    assert autocast_dtype(dataclasses.replace(CFG, amp="bf16"), torch.device("cpu")) is None
    assert autocast_dtype(dataclasses.replace(CFG, amp="fp16"), torch.device("cpu")) is None
    assert autocast_dtype(dataclasses.replace(CFG, amp="bf16"), torch.device("cuda")) is torch.bfloat16
    with pytest.raises(ValueError, match="unknown train.amp"):
        autocast_dtype(dataclasses.replace(CFG, amp="fp8"), torch.device("cpu"))
    ref = _train(tmp_path, "fp32")
    task = ToyTask()
    _same(ref, _train(tmp_path, "amp", task, amp="bf16"))
    assert task.autocast_seen and not any(task.autocast_seen)
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(RuntimeError, match="CPU autocast is enabled"):
        _train(tmp_path, "refused")


class LayoutTask(ToyTask):
    """:class:`ToyTask` that records whether the model's convolution weights are channels-last during the steps."""

    def __init__(self) -> None:
        super().__init__(fusion="hierarchical")
        self.layouts: list[bool] = []

    def batch_loss(self, model, batch, device):
        convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        self.layouts.append(all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
                            and not all(w.is_contiguous() for w in convs))  # (1-channel kernels are both)
        return super().batch_loss(model, batch, device)


def test_channels_last_trains_in_that_layout_deterministically_and_resumes(tmp_path):
    plain, cl = LayoutTask(), LayoutTask()
    ref = _train(tmp_path, "contiguous", plain)
    a = _train(tmp_path, "cl", cl, channels_last=True)
    assert cl.layouts and all(cl.layouts) and not any(plain.layouts)
    _same(a, _train(tmp_path, "cl-again", LayoutTask(), channels_last=True))  # deterministic
    _train(tmp_path, "cl-resumed", LayoutTask(), stop_after=3, channels_last=True)
    _same(a, _train(tmp_path, "cl-resumed", LayoutTask(), channels_last=True))  # and resumable
    # the same training up to rounding: the weights agree closely, not bit for bit
    wr, wa = checkpoint.load(ref)["model"], checkpoint.load(a)["model"]
    for k in wr:
        torch.testing.assert_close(wa[k], wr[k], rtol=1e-3, atol=1e-4, msg=k)
    # the checkpoint loads into a fresh (contiguous) model and gives the channels-last model's outputs
    batch = LayoutTask().batch(99, 4, 0, torch.device("cpu"))
    logits = []
    for layout in (torch.contiguous_format, torch.channels_last):
        model = LayoutTask().build().to(memory_format=layout)
        model.load_state_dict(wa)
        with torch.no_grad():
            logits.append(model.eval()(batch.log_mag, batch.visual)["logits"])
    torch.testing.assert_close(logits[0], logits[1], rtol=1e-4, atol=1e-5)


def test_step_batches_are_in_step_order_and_stop_cleanly():
    made: list[int] = []

    def make(s: int) -> int:
        made.append(s)
        return s * s

    with StepBatches(make, range(3, 9), prefetch=3) as it:
        assert [next(it) for _ in range(2)] == [(3, 9), (4, 16)]
    assert made == sorted(made) and max(made) <= 7  # at most `prefetch` ahead, then closed
    assert list(StepBatches(make, range(2), prefetch=0)) == [(0, 0), (1, 1)]
    with pytest.raises(ValueError):
        StepBatches(make, range(2), prefetch=-1)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_late_fusion_computes_what_the_einsum_computed(n):
    g = torch.Generator().manual_seed(n)
    feats = torch.randn(3, 5, 8, 6, generator=g, requires_grad=True)
    w = torch.rand(3 * n, 5, generator=g, requires_grad=True)
    up = torch.randn(3 * n, 8, 6, generator=g)
    got = [late_fusion(feats, w, n)]
    got += torch.autograd.grad(got[0], (feats, w), up)
    want = [late_fusion_reference(feats, w, n)]
    want += torch.autograd.grad(want[0], (feats, w), up)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("ears", "per_pair"), [(2, True), (2, False), (1, True)])
def test_lavss_late_fusion_computes_what_the_einsum_computed(ears, per_pair):
    b, n, k = 2, 3, 4
    g = torch.Generator().manual_seed(ears + per_pair)
    dec = torch.randn(b * ears * (n if per_pair else 1), k, 8, 4, generator=g, requires_grad=True)
    w = torch.rand(b * n, k, generator=g, requires_grad=True)
    up = torch.randn(b, n, ears, 8, 4, generator=g)
    got = [late_fusion_ears(dec, w, b, n, ears)]
    got += torch.autograd.grad(got[0], (dec, w), up)
    want = [late_fusion_ears_reference(dec, w, b, n, ears)]
    want += torch.autograd.grad(want[0], (dec, w), up)
    for x, y in zip(got, want):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)


def _channels_last(x: torch.Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


@pytest.mark.parametrize("n", [1, 2, 3])
def test_late_fusion_of_channels_last_maps_agrees_and_keeps_their_layout(n):
    g = torch.Generator().manual_seed(10 + n)
    base = torch.randn(3, 5, 8, 6, generator=g)
    w = torch.rand(3 * n, 5, generator=g)
    up = torch.randn(3 * n, 8, 6, generator=g)
    results = []
    for layout in (torch.contiguous_format, torch.channels_last):
        feats = base.to(memory_format=layout).requires_grad_(True)
        ww = w.clone().requires_grad_(True)
        out = late_fusion(feats, ww, n)
        results.append((out, *torch.autograd.grad(out, (feats, ww), up)))
    (out0, gf0, gw0), (out1, gf1, gw1) = results
    assert _channels_last(gf1) and gf0.is_contiguous()  # the maps' gradient in the maps' layout: no conversion
    for a, b in ((out0, out1), (gf0, gf1), (gw0, gw1)):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("per_pair", [True, False])
def test_lavss_late_fusion_of_channels_last_maps_gives_the_same_gradients_in_their_layout(per_pair):
    b, n, k, e = 2, 3, 4, 2
    g = torch.Generator().manual_seed(20 + per_pair)
    base = torch.randn(b * e * (n if per_pair else 1), k, 8, 4, generator=g)
    w = torch.rand(b * n, k, generator=g)
    up = torch.randn(b, n, e, 8, 4, generator=g)
    results = []
    for layout in (torch.contiguous_format, torch.channels_last):
        dec = base.to(memory_format=layout).requires_grad_(True)
        ww = w.clone().requires_grad_(True)
        out = late_fusion_ears(dec, ww, b, n, e)
        results.append((out, *torch.autograd.grad(out, (dec, ww), up)))
    (out0, gd0, gw0), (out1, gd1, gw1) = results
    assert _channels_last(gd1) and gd0.is_contiguous()  # the gradient is made in the maps' layout
    assert torch.equal(out0, out1) and torch.equal(gd0, gd1) and torch.equal(gw0, gw1)  # the same products


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_repeat_groups_repeats_rows_in_the_source_layout(layout):
    outer, inner, times = 2, 3, 2
    x = torch.randn(outer * inner, 4, 5, 3, generator=torch.Generator().manual_seed(3)).to(memory_format=layout)
    x.requires_grad_(True)
    got = repeat_groups(x, outer, inner, times)
    want = x.view(outer, inner, 1, 4, 5, 3).expand(outer, inner, times, 4, 5, 3).reshape(-1, 4, 5, 3)
    assert torch.equal(got, want)
    assert _channels_last(got) == (layout == torch.channels_last)
    up = torch.randn(got.shape, generator=torch.Generator().manual_seed(4))
    assert torch.equal(torch.autograd.grad(got, x, up)[0], torch.autograd.grad(want, x, up)[0])


def test_the_lavss_decoder_stays_channels_last_and_agrees_with_the_contiguous_model():
    """A channels-last LAVSS model keeps every decoder map channels-last (the per-pair copies of the skips kept
    their layout: an NCHW map there is converted back by every convolution) and computes the contiguous model's
    logits and gradients up to rounding."""
    task = _lavss_task()
    torch.manual_seed(0)
    ref = task.build().train()
    batch = task.batch(0, 2, 0, torch.device("cpu"))
    runs = []
    for layout in (torch.contiguous_format, torch.channels_last):
        model = task.build().train()
        model.load_state_dict(ref.state_dict())
        model = model.to(memory_format=layout)
        seen: list[tuple[bool, bool]] = []  # (channels-last, NCHW) of each decoder level's input and output
        hooks = [up.register_forward_hook(lambda _m, inp, out: seen.extend(
                     (x.is_contiguous(memory_format=torch.channels_last), x.is_contiguous()) for x in (inp[0], out)))
                 for up in model.unet.ups]
        loss, _ = task.batch_loss(model, batch, torch.device("cpu"))
        loss.backward()
        for h in hooks:
            h.remove()
        runs.append((loss.detach(), {k: p.grad for k, p in model.named_parameters() if p.grad is not None}, seen))
    (loss0, grads0, seen0), (loss1, grads1, seen1) = runs
    assert len(seen1) == 2 * len(model.unet.ups) and all(cl for cl, _ in seen1) and not all(nchw for _, nchw in seen1)
    assert all(nchw for _, nchw in seen0)
    torch.testing.assert_close(loss1, loss0, rtol=1e-5, atol=1e-6)
    assert grads0.keys() == grads1.keys()
    # up to rounding, which the small batch norms of this tiny model amplify in single tensors (measured: 6e-4 of
    # the whole gradient's norm, 1.6 % of the worst tensor's, a 2-channel batch norm of the crop encoder)
    flat0, flat1 = (torch.cat([g[k].flatten() for k in grads0]) for g in (grads0, grads1))
    assert (flat1 - flat0).norm() <= 5e-3 * flat0.norm()
    for k in grads0:
        assert (grads1[k] - grads0[k]).norm() <= 0.1 * grads0[k].norm(), k


# ------------------------------------------------------------------- the families' batches, CPU and GPU layouts


class _Store:
    """Clips as a function of their name: a tone per clip (``channels`` ears) and a flat-coloured frame."""

    def __init__(self, channels: int) -> None:
        self.channels = channels

    def audio(self, clip: str, start: int, length: int) -> np.ndarray:
        t = (start + np.arange(length)) / 11025
        x = np.sin(2 * np.pi * (200 + 50 * int(clip[-1])) * t).astype(np.float32) * 0.3
        return np.stack([np.roll(x, e) for e in range(self.channels)])

    def frame(self, clip: str, index: int, size: int) -> np.ndarray:
        return np.full((3, size, size), 0.1 * int(clip[-1]) + 0.01 * index, dtype=np.float32)


class _Sampler:
    def batch(self, step: int, batch_size: int, rank_offset: int = 0) -> list[MixSpec]:
        return [MixSpec(clips=(f"c{(step + i) % 3}", f"c{(step + i + 1) % 3}"), labels=("a", "b"),
                        starts=(100 * i, 50 * step), frames=((2, 3, 4), (5, 6, 7)), gains=(0.7, 1.2))
                for i in range(rank_offset, rank_offset + batch_size)]

    def keys(self, step: int, batch_size: int, rank_offset: int = 0) -> list[str]:
        return [f"{step}:{i}" for i in range(rank_offset, rank_offset + batch_size)]

    def mirror_flags(self, step: int, batch_size: int, p: float, rank_offset: int = 0) -> torch.Tensor:
        return torch.tensor([(step + i) % 2 == 0 for i in range(rank_offset, rank_offset + batch_size)])


class _Boxes:
    def boxes(self, specs: list[MixSpec]) -> torch.Tensor:
        return torch.tensor([[[0.1, 0.2, 0.5, 0.7], [0.4, 0.1, 0.9, 0.8]]] * len(specs))


FE = FrontendConfig(sample_rate=11025, clip_samples=8191, n_fft=254, hop=64, warp_bins=128)


def _hfra_task(fusion: str, align: float) -> HFRATask:
    sep = SeparatorConfig(fusion=fusion, k=4, middle_dim=4, align_dim=6 if align else 0,
                          unet=UNetConfig(ngf=2, num_downs=3), visual=VisualConfig(kind="embedding", embedding_dim=5))
    emb = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))

    def visual(specs: list[MixSpec]) -> torch.Tensor:
        return torch.stack([emb[[int(c[-1]) for c in sp.clips]] for sp in specs])

    def clap(keys: list[str]) -> torch.Tensor:
        return torch.stack([torch.full((6,), float(len(k))) for k in keys])

    return HFRATask(sep, TrainData(_Store(1), _Sampler(), visual, FE, clap if align else None), align)


def _lavss_task() -> LAVSSTask:
    arch = LAVSSConfig(ngf=2, k=4, visual_width=2, crop_size=32, image_size=32, d_model=8, pos_hidden=8, pos_grid=4,
                       n_heads=2, n_layers=1, ffn_mult=1, ipd_features=("cos", "sin"))
    cfg = LAVSSTrainConfig(steps=2, batch_size=2, weighting="magnitude", mirror=0.5, seed=1, threads=1)
    return LAVSSTask(arch, cfg, _Sampler(), LAVSSData(_Store(2), _Boxes(), FE, 32))


@pytest.mark.parametrize("make", [lambda: _hfra_task("late", 0.0), lambda: _hfra_task("hierarchical", 1.0), _lavss_task],
                         ids=["late", "hierarchical-align", "lavss"])
def test_a_gpu_batch_leaves_the_stfts_to_the_loss_and_gives_the_same_loss(make):
    """On a GPU a task's batch carries the raw mixtures (its STFTs run on the device, in ``batch_loss``); the same
    code on the CPU gives the loss of the CPU batch, whose STFTs were made with it (ahead of the step)."""
    task = make()
    torch.manual_seed(0)
    model = task.build().train()
    cpu = torch.device("cpu")
    for step in (0, 1):
        made_here = task.batch(step, 2, 0, cpu)
        for_gpu = task.batch(step, 2, 0, torch.device("cuda"))  # only a device name: nothing is allocated there
        assert getattr(for_gpu, "spectral", None) is None and getattr(for_gpu, "targets", None) is None
        assert getattr(made_here, "spectral", None) is not None or getattr(made_here, "targets", None) is not None
        a, pa = task.batch_loss(model, made_here, cpu)
        b, pb = task.batch_loss(model, for_gpu, cpu)
        assert torch.equal(a, b) and pa.keys() == pb.keys()
        assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_a_gpu_run_checks_the_loss_at_log_steps_and_names_the_first_bad_step():
    check = _NonFinite("toy", sync_each_step=False)
    check.add(3, torch.tensor(1.0))
    check.add(4, torch.tensor(float("nan")))
    check.add(5, torch.tensor(float("inf")))
    with pytest.raises(FloatingPointError, match=r"became nan at step 4 \(toy\)"):
        check.check()
    eager = _NonFinite("toy", sync_each_step=True)
    eager.add(0, torch.tensor(2.0))
    with pytest.raises(FloatingPointError, match="at step 1"):
        eager.add(1, torch.tensor(float("inf")))


def test_the_throughput_keys_of_params_reach_both_training_configs():
    from workflow_helpers import default_params

    from avsep.config.lavss import lavss_params
    from avsep.config.paper import paper_params
    from avsep.config.params import Params

    demo = Params(default_params())
    assert (demo.train.prefetch, demo.train.loader_workers, demo.train.amp, demo.train.channels_last) == (0, 0, "fp32", True)
    dl = lavss_params(demo)
    assert dl.train.channels_last and dl.pretrain_train.channels_last
    raw = paper_params()
    p = Params(raw)
    lv = lavss_params(p)
    for cfg in (p.train, lv.train, lv.pretrain_train):
        assert (cfg.prefetch, cfg.loader_workers, cfg.amp, cfg.channels_last) == (4, 6, "bf16", True)
