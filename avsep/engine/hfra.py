"""HFRA-family training through the engine: mix-and-separate batches, L = L_sep + lambda L_align (HFRA eq. 8)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from avsep.audio.frontend import FrontendConfig
from avsep.audio.mixing import SpectralBatch, mix_sources, spectral_batch
from avsep.data.inputs import ClapTargets, VisualInputs
from avsep.data.mixtures import MixSpec
from avsep.data.store import ClipStore, load_audio
from avsep.data.tensors import TensorBatch, to_device
from avsep.engine.spectral_cache import SpectralCache
from avsep.losses.alignment import alignment_loss
from avsep.losses.separation import SEPARATION_LOSSES
from avsep.models.hfra.config import SeparatorConfig
from avsep.models.hfra.separator import AVSeparator
from avsep.models.hfra.visual import load_resnet18_weights


class MixtureSampler(Protocol):
    """Training mixtures as a pure function of the step (so any batch can be rebuilt on resume)."""

    def batch(self, step: int, batch_size: int, rank_offset: int = 0) -> list[MixSpec]: ...

    def keys(self, step: int, batch_size: int, rank_offset: int = 0) -> list[str]: ...


@dataclass
class TrainData:
    store: ClipStore
    sampler: MixtureSampler
    visual: VisualInputs  # per-source visual input of a batch (frames or cached CLIP embeddings)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    clap: ClapTargets | None = None  # cached CLAP embeddings of the training mixtures (alignment)
    spectral_cache: SpectralCache | None = None  # the spectral targets of repeating mixtures, computed once each


@dataclass
class HFRABatch(TensorBatch):
    """The weight-independent inputs of one training step (:func:`make_batch`)."""

    audio: torch.Tensor  # (B, N, L) mono crops of the sources
    gains: torch.Tensor  # (B, N)
    visual: torch.Tensor  # (B, N, ...) per-source visual input (frames or cached CLIP embeddings)
    clap: torch.Tensor | None = None  # (B, D) cached CLAP embedding of each mixture (alignment)
    spectral: SpectralBatch | None = None  # mixed and transformed here (CPU) or by batch_loss on the device


def make_batch(data: TrainData, step: int, batch_size: int, align: bool = False, rank_offset: int = 0,
               spectral: bool = True) -> HFRABatch:
    """The batch of ``step`` (``rank_offset``/``batch_size``: this process's share of the global batch): audio
    crops, gains, visual inputs, the CLAP targets with ``align`` and, with ``spectral``, the mixture's network
    input and the separation targets (:func:`avsep.audio.mixing.spectral_batch`). Nothing depends on the weights."""
    specs = data.sampler.batch(step, batch_size, rank_offset)
    audio, gains = load_audio(data.store, specs, data.frontend.clip_samples)
    visual = data.visual(specs)
    clap = None
    if align:
        if data.clap is None:
            raise ValueError("align_lambda > 0 needs the cached CLAP embeddings of the training mixtures")
        clap = data.clap(data.sampler.keys(step, batch_size, rank_offset))
    batch = HFRABatch(audio[:, :, 0], gains, visual, clap)
    if spectral:
        cache = data.spectral_cache
        batch.spectral = (_spectral(batch, data.frontend) if cache is None
                          else cache.spectral(step, batch_size, rank_offset, batch.audio, gains, data.frontend))
    return batch


def _spectral(batch: HFRABatch, frontend: FrontendConfig) -> SpectralBatch:
    sources, mixture = mix_sources(batch.audio, batch.gains)
    return spectral_batch(sources, mixture, frontend)


def batch_loss(model: AVSeparator | torch.nn.Module, batch: HFRABatch, frontend: FrontendConfig, align_lambda: float = 0.0,
               device: torch.device | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss of a :class:`HFRABatch` and its parts (detached): L = L_sep + lambda * L_align (HFRA eq. 8).
    ``model`` may be wrapped in DistributedDataParallel."""
    b = to_device(batch, device or torch.device("cpu"))
    spec = b.spectral if b.spectral is not None else _spectral(b, frontend)
    out = model(spec.log_mag, b.visual)
    net = model.module if isinstance(model, DDP) else model
    sep = SEPARATION_LOSSES[net.cfg.sep_loss](out["logits"], spec)
    if align_lambda <= 0:
        return sep, {"sep": sep.detach()}
    if b.clap is None:
        raise ValueError("align_lambda > 0 needs the cached CLAP embeddings of the training mixtures")
    align = alignment_loss(net.aligned(out["bottleneck"]), b.clap)
    return sep + align_lambda * align, {"sep": sep.detach(), "align": align.detach()}


@dataclass
class HFRATask:
    """A separator of ``model_cfg`` trained on ``data``; ``align_lambda`` > 0 adds the CLAP alignment term."""

    model_cfg: SeparatorConfig
    data: TrainData
    align_lambda: float = 0.0
    loss_columns: tuple[str, ...] = ("loss", "sep", "align")

    def build(self) -> AVSeparator:
        """A new separator; a frames variant's ResNet-18 starts from ``visual.weights`` (``model_defaults.visual_weights``)."""
        model = AVSeparator(self.model_cfg)
        if model.frame_encoder is not None:
            load_resnet18_weights(model.frame_encoder.trunk, self.model_cfg.visual.weights, "model_defaults.visual_weights")
        return model

    def batch(self, step: int, batch_size: int, rank_offset: int, device: torch.device) -> HFRABatch:
        # the STFTs of the mixing on the CPU when training there (made ahead with the rest); on a GPU, by batch_loss
        return make_batch(self.data, step, batch_size, self.align_lambda > 0, rank_offset, spectral=device.type == "cpu")

    def batch_loss(self, model: torch.nn.Module, batch: HFRABatch,
                   device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return batch_loss(model, batch, self.data.frontend, self.align_lambda, device)

    def checkpoint_config(self) -> dict[str, Any]:
        return self.model_cfg.to_dict()

    def checkpoint_meta(self) -> dict[str, Any]:
        return {}
