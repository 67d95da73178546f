"""LAVSS training through the engine (:func:`avsep.engine.trainer.fit`): model construction with monaural
transfer, the eq. 8 loss of a batch, and checkpoint loading."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from avsep.config.lavss import LAVSSTrainConfig
from avsep.data.binaural_batches import Batch, LAVSSData, mirror_batch
from avsep.data.binaural_mixtures import LAVSSSampler
from avsep.data.tensors import TensorBatch, to_device
from avsep.engine import checkpoint
from avsep.losses.binaural import LAVSSTargets, loss_targets, loss_terms
from avsep.models.hfra.visual import load_resnet18_weights
from avsep.models.lavss.config import LAVSSConfig
from avsep.models.lavss.network import LAVSSNet, transfer_pretrained


def build_model(arch: LAVSSConfig, init: tuple[dict[str, torch.Tensor], LAVSSConfig] | None = None) -> tuple[LAVSSNet, list[str]]:
    """A model of ``arch``: its ResNet-18 starts from ``arch.visual_weights``; with ``init`` (pre-trained mono
    state and config) the pre-trained weights are transferred on top."""
    model = LAVSSNet(arch)
    load_resnet18_weights(model.crop_encoder.trunk, arch.visual_weights, "lavss visual_weights")
    parts: list[str] = []
    if init is not None:
        parts = transfer_pretrained(model, init[0], init[1])
    return model, parts


@dataclass
class LAVSSStep(TensorBatch):
    """The weight-independent inputs of one LAVSS training step."""

    batch: Batch
    targets: LAVSSTargets | None = None  # made with the batch on the CPU; by batch_loss on a GPU


@dataclass
class LAVSSTask:
    """A LAVSS model of ``arch`` trained with the eq. 8 loss on ``sampler``'s mixtures.

    ``init_checkpoint``: a mono pre-trained LAVSS checkpoint whose weights start the model
    (:func:`avsep.models.lavss.network.transfer_pretrained`).
    """

    arch: LAVSSConfig
    cfg: LAVSSTrainConfig
    sampler: LAVSSSampler
    data: LAVSSData
    init_checkpoint: str | Path | None = None
    loss_columns: tuple[str, ...] = ("loss", "l1", "l2", "time")
    transferred: list[str] = field(default_factory=list)

    def build(self) -> LAVSSNet:
        init = None
        if self.init_checkpoint is not None:
            ck = load_lavss_checkpoint(self.init_checkpoint)
            init = (ck["model"], LAVSSConfig.from_dict(ck["config"]))
        model, self.transferred = build_model(self.arch, init)
        return model

    def batch(self, step: int, batch_size: int, rank_offset: int, device: torch.device) -> LAVSSStep:
        """The step's mixtures (mirrored where drawn) and, on the CPU, their network inputs and eq. 7 targets (on a
        GPU those STFTs are left to :meth:`batch_loss`)."""
        cfg = self.cfg
        batch = self.data.batch(self.sampler.batch(step, batch_size, rank_offset))
        if cfg.mirror > 0:
            batch = mirror_batch(batch, self.sampler.mirror_flags(step, batch_size, cfg.mirror, rank_offset))
        targets = None
        if device.type == "cpu":
            targets = loss_targets(batch, self.data.frontend, self.arch.ipd, self.arch.ipd_features, cfg.weighting)
        return LAVSSStep(batch, targets)

    def batch_loss(self, model: torch.nn.Module, batch: LAVSSStep,
                   device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.cfg
        b = to_device(batch, device)
        terms = loss_terms(model, b.batch, self.data.frontend, cfg.weighting, b.targets)
        loss = terms["l1"] + cfg.alpha * terms["l2"] + cfg.beta * terms["time"]
        return loss, {k: t.detach() for k, t in terms.items()}

    def checkpoint_config(self) -> dict[str, Any]:
        return self.arch.to_dict()

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"transferred": self.transferred}


def load_lavss_checkpoint(path: str | Path) -> dict[str, Any]:
    ck = checkpoint.load(path)
    for key in ("model", "config", "meta"):
        if key not in ck:
            raise RuntimeError(f"checkpoint {path} lacks {key!r}: is it a LAVSS checkpoint?")
    return ck


def load_lavss(path: str | Path) -> tuple[LAVSSNet, dict[str, Any]]:
    """A trained LAVSS model (eval mode) and its metadata."""
    ck = load_lavss_checkpoint(path)
    return lavss_from(ck), ck["meta"]


def lavss_from(ck: dict[str, Any]) -> LAVSSNet:
    """The LAVSS model (eval mode) of a loaded final checkpoint."""
    model = LAVSSNet(LAVSSConfig.from_dict(ck["config"]))
    model.load_state_dict(ck["model"])
    model.eval()
    return model
