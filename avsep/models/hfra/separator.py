"""Mask-based audio-visual separators built on :class:`UNet`.

One class covers the fusion strategies of the papers:

* ``late``: the U-Net outputs ``k`` channels a_c; the visual vector v (k values in [0, 1]) gives
  mask = sigmoid(sum_c v_c s_c a_c + b) with learned per-channel scales s and bias b.
* ``middle``: a visual vector is tiled at the bottleneck and concatenated; the U-Net outputs 1 channel.
* ``hierarchical``: both (HFRA eq. 5).

The visual vector comes from frames (``visual.kind = "frames"``: the Sound-of-Pixels ResNet-18 head)
or from a precomputed embedding (``visual.kind = "embedding"``, e.g. a cached CLIP vector) through
Linear + sigmoid projections. Each source's mask depends on that source's visual input only: sources
are folded into the batch dimension, never mixed.

With ``align_dim > 0`` the separator also owns the projection of HFRA's audio representation alignment
(eq. 6-8): with ``align_head="linear"`` a Linear layer from the mean-pooled U-Net bottleneck (the encoder
output, before any visual concat) to the dimension of the CLAP embedding it is aligned to
(:func:`avsep.losses.alignment.alignment_loss`); with ``align_head="none"`` (eq. 6 as written) the pooled
bottleneck itself, which then must have that dimension (8 x ngf = 512 at the papers' width).
"""

from __future__ import annotations

import torch
from torch import nn

from avsep.models.hfra.config import ALIGN_HEADS, FUSIONS, SEP_LOSSES, VISUAL_KINDS, SeparatorConfig, UNetConfig
from avsep.models.hfra.unet import UNet
from avsep.models.hfra.visual import FrameEncoder
from avsep.models.late_fusion import late_fusion


class AVSeparator(nn.Module):
    """An HFRA-family separator: the U-Net, a visual input (frames or cached CLIP embeddings) and its fusion."""

    #: Modules trained at ``train.lr_visual`` when it is set (:func:`avsep.engine.trainer.param_groups`).
    VISUAL_MODULES = ("frame_encoder",)

    def __init__(self, cfg: SeparatorConfig) -> None:
        super().__init__()
        if cfg.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {cfg.fusion!r}; expected one of {FUSIONS}")
        if cfg.visual.kind not in VISUAL_KINDS:
            raise ValueError(f"unknown visual kind {cfg.visual.kind!r}; expected one of {VISUAL_KINDS}")
        self.cfg = cfg
        late = cfg.fusion in ("late", "hierarchical")
        middle = cfg.fusion in ("middle", "hierarchical")
        out_c = cfg.k if late else 1
        self.unet = UNet(
            UNetConfig(
                ngf=cfg.unet.ngf,
                out_channels=out_c,
                num_downs=cfg.unet.num_downs,
                bottleneck_channels=cfg.middle_dim if middle else 0,
            )
        )
        v = cfg.visual
        self.frame_encoder: FrameEncoder | None = None
        if v.kind == "frames":
            # Sound-of-Pixels head for the late vector; a second head for the bottleneck vector.
            self.frame_encoder = FrameEncoder(width=v.width, out_dim=cfg.k if late else cfg.middle_dim)
            self.proj_late = None
            if middle and late:
                self.proj_mid: nn.Module | None = nn.Sequential(nn.Linear(cfg.k, cfg.middle_dim), nn.Sigmoid())
            else:
                self.proj_mid = None
        else:
            self.proj_late = nn.Sequential(nn.Linear(v.embedding_dim, cfg.k), nn.Sigmoid()) if late else None
            self.proj_mid = (
                nn.Sequential(nn.Linear(v.embedding_dim, cfg.middle_dim), nn.Sigmoid()) if middle else None
            )
        if late:
            self.scale = nn.Parameter(torch.ones(cfg.k))
            self.bias = nn.Parameter(torch.zeros(1))
        # Alignment head: the bottleneck has the innermost encoder width (ngf * 8 for U-Net7).
        if cfg.align_head not in ALIGN_HEADS:
            raise ValueError(f"unknown align_head {cfg.align_head!r}; expected one of {ALIGN_HEADS}")
        if cfg.sep_loss not in SEP_LOSSES:
            raise ValueError(f"unknown sep_loss {cfg.sep_loss!r}; expected one of {SEP_LOSSES}")
        if cfg.align_dim > 0 and cfg.align_head == "none" and self.unet.bottleneck_dim != cfg.align_dim:
            raise ValueError(f"align_head=none aligns the U-Net bottleneck itself, but it has {self.unet.bottleneck_dim} "
                             f"channels (8 x ngf) and the target {cfg.align_dim}: use ngf={cfg.align_dim // 8} or align_head=linear")
        self.align_proj = (nn.Linear(self.unet.bottleneck_dim, cfg.align_dim)
                           if cfg.align_dim > 0 and cfg.align_head == "linear" else None)

    # -- visual -----------------------------------------------------------------------------------
    def visual_vectors(self, visual: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Visual input of B items -> (late vector (B, k) or None, middle vector (B, m) or None)."""
        late = self.cfg.fusion in ("late", "hierarchical")
        middle = self.cfg.fusion in ("middle", "hierarchical")
        if self.frame_encoder is not None:
            v = self.frame_encoder(visual)
            if late and middle:
                assert self.proj_mid is not None
                return v, self.proj_mid(v)
            return (v, None) if late else (None, v)
        vl = self.proj_late(visual) if self.proj_late is not None else None
        vm = self.proj_mid(visual) if self.proj_mid is not None else None
        return vl, vm

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, log_mag: torch.Tensor, visual: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mask logits for each source.

        ``log_mag``: (B, 1, F, T) warped log magnitude of the mixture. ``visual``: (B, N, ...) per-source
        visual input (frames (B, N, K, 3, H, W) or embeddings (B, N, D)). Returns ``logits`` (B, N, F, T)
        and ``bottleneck`` (B, C) — the mean-pooled bottleneck of the mixture, before any visual concat.
        """
        b, n = visual.shape[:2]
        vl, vm = self.visual_vectors(visual.flatten(0, 1))  # (B*N, ...)
        per_source = 1  # sources per row of the U-Net's features
        if vm is not None:
            # The U-Net must run once per source: its decoder depends on that source's vector.
            rep = log_mag.repeat_interleave(n, dim=0)
            feats, bott = self.unet(rep, vm)
            bott = bott.view(b, n, *bott.shape[1:])[:, 0]
        else:
            feats, bott = self.unet(log_mag)
            per_source = n
        if vl is not None:
            # sum_c v_c s_c a_c of each source, the mixture's features shared by its sources (not copied)
            logits = late_fusion(feats, vl * self.scale, per_source) + self.bias
        else:
            logits = (feats.repeat_interleave(per_source, dim=0) if per_source > 1 else feats)[:, 0]
        return {
            "logits": logits.view(b, n, *logits.shape[-2:]),
            "bottleneck": bott.mean(dim=(-2, -1)),
        }

    def aligned(self, bottleneck: torch.Tensor) -> torch.Tensor:
        """The bottleneck in the alignment space (the identity when the dimensions already agree)."""
        return self.align_proj(bottleneck) if self.align_proj is not None else bottleneck
