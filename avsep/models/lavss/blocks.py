"""Building blocks of LAVSS (vision-position embedding and multi-scale audio-visual-positional fusion).

Paper sections 3.2-3.3, with every unspecified detail decided and written down here:

* **Position encoding** (eq. 1): ``gamma(x, y) = (sin 2^0 pi x, cos 2^0 pi x, sin 2^0 pi y, cos 2^0 pi y, ...,
  sin 2^(D-1) pi x, ..., cos 2^(D-1) pi y)``, ``4 D`` channels (64 for D = 16) in exactly that order.
  ``x`` runs left to right, ``y`` top to bottom, both normalised to ``[-1, 1]`` over the **whole frame**
  (a pixel centre ``c`` of a ``W``-pixel row sits at ``2 (c + 0.5) / W - 1``). Evaluated in float64, since
  ``2^15 pi x`` loses most of its float32 precision.
* **Box map**: as in the paper the map covers the detected box only (``C_e x H_b x W_b``), each sample carrying
  its whole-frame coordinates; there is no "outside". ``full_frame=True`` instead samples the whole frame
  and puts **zeros outside the box** (for inspection only; :class:`PositionNet` uses the box map).
* **Position network**: adaptive max-pool to ``pool x pool`` (7 x 7) then a per-position MLP
  ``4D -> hidden -> d_model`` (paper: 64 -> 256 -> 512) with a ReLU in between, giving ``F_p``.
* **Vision network** (:class:`CropEncoder`): the box crop resized to 224 x 224 through a standard
  ResNet-18 (output stride 32) gives ``F_v`` of ``8 width x 7 x 7`` (512 x 7 x 7 at width 64).
* **CMA** (eq. 2): ``a = LN(MHA(M, N, N) + M)``, ``out = LN(FFN(a) + a)``; ``n_layers`` such layers are
  stacked (the query of layer ``i + 1`` is the output of layer ``i``, keys/values stay ``N``). No token
  position embeddings are added (the paper mentions none).
* **VP attention** (eq. 3): ``F_vp = Conv1x1(CMA(F_v, F_p, F_p) (+) CMA(F_p, F_v, F_v))``, 2d -> d.
* **AVP fusion** (eqs. 5-6): the last three U-Net down-sampling outputs are each projected to ``d`` by a
  1 x 1 convolution, flattened and concatenated into audio query tokens ``F_a``;
  ``F_avp = f2(CMA(F_a, F_vp, F_vp) (+) f1(CMA(F_vp, F_a, F_a)))`` where ``f1`` is a 1-D convolution over the
  ``pool^2`` VP tokens (a learned weighted pooling to one token, broadcast to every audio token) and ``f2``
  "expands" the token sequence back to the 2-D maps of every scale, resizes them to the bottleneck size
  (adaptive average pooling), concatenates them and applies a 3 x 3 convolution to the bottleneck channels.
  The result has the bottleneck's shape and replaces it at the decoder input (:func:`unet_decode`).

Ablation switches (paper table 4) are constructor flags that remove modules, so parameter counts differ:
``VPAttention(attention=False)`` (w/o VP atten.: ``Conv1x1(F_v (+) F_p)``), ``AVPFusion(attention=False)``
(w/o AVP atten.: ``f2(F_a (+) f1(F_vp))``), ``AVPFusion(multi_scale=False)`` (w/o multi: only the last down
layer) and ``AVPFusion(tile_concat=True)`` (Tile-Concat: the max-pooled ``F_vp`` is tiled over the bottleneck,
concatenated on channels and mixed by a 3 x 3 convolution; no attention, no multi-scale).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from avsep.models.hfra.unet import UNet
from avsep.models.hfra.visual import ResNet18

# ----------------------------------------------------------------------------------------------------------
# Position encoding
# ----------------------------------------------------------------------------------------------------------


def position_encoding(x: torch.Tensor | float, y: torch.Tensor | float, D: int = 16) -> torch.Tensor:
    """``gamma(x, y)`` of LAVSS eq. 1: ``(*shape, 4 D)`` float32, channels last.

    Channel ``4 k + 0..3`` is ``sin(2^k pi x), cos(2^k pi x), sin(2^k pi y), cos(2^k pi y)`` for
    ``k = 0 .. D - 1``. ``x`` and ``y`` (broadcast together) are frame coordinates in ``[-1, 1]``.
    """
    xt = torch.as_tensor(x, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.float64)
    xt, yt = torch.broadcast_tensors(xt, yt)
    freqs = math.pi * torch.pow(2.0, torch.arange(D, dtype=torch.float64))  # (D,)
    ax = xt.unsqueeze(-1) * freqs
    ay = yt.unsqueeze(-1) * freqs
    out = torch.stack([torch.sin(ax), torch.cos(ax), torch.sin(ay), torch.cos(ay)], dim=-1)  # (..., D, 4)
    return out.flatten(-2).to(torch.float32)


def _box_samples(lo: float, hi: float, n_pix: int, n_grid: int | None) -> torch.Tensor:
    """Normalised [0, 1] sample positions along one axis inside ``[lo, hi]``."""
    if n_grid is not None:
        return lo + (torch.arange(n_grid, dtype=torch.float64) + 0.5) * (hi - lo) / n_grid
    first = min(int(math.floor(lo * n_pix)), n_pix - 1)
    last = max(int(math.ceil(hi * n_pix)) - 1, first)  # pixels the box overlaps, at least one
    return (torch.arange(first, last + 1, dtype=torch.float64) + 0.5) / n_pix


def box_position_map(
    box: torch.Tensor | Sequence[float],
    frame_hw: tuple[int, int],
    grid: tuple[int, int] | None = None,
    D: int = 16,
    full_frame: bool = False,
) -> torch.Tensor:
    """Position-encoding map of a detected box: ``(4 D, H', W')`` (or ``(B, 4 D, H', W')`` for ``(B, 4)`` boxes).

    ``box`` is ``(x1, y1, x2, y2)`` normalised to ``[0, 1]`` of the frame of ``frame_hw = (H, W)`` pixels.

    * ``full_frame=False`` (paper): samples inside the box only. ``grid=None``: one sample per frame pixel the
      box overlaps (``H' x W'`` = the box in pixels); ``grid=(h, w)``: an ``h x w`` grid of cell centres in the
      box (needed for a batch of boxes of different sizes). Every sample carries its whole-frame position.
    * ``full_frame=True``: samples over the whole frame (pixel centres, or an ``h x w`` grid of cell centres)
      with the encoding where the sample lies in the box and **zeros elsewhere**.
    """
    b = torch.as_tensor(box, dtype=torch.float64)
    if b.dim() == 2:
        if grid is None and not full_frame:
            sizes = {(len(_box_samples(float(r[1]), float(r[3]), frame_hw[0], None)),
                      len(_box_samples(float(r[0]), float(r[2]), frame_hw[1], None))) for r in b.clamp(0.0, 1.0)}
            if len(sizes) > 1:
                raise ValueError("boxes give maps of different sizes: pass grid=(h, w)")
        return torch.stack([box_position_map(row, frame_hw, grid, D, full_frame) for row in b])
    if b.shape != (4,):
        raise ValueError(f"box must be (x1, y1, x2, y2) or (B, 4), got {tuple(b.shape)}")
    x1, y1, x2, y2 = (float(v) for v in b.clamp(0.0, 1.0))
    if x2 < x1 or y2 < y1:
        raise ValueError(f"degenerate box {tuple(b.tolist())}")
    h_pix, w_pix = frame_hw
    if full_frame:
        gh, gw = grid if grid is not None else (h_pix, w_pix)
        ys = (torch.arange(gh, dtype=torch.float64) + 0.5) / gh
        xs = (torch.arange(gw, dtype=torch.float64) + 0.5) / gw
    else:
        ys = _box_samples(y1, y2, h_pix, None if grid is None else grid[0])
        xs = _box_samples(x1, x2, w_pix, None if grid is None else grid[1])
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    enc = position_encoding(2.0 * xx - 1.0, 2.0 * yy - 1.0, D).permute(2, 0, 1).contiguous()
    if full_frame:
        inside = (xx >= x1) & (xx <= x2) & (yy >= y1) & (yy <= y2)
        enc = enc * inside.to(enc.dtype)
    return enc


class PositionNet(nn.Module):
    """Position network: box map ``(B, 4D, h, w)`` -> adaptive max-pool ``pool x pool`` -> MLP -> ``F_p``.

    The MLP acts per position (1 x 1 convolutions): ``4D -> hidden -> d_model`` with a ReLU between (paper:
    64 -> 256 -> 512). ``hidden`` defaults to 256 for ``d_model = 512`` and ``d_model // 2`` otherwise.
    """

    def __init__(self, d_model: int = 512, D: int = 16, hidden: int | None = None, pool: int = 7) -> None:
        super().__init__()
        self.D = D
        self.pool_size = pool
        hidden = hidden if hidden is not None else max(d_model // 2, 1)
        self.pool = nn.AdaptiveMaxPool2d(pool)
        self.mlp = nn.Sequential(nn.Conv2d(4 * D, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, d_model, 1))

    def forward(self, pos_map: torch.Tensor) -> torch.Tensor:
        """``pos_map`` (B, 4D, h, w) from :func:`box_position_map` -> ``F_p`` (B, d_model, pool, pool)."""
        return self.mlp(self.pool(pos_map))

    def encode_boxes(
        self, boxes: torch.Tensor, frame_hw: tuple[int, int], grid: tuple[int, int] = (56, 56)
    ) -> torch.Tensor:
        """Boxes ``(B, 4)`` (normalised x1, y1, x2, y2) -> ``F_p``; the maps are sampled on a ``grid``."""
        maps = box_position_map(boxes.detach().cpu(), frame_hw, grid=grid, D=self.D)
        return self(maps.to(device=next(self.parameters()).device))


# ----------------------------------------------------------------------------------------------------------
# Vision
# ----------------------------------------------------------------------------------------------------------


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, size: int = 224) -> torch.Tensor:
    """Bilinear crops of ``images`` (B, 3, H, W) to ``boxes`` (B, 4) normalised x1, y1, x2, y2 -> (B, 3, size, size).

    The box edges map to the outer edges of the output pixels (``align_corners=False`` convention).
    """
    b = images.shape[0]
    x1, y1, x2, y2 = boxes.to(images.dtype).unbind(-1)
    theta = torch.zeros(b, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = x2 - x1
    theta[:, 0, 2] = x1 + x2 - 1.0
    theta[:, 1, 1] = y2 - y1
    theta[:, 1, 2] = y1 + y2 - 1.0
    grid = F.affine_grid(theta, [b, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class CropEncoder(nn.Module):
    """Standard ResNet-18 (output stride 32): a 224 x 224 crop in [0, 1] -> ``F_v`` (B, 8 width, 7, 7).

    ``width`` 64 is the paper's ResNet-18 (512 channels); smaller widths give small demos (16 -> 128).
    ``d_model`` (optional) adds a 1 x 1 projection when it differs from ``8 width``.
    """

    def __init__(self, width: int = 64, d_model: int | None = None) -> None:
        super().__init__()
        self.trunk = ResNet18(width, dilate_last=False)
        c = self.trunk.out_channels
        self.proj: nn.Module | None = None
        if d_model is not None and d_model != c:
            self.proj = nn.Conv2d(c, d_model, 1)
        self.out_channels = d_model if d_model is not None else c

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """``crops`` (B, 3, 224, 224) in [0, 1] -> (B, out_channels, 7, 7)."""
        x = self.trunk(crops)
        return x if self.proj is None else self.proj(x)


# ----------------------------------------------------------------------------------------------------------
# Cross-modal attention
# ----------------------------------------------------------------------------------------------------------


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H W, C), row-major over (H, W)."""
    return x.flatten(2).transpose(1, 2)


def from_tokens(tokens: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(B, H W, C) -> (B, C, H, W); inverse of :func:`to_tokens`."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *hw)


class CMALayer(nn.Module):
    """One CMA layer: ``a = LN(MHA(M, N, N) + M)``; ``out = LN(FFN(a) + a)`` (FFN: Linear-ReLU-Linear)."""

    def __init__(self, d_model: int, n_heads: int = 8, ffn_mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, ffn_mult * d_model), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(ffn_mult * d_model, d_model),
        )
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``query`` (B, Nq, d), ``kv`` (B, Nk, d) -> (output (B, Nq, d), weights (B, heads, Nq, Nk))."""
        att, weights = self.attn(query, kv, kv, need_weights=True, average_attn_weights=False)
        a = self.norm1(self.dropout(att) + query)
        return self.norm2(self.dropout(self.ffn(a)) + a), weights


class CMA(nn.Module):
    """Cross-modal attention block ``CMA(M, N, N)`` of LAVSS eq. 2: ``n_layers`` stacked :class:`CMALayer`."""

    def __init__(self, d_model: int, n_heads: int = 8, n_layers: int = 2, ffn_mult: int = 4,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.layers = nn.ModuleList(CMALayer(d_model, n_heads, ffn_mult, dropout) for _ in range(n_layers))

    def forward(
        self, query_tokens: torch.Tensor, kv_tokens: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, Nq, d) queries attend to (B, Nk, d) keys/values -> (B, Nq, d).

        With ``return_attention`` also returns each layer's weights (B, heads, Nq, Nk), rows summing to 1.
        """
        x = query_tokens
        weights: list[torch.Tensor] = []
        for layer in self.layers:
            x, w = layer(x, kv_tokens)
            weights.append(w)
        return (x, weights) if return_attention else x


class VPAttention(nn.Module):
    """Vision-position cross attention (eq. 3): ``F_vp = Conv1x1(CMA(F_v, F_p, F_p) (+) CMA(F_p, F_v, F_v))``.

    ``attention=False`` is the "w/o VP atten." ablation: the two CMA blocks are removed and
    ``F_vp = Conv1x1(F_v (+) F_p)``; the parameter count drops by exactly the two CMA blocks.

    Both inputs are layer-normalised per position (over channels) first; this is our addition. A CMA block
    adds its attention output to its query and normalises the sum, so when one modality is much larger the
    other is lost: a mono pre-trained visual network gives ``|F_v|`` about 13 per position against 0.4 when
    freshly initialised, and in ``LN(MHA(F_v, F_p) + F_v)`` the position then barely registers. Measured on
    the default config (``lavss``, pre-trained, same-type SDR): -0.25 dB without the input norms, while
    the w/o-VP-attention ablation, whose 1x1 convolution sees ``F_p`` directly, reached +4.74 dB.
    ``input_norm=False`` is the paper's block as written (no input norms; ``lavss.defaults.vp_input_norm``).
    """

    def __init__(self, d_model: int, n_heads: int = 8, n_layers: int = 2, ffn_mult: int = 4,
                 attention: bool = True, input_norm: bool = True) -> None:
        super().__init__()
        self.attention = attention
        self.cma_v: CMA | None = CMA(d_model, n_heads, n_layers, ffn_mult) if attention else None
        self.cma_p: CMA | None = CMA(d_model, n_heads, n_layers, ffn_mult) if attention else None
        self.norm_v: nn.Module = nn.LayerNorm(d_model) if input_norm else nn.Identity()
        self.norm_p: nn.Module = nn.LayerNorm(d_model) if input_norm else nn.Identity()
        self.conv = nn.Conv2d(2 * d_model, d_model, 1)

    def forward(self, f_v: torch.Tensor, f_p: torch.Tensor) -> torch.Tensor:
        """``f_v``, ``f_p`` (B, d, H, W) -> ``F_vp`` (B, d, H, W)."""
        if f_v.shape != f_p.shape:
            raise ValueError(f"F_v {tuple(f_v.shape)} and F_p {tuple(f_p.shape)} must match")
        hw = (f_v.shape[-2], f_v.shape[-1])
        tv, tp = self.norm_v(to_tokens(f_v)), self.norm_p(to_tokens(f_p))
        if self.cma_v is not None and self.cma_p is not None:
            a = from_tokens(self.cma_v(tv, tp), hw)
            b = from_tokens(self.cma_p(tp, tv), hw)
        else:
            a, b = from_tokens(tv, hw), from_tokens(tp, hw)
        return self.conv(torch.cat([a, b], dim=1))


class AVPFusion(nn.Module):
    """Multi-scale audio / visual-positional fusion at the U-Net bottleneck (eqs. 5-6).

    ``audio_channels``: channels of the U-Net down-layer outputs it reads, shallow to deep (for
    :class:`UNet`, ``[8 ngf] * 3``); the last one is the bottleneck, whose shape the output takes.
    ``forward(audio_feats, f_vp)`` uses the last ``len(audio_channels)`` (3) entries of ``audio_feats``
    (multi-scale) or only the last (``multi_scale=False``).

    Flags (each removes modules): ``attention=False`` drops both CMA blocks (``f2(F_a (+) f1(F_vp))``);
    ``multi_scale=False`` drops the two shallower projections and shrinks ``f2``; ``tile_concat=True``
    replaces everything by the Tile-Concat baseline (max-pool ``F_vp``, tile, concat, 3 x 3 conv).
    """

    def __init__(
        self,
        audio_channels: Sequence[int],
        d_model: int,
        n_heads: int = 8,
        n_layers: int = 2,
        ffn_mult: int = 4,
        vp_tokens: int = 49,
        multi_scale: bool = True,
        attention: bool = True,
        tile_concat: bool = False,
    ) -> None:
        super().__init__()
        chans = list(audio_channels)
        if not chans:
            raise ValueError("audio_channels is empty")
        self.d_model = d_model
        self.out_channels = chans[-1]
        self.tile_concat = tile_concat
        self.multi_scale = multi_scale and not tile_concat
        self.attention = attention and not tile_concat
        self.n_scales = len(chans) if self.multi_scale else 1
        self.proj: nn.ModuleList | None = None
        self.cma_a: CMA | None = None
        self.cma_vp: CMA | None = None
        self.f1: nn.Conv1d | None = None
        if tile_concat:
            self.f2 = nn.Conv2d(self.out_channels + d_model, self.out_channels, 3, padding=1)
            return
        self.proj = nn.ModuleList(nn.Conv2d(c, d_model, 1) for c in chans[len(chans) - self.n_scales:])
        if self.attention:
            self.cma_a = CMA(d_model, n_heads, n_layers, ffn_mult)
            self.cma_vp = CMA(d_model, n_heads, n_layers, ffn_mult)
        self.f1 = nn.Conv1d(vp_tokens, 1, 1)  # 1-D conv over the VP token axis -> one token
        self.f2 = nn.Conv2d(self.n_scales * 2 * d_model, self.out_channels, 3, padding=1)

    def forward(self, audio_feats: Sequence[torch.Tensor], f_vp: torch.Tensor) -> torch.Tensor:
        """``audio_feats``: U-Net down outputs (B, C_i, h_i, w_i), deepest last; ``f_vp`` (B, d, H, W).

        Returns ``F_avp`` shaped like ``audio_feats[-1]`` (the bottleneck).
        """
        bott = audio_feats[-1]
        out_hw = (bott.shape[-2], bott.shape[-1])
        if self.tile_concat:
            v = f_vp.amax(dim=(-2, -1))[:, :, None, None].expand(-1, -1, *out_hw)
            return self.f2(torch.cat([bott, v], dim=1))
        assert self.proj is not None and self.f1 is not None
        feats = list(audio_feats)[-self.n_scales:]
        if len(feats) != self.n_scales:
            raise ValueError(f"need {self.n_scales} audio feature maps, got {len(feats)}")
        maps = [p(f) for p, f in zip(self.proj, feats)]
        sizes = [(m.shape[-2], m.shape[-1]) for m in maps]
        f_a = torch.cat([to_tokens(m) for m in maps], dim=1)  # (B, Qa, d)
        t_vp = to_tokens(f_vp)  # (B, Qv, d)
        if self.cma_a is not None and self.cma_vp is not None:
            a = self.cma_a(f_a, t_vp)
            v = self.cma_vp(t_vp, f_a)
        else:
            a, v = f_a, t_vp
        v = self.f1(v).expand(-1, a.shape[1], -1)  # (B, Qa, d)
        tokens = torch.cat([a, v], dim=-1)  # (B, Qa, 2d)
        # f2: expand the token sequence back to each scale's 2-D map, bring all to the bottleneck size, conv.
        parts, start = [], 0
        for hw in sizes:
            n = hw[0] * hw[1]
            parts.append(F.adaptive_avg_pool2d(from_tokens(tokens[:, start:start + n], hw), out_hw))
            start += n
        return self.f2(torch.cat(parts, dim=1))


# ----------------------------------------------------------------------------------------------------------
# U-Net plumbing (UNet is used as is; these read its modules)
# ----------------------------------------------------------------------------------------------------------


def unet_encode(unet: UNet, x: torch.Tensor) -> list[torch.Tensor]:
    """Run the down path of ``unet`` on ``x`` (B, C_in, F, T); returns every down output, deepest last."""
    x = unet.bn0(x)
    skips = []
    for down in unet.downs:
        x = down(x)
        skips.append(x)
    return skips


def unet_decode(unet: UNet, skips: Sequence[torch.Tensor], bottleneck: torch.Tensor) -> torch.Tensor:
    """Run the up path of ``unet`` from ``bottleneck`` (e.g. ``F_avp``, shaped like ``skips[-1]``).

    ``unet`` must have ``bottleneck_channels == 0`` (the fused map replaces the bottleneck, nothing is added).
    """
    if unet.cfg.bottleneck_channels:
        raise ValueError("unet_decode expects a U-Net built with bottleneck_channels=0")
    if bottleneck.shape != skips[-1].shape:
        raise ValueError(f"bottleneck {tuple(bottleneck.shape)} must match {tuple(skips[-1].shape)}")
    n = len(unet.downs)
    x = bottleneck
    for j, up in enumerate(unet.ups):
        if j > 0:
            x = torch.cat([skips[n - 1 - j], x], dim=1)
        x = up(x)
    return x


def inflate_unet_input(unet: UNet, in_channels: int = 2) -> UNet:
    """Give a (mono pre-trained) ``unet`` ``in_channels`` inputs in place, e.g. log magnitude + cos(IPD).

    Channel 0 keeps the old BatchNorm statistics/affine and first-conv weights; the new channels get a fresh
    BatchNorm and **zero** first-conv weights, so the network initially ignores them and computes exactly
    what it computed on channel 0 (LAVSS transfers a MUSIC-trained mono separator, then adds the IPD).
    """
    old_bn: nn.BatchNorm2d = unet.bn0
    old_conv: nn.Conv2d = unet.downs[0][0]
    if old_bn.num_features != 1 or old_conv.in_channels != 1:
        raise ValueError("inflate_unet_input expects a 1-input-channel U-Net")
    bn = nn.BatchNorm2d(in_channels).to(old_conv.weight.device)
    conv = nn.Conv2d(in_channels, old_conv.out_channels, old_conv.kernel_size, old_conv.stride,
                     old_conv.padding, bias=old_conv.bias is not None).to(old_conv.weight.device)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name)[0] = getattr(old_bn, name)[0]
        bn.num_batches_tracked.copy_(old_bn.num_batches_tracked)
        conv.weight.zero_()
        conv.weight[:, :1] = old_conv.weight
        if old_conv.bias is not None:
            conv.bias.copy_(old_conv.bias)
    bn.train(old_bn.training)  # a fresh module is in training mode: keep the U-Net's mode
    conv.train(old_conv.training)
    unet.bn0 = bn
    unet.downs[0][0] = conv
    return unet
