"""HFRA-family training through the engine: mix-and-separate batches, L = L_sep + lambda L_align (HFRA eq. 8)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from avsep.audio.frontend import FrontendConfig
from avsep.audio.mixing import mix_sources, spectral_batch
from avsep.data.inputs import ClapTargets, VisualInputs
from avsep.data.mixtures import MixSpec
from avsep.data.store import ClipStore, load_audio
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


def train_step(
    model: AVSeparator | torch.nn.Module, data: TrainData, step: int, batch_size: int, align_lambda: float = 0.0,
    rank_offset: int = 0, device: torch.device | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one training batch and its parts: L = L_sep + lambda * L_align (HFRA eq. 8).

    ``rank_offset``/``batch_size`` select this process's share of the step's global batch (distributed
    training); ``model`` may be wrapped in DistributedDataParallel.
    """
    dev = device or torch.device("cpu")
    specs = data.sampler.batch(step, batch_size, rank_offset)
    audio, gains = load_audio(data.store, specs, data.frontend.clip_samples)
    visual = data.visual(specs).to(dev)
    sources, mixture = mix_sources(audio[:, :, 0].to(dev), gains.to(dev))
    batch = spectral_batch(sources, mixture, data.frontend)
    out = model(batch.log_mag, visual)
    net = model.module if isinstance(model, DDP) else model
    sep = SEPARATION_LOSSES[net.cfg.sep_loss](out["logits"], batch)
    if align_lambda <= 0:
        return sep, {"sep": sep.item()}
    if data.clap is None:
        raise ValueError("align_lambda > 0 needs the cached CLAP embeddings of the training mixtures")
    target = data.clap(data.sampler.keys(step, batch_size, rank_offset)).to(dev)
    align = alignment_loss(net.aligned(out["bottleneck"]), target)
    return sep + align_lambda * align, {"sep": sep.item(), "align": align.item()}


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

    def loss(self, model: torch.nn.Module, step: int, batch_size: int, rank_offset: int,
             device: torch.device) -> tuple[torch.Tensor, dict[str, float]]:
        return train_step(model, self.data, step, batch_size, self.align_lambda, rank_offset, device)

    def checkpoint_config(self) -> dict[str, Any]:
        return self.model_cfg.to_dict()

    def checkpoint_meta(self) -> dict[str, Any]:
        return {}
