"""The integrated LAVSS separator (location-guided audio-visual spatial audio separation) and its baselines.

One network class covers every row of the LAVSS tables; :class:`LAVSSConfig` switches its parts:

* **Audio** (per ear, one U-Net7 shared by both ears): the input of ear ``e`` is ``(C_in, W, T)``: the
  warped log magnitude of that ear and, with ``ipd``, the warped interaural phase-difference channels
  (``ipd_features``: ``cos`` is the paper's eq. 4, ``sin`` adds the sign of the IPD, i.e. the side).
  The ears are folded into the batch, so the separator never mixes them.
* **Vision**: the detected box of each source is cropped from its frame and resized to ``crop_size``
  (224 in the paper) and encoded by a ResNet-18 (:class:`~avsep.models.lavss.blocks.CropEncoder`) into
  ``F_v`` (``d_model x p x p`` with ``p = crop_size / 32``). ``visual="frame"`` uses the whole frame instead
  of the box (the appearance-only baselines: Sound-of-Pixels and 2.5D-sep see the whole frame).
* **Position** (``position``): gamma(x, y) of every box sample (eq. 1), adaptive max-pool to ``p x p`` and the
  MLP (:class:`~avsep.models.lavss.blocks.PositionNet`) give ``F_p``; the VP cross attention (eq. 3; or,
  with ``vp_attention=False``, ``Conv1x1(F_v (+) F_p)``) is added to ``F_v``:
  ``F_vp = F_v + Conv1x1(CMA(F_v, F_p) (+) CMA(F_p, F_v))``. The residual ``F_v`` is our addition: with eq. 3
  taken literally a freshly initialised VP block would replace the pre-trained ``F_v`` of a transferred
  model by noise. Without position ``F_vp = F_v``.
* **Fusion**, by ``backbone``:

  - ``sep25d`` (2.5D-sep style, the LAVSS backbone): the multi-scale AVP fusion (eqs. 5-6,
    :class:`~avsep.models.lavss.blocks.AVPFusion` with ``avp_attention``, ``multi_scale`` and
    ``tile_concat`` switches) replaces the U-Net bottleneck; the decoder runs once per (ear, source) and
    outputs one mask channel.
  - ``sop`` (Sound-of-Pixels style, late fusion): the U-Net decoder outputs ``k`` channels; the spatially
    max-pooled ``F_vp`` is projected to a ``k``-vector ``v`` in (0, 1) and the mask logit is
    ``sum_c v_c s_c a_c + b`` (learned scales ``s`` and bias ``b``). With ``bottleneck_fusion`` (the paper
    applies its Fig. 3 fusion to both backbones) the AVP fusion also replaces the bottleneck, so the
    decoder runs once per (ear, source); without it (plain Sound-of-Pixels) once per ear.

* **Output**: mask logits ``(B, N sources, E ears, W, T)`` in the warped domain.

Monaural pre-training (paper section 3.4) trains the same class with ``ipd=False, position=False`` on mono
mixtures (``E = 1``); :func:`transfer_pretrained` copies its U-Net and visual network (and its fusion /
late-fusion head when the architecture is the same) into a binaural model, inflating the U-Net input.
"""

from __future__ import annotations

import torch
from torch import nn

from avsep.models.hfra.config import UNetConfig
from avsep.models.hfra.unet import UNet
from avsep.models.late_fusion import late_fusion_ears
from avsep.models.layout import repeat_groups
from avsep.models.lavss.blocks import (
    AVPFusion,
    CropEncoder,
    PositionNet,
    VPAttention,
    crop_boxes,
    unet_decode,
    unet_encode,
)
from avsep.models.lavss.config import LAVSSConfig


def _unet(cfg: LAVSSConfig) -> UNet:
    """A U-Net7 with ``cfg.in_channels`` input channels (freshly initialised input BatchNorm and conv)."""
    out_c = cfg.k if cfg.backbone == "sop" else 1
    unet = UNet(UNetConfig(ngf=cfg.ngf, out_channels=out_c, num_downs=cfg.num_downs))
    if cfg.in_channels != 1:
        old: nn.Conv2d = unet.downs[0][0]
        unet.bn0 = nn.BatchNorm2d(cfg.in_channels)
        unet.downs[0][0] = nn.Conv2d(cfg.in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                                     bias=False)
    return unet


class LAVSSNet(nn.Module):
    """LAVSS and its ablations / baselines (see the module docstring)."""

    #: Modules trained at ``train.lr_visual`` when it is set (:func:`avsep.engine.trainer.param_groups`).
    VISUAL_MODULES = ("crop_encoder",)

    def __init__(self, cfg: LAVSSConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.unet = _unet(cfg)
        self.crop_encoder = CropEncoder(cfg.visual_width, cfg.d_model)
        self.position_net: PositionNet | None = None
        self.vp: VPAttention | None = None
        if cfg.position:
            self.position_net = PositionNet(cfg.d_model, cfg.pos_D, cfg.pos_hidden, cfg.pool)
            self.vp = VPAttention(cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.ffn_mult, attention=cfg.vp_attention,
                                   input_norm=cfg.vp_input_norm)
        self.fusion: AVPFusion | None = None
        self.late: nn.Linear | None = None
        if cfg.bottleneck_fusion:
            chans = [self.unet.bottleneck_dim] * 3
            self.fusion = AVPFusion(
                chans, cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.ffn_mult, vp_tokens=cfg.pool**2,
                multi_scale=cfg.multi_scale, attention=cfg.avp_attention, tile_concat=cfg.tile_concat,
            )
        if cfg.backbone == "sop":
            self.late = nn.Linear(cfg.d_model, cfg.k)
            self.scale = nn.Parameter(torch.ones(cfg.k))
            self.bias = nn.Parameter(torch.zeros(1))

    # -- guidance ---------------------------------------------------------------------------------
    def guidance(self, images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """``images`` (M, 3, S, S) in [0, 1], ``boxes`` (M, 4) normalised x1, y1, x2, y2 -> ``F_vp`` (M, d, p, p)."""
        cfg = self.cfg
        if cfg.visual == "frame":
            boxes = boxes.new_tensor([0.0, 0.0, 1.0, 1.0]).expand(images.shape[0], 4)
        f_v = self.crop_encoder(crop_boxes(images, boxes, cfg.crop_size))
        if self.position_net is None or self.vp is None:
            return f_v
        hw = (images.shape[-2], images.shape[-1])
        f_p = self.position_net.encode_boxes(boxes, hw, grid=(cfg.pos_grid, cfg.pos_grid))
        f_vp = self.vp(f_v, f_p)
        return f_v + f_vp if cfg.vp_residual else f_vp

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, audio: torch.Tensor, images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Mask logits ``(B, N, E, W, T)``.

        ``audio``: (B, E, C_in, W, T) per-ear network input (:func:`avsep.audio.binaural.audio_features`);
        ``images``: (B, N, 3, S, S) one frame per source; ``boxes``: (B, N, 4) the source's box in that frame.
        Source ``n``'s masks depend only on its own image and box.
        """
        if audio.dim() != 5 or audio.shape[2] != self.cfg.in_channels:
            raise ValueError(f"audio input must be (B, E, {self.cfg.in_channels}, W, T), got {tuple(audio.shape)}")
        b, e = audio.shape[:2]
        n = images.shape[1]
        if images.shape[0] != b or boxes.shape[:2] != (b, n):
            raise ValueError(f"images {tuple(images.shape)} / boxes {tuple(boxes.shape)} do not match audio batch {b}")
        f_vp = self.guidance(images.flatten(0, 1), boxes.flatten(0, 1))  # (B N, d, p, p)
        skips = unet_encode(self.unet, audio.flatten(0, 1))  # (B E, C, h, w) each
        if self.fusion is not None:
            # One decoder pass per (ear, source): index order (b, e, n).
            rep = [repeat_groups(s, b, e, n) for s in skips]
            vp = f_vp.view(b, 1, n, *f_vp.shape[1:]).expand(b, e, n, *f_vp.shape[1:]).reshape(b * e * n, *f_vp.shape[1:])
            dec = unet_decode(self.unet, rep, self.fusion(rep, vp))  # (B E N, C_out, W, T)
        else:
            dec = unet_decode(self.unet, skips, skips[-1])  # (B E, k, W, T): one pass per ear
        if self.late is None:
            if self.fusion is not None:
                return dec.view(b, e, n, *dec.shape[1:]).transpose(1, 2)[:, :, :, 0]
            return dec.view(b, 1, e, *dec.shape[1:]).expand(b, n, e, *dec.shape[1:])[:, :, :, 0]
        v = torch.sigmoid(self.late(f_vp.amax(dim=(-2, -1)))) * self.scale  # (B N, k)
        # sum_c v_c s_c a_c per (source, ear): (B, N, E, W, T), the per-ear maps not copied per source
        return late_fusion_ears(dec, v, b, n, e) + self.bias


def transfer_pretrained(model: LAVSSNet, state: dict[str, torch.Tensor], pre_cfg: LAVSSConfig) -> list[str]:
    """Copy a mono pre-trained model's weights into ``model`` (in place); returns the parts copied.

    Always the U-Net (its input is inflated: the log-magnitude channel keeps the pre-trained BatchNorm and
    first-conv weights, the IPD channels keep their fresh initialisation) and the visual network (ResNet-18
    and its projection). The fusion module (``sep25d``) is copied when the two architectures agree
    (:meth:`fusion_signature`), the late-fusion head (``sop``) when they agree and the model has no position
    branch. The position network and VP attention, which mono pre-training has not got, stay freshly
    initialised, as the paper's new parts are.

    The late-fusion head is not copied into a location-guided model: trained on ``F_v`` alone its sigmoid
    is saturated (on the default config half its pre-activations exceed 3 in magnitude; mean slope 0.07
    against 0.25 fresh), so what the position adds to ``F_vp`` barely moves the channel weights ``v``.
    Same-type SDR of ``lavss`` (default config, seed 1234): -0.95 dB with the head copied, +3.27 dB without.

    Neither new branch is zeroed to make the transferred model start from the mono function: on a
    same-type mixture position is useless without IPD features in the U-Net and IPD features are useless
    without position, so with both branches at zero neither gets a gradient (a saddle). Measured on the
    default ``synth-fairplay`` config: same-type SDR -0.81 dB with both zeroed, -0.69 dB with only the IPD
    weights fresh, +2.13 dB with both fresh.
    """
    cfg = model.cfg
    if pre_cfg.ipd or pre_cfg.position:
        raise ValueError("the pre-trained model must be monaural (ipd=False, position=False)")
    same_unet = (pre_cfg.backbone, pre_cfg.ngf, pre_cfg.num_downs, pre_cfg.k if pre_cfg.backbone == "sop" else 1) == (
        cfg.backbone, cfg.ngf, cfg.num_downs, cfg.k if cfg.backbone == "sop" else 1)
    if not same_unet:
        raise ValueError(f"pre-trained U-Net ({pre_cfg.backbone}, ngf {pre_cfg.ngf}) does not fit this model "
                         f"({cfg.backbone}, ngf {cfg.ngf})")
    if (pre_cfg.visual_width, pre_cfg.d_model) != (cfg.visual_width, cfg.d_model):
        raise ValueError("pre-trained visual network width / d_model differ from this model's")
    prefixes = ["unet.", "crop_encoder."]
    parts = ["U-Net", "visual network"]
    if cfg.fusion_signature() is not None and pre_cfg.fusion_signature() == cfg.fusion_signature():
        prefixes.append("fusion.")
        parts.append("Tile-Concat fusion" if cfg.tile_concat else "AVP fusion")
    if cfg.backbone == "sop" and not cfg.position and (pre_cfg.k, pre_cfg.d_model) == (cfg.k, cfg.d_model):
        prefixes += ["late.", "scale", "bias"]
        parts.append("late-fusion head")
    own = model.state_dict()
    new = dict(own)
    for key, val in state.items():
        if not any(key.startswith(p) for p in prefixes):
            continue
        if key not in own:
            raise KeyError(f"pre-trained weight {key!r} has no counterpart in the model")
        tgt = own[key]
        if key in ("unet.bn0.weight", "unet.bn0.bias", "unet.bn0.running_mean", "unet.bn0.running_var"):
            t = tgt.clone()
            t[:1] = val
            new[key] = t
        elif key == "unet.downs.0.0.weight" and tgt.shape != val.shape:
            t = tgt.clone()  # the IPD channels keep their fresh weights
            t[:, :1] = val
            new[key] = t
        elif tgt.shape != val.shape:
            raise ValueError(f"pre-trained weight {key!r} has shape {tuple(val.shape)}, the model {tuple(tgt.shape)}")
        else:
            new[key] = val
    model.load_state_dict(new)
    return parts
