"""Late fusion (Sound-of-Pixels): mask logit = sum_c v_c a_c, the U-Net's k feature maps a weighted by a per-source
visual vector v, without materialising the feature maps once per source.

The plain way (``feats.repeat_interleave(N)`` then ``einsum("bchw,bc->bhw")``) copies the k feature maps of every
mixture N times and runs the contraction as N x B matrix-vector products over a strided view, and its backward
sums the N copies again: on the demo's CPU training that was a fifth of the HFRA step. :func:`late_fusion` computes
the same values as one batched matrix product per mixture and, in its backward, forms the two gradients with the
same operations (and so the same floating-point rounding) as autograd does for the plain way: the feature-map
gradient as the per-source outer products summed over the sources in order, the visual-vector gradient as the same
matrix-vector products. Channels-last maps (``train.channels_last``) are used as the (B, H W, C) matrices they are
in memory, and both gradients are batched matrix products, the maps' gradient channels-last like the maps: the
same values up to rounding, without converting the largest maps of the step between layouts.
:func:`late_fusion_ears` does the same for LAVSS's per-ear maps. :func:`late_fusion_reference` is the plain way,
kept for tests.
"""

from __future__ import annotations

import torch

from avsep.models.layout import memory_format_of


def _split(feats: torch.Tensor, weights: torch.Tensor, n: int) -> tuple[int, int, int]:
    b, c = feats.shape[:2]
    if weights.shape != (b * n, c):
        raise ValueError(f"late fusion: weights {tuple(weights.shape)} do not match {b} x {n} sources of {c} channels")
    return b, c, feats[0, 0].numel()


class _LateFusion(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    def forward(ctx, feats: torch.Tensor, weights: torch.Tensor, n: int) -> torch.Tensor:
        b, c, p = _split(feats, weights, n)
        ctx.n = n
        ctx.spatial = feats.shape[2:]
        ctx.channels_last = memory_format_of(feats) == torch.channels_last
        if ctx.channels_last:  # the maps as the (B, H W, C) matrices they are in memory: no copy
            f = feats.permute(0, 2, 3, 1).reshape(b, p, c)
            ctx.save_for_backward(f, weights)
            out = torch.bmm(f, weights.reshape(b, n, c).transpose(1, 2))  # (B, H W, n)
            return out.transpose(1, 2).reshape(b * n, *feats.shape[2:])
        f = feats.reshape(b, c, p)
        ctx.save_for_backward(f, weights)
        return torch.bmm(weights.reshape(b, n, c), f).view(b * n, *feats.shape[2:])

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad: torch.Tensor):
        f, weights = ctx.saved_tensors
        n = ctx.n
        w = weights.reshape(weights.shape[0] // n, n, -1)
        b, _, c = w.shape
        g = grad.reshape(b, n, -1)
        if ctx.channels_last:  # both gradients as batched matrix products; the maps' one channels-last like them
            grad_f = grad_w = None
            if ctx.needs_input_grad[0]:
                grad_f = torch.bmm(g.transpose(1, 2), w).view(b, *ctx.spatial, c).permute(0, 3, 1, 2)
            if ctx.needs_input_grad[1]:
                grad_w = torch.bmm(g, f).view(b * n, c)
            return grad_f, grad_w, None
        p = f.shape[2]
        grad_f = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_f = w[:, 0, :, None] * g[:, 0, None, :]
            for j in range(1, n):
                grad_f.add_(w[:, j, :, None] * g[:, j, None, :])
            grad_f = grad_f.view(b, c, *ctx.spatial)
        if ctx.needs_input_grad[1]:
            grad_w = torch.stack([torch.bmm(f, g[:, j, :, None])[..., 0] for j in range(n)], dim=1).view(b * n, c)
        return grad_f, grad_w, None


def late_fusion(feats: torch.Tensor, weights: torch.Tensor, n: int = 1) -> torch.Tensor:
    """``feats`` (B, C, *S) and ``weights`` (B n, C) (row ``b n + j``: source j of mixture b) -> (B n, *S):
    ``out[b n + j] = sum_c weights[b n + j, c] feats[b, c]``."""
    _split(feats, weights, n)
    return _LateFusion.apply(feats, weights, n)


def late_fusion_reference(feats: torch.Tensor, weights: torch.Tensor, n: int = 1) -> torch.Tensor:
    """:func:`late_fusion` written plainly (the feature maps repeated per source, then an einsum)."""
    rep = feats.repeat_interleave(n, dim=0) if n > 1 else feats
    return torch.einsum("bchw,bc->bhw", rep, weights)


class _LateFusionEars(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    def forward(ctx, dec: torch.Tensor, weights: torch.Tensor, b: int, n: int, e: int) -> torch.Tensor:
        shared = dec.shape[0] == b * e  # one decoder pass per ear, shared by the sources
        k, w, t = dec.shape[1:]
        ctx.dims = (b, n, e, k, w, t, shared)
        ctx.channels_last = memory_format_of(dec) == torch.channels_last
        if not shared:
            # one pass per (ear, source): each pass's maps as the matrix they are in memory, (B E N, W T, k)
            # channels-last or (B E N, k, W T), times its source's weights; no copy of the maps
            pw = weights.view(b, 1, n, k).expand(b, e, n, k).reshape(b * e * n, k, 1)
            if ctx.channels_last:
                m = dec.permute(0, 2, 3, 1).reshape(b * e * n, w * t, k)
                out = torch.bmm(m, pw)
            else:
                m = dec.reshape(b * e * n, k, w * t)
                out = torch.bmm(pw.transpose(1, 2), m)
            ctx.save_for_backward(m, weights)
            return out.view(b, e, n, w, t).transpose(1, 2).contiguous()
        feats = dec.view(b, 1, e, k, w, t).expand(b, n, e, k, w, t)
        # the (B N, E W T, k) matrix of every source (what autograd keeps for the plain einsum's weight gradient)
        a = feats.permute(0, 1, 2, 4, 5, 3).contiguous().view(b * n, e * w * t, k)
        ctx.save_for_backward(a, weights)
        return torch.bmm(a, weights.reshape(b * n, k, 1)).view(b, n, e, w, t)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad: torch.Tensor):
        a, weights = ctx.saved_tensors
        b, n, e, k, w, t, shared = ctx.dims
        g = grad.contiguous()
        grad_dec = grad_w = None
        if ctx.needs_input_grad[0]:
            gv = g.view(b, n, e, 1, w * t)
            vv = weights.reshape(b, n, 1, k, 1)
            lead = (b, e) if shared else (b, e, n)
            # (*lead, k, W T), laid out as the decoder's maps (channels-last ones: no conversion later)
            grad_dec = (torch.empty(*lead, w * t, k, dtype=g.dtype, device=g.device).transpose(-1, -2)
                        if ctx.channels_last else torch.empty(*lead, k, w * t, dtype=g.dtype, device=g.device))
            if shared:  # sum over the sources of their outer products, in source order
                torch.mul(gv[:, 0], vv[:, 0], out=grad_dec)
                for j in range(1, n):
                    grad_dec.add_(gv[:, j] * vv[:, j])
            else:  # each (ear, source) pass gets its own outer product, in the decoder's (B, E, N) order
                torch.mul(gv.transpose(1, 2), vv.transpose(1, 2), out=grad_dec)
            grad_dec = grad_dec.view(-1, k, w, t)
        if ctx.needs_input_grad[1]:
            if shared:
                grad_w = torch.bmm(a.transpose(1, 2), g.view(b * n, e * w * t, 1)).view(b * n, k)
            else:  # per pass (the maps as saved), then summed over the ears
                gp = g.transpose(1, 2).reshape(b * e * n, w * t, 1)
                per_pass = torch.bmm(a.transpose(1, 2) if ctx.channels_last else a, gp)  # (B E N, k, 1)
                grad_w = per_pass.view(b, e, n, k).sum(dim=1).reshape(b * n, k)
        return grad_dec, grad_w, None, None, None


def late_fusion_ears(dec: torch.Tensor, weights: torch.Tensor, b: int, n: int, e: int) -> torch.Tensor:
    """LAVSS's late fusion: ``dec`` the decoder's k maps, (B E, k, W, T) from one pass per ear (shared by the
    sources) or (B E N, k, W, T) from one pass per (ear, source) in (B, E, N) order; ``weights`` (B N, k) each
    source's channel weights -> (B, N, E, W, T) ``sum_k weights[b n, k] dec[..., k, :, :]``."""
    if dec.shape[0] not in (b * e, b * e * n) or weights.shape != (b * n, dec.shape[1]):
        raise ValueError(f"late fusion: decoder maps {tuple(dec.shape)} / weights {tuple(weights.shape)} do not match "
                         f"B={b}, N={n}, E={e}")
    if e == 1:  # one ear: the einsum needs no copy (each source's maps are one matrix already), and is fast
        return late_fusion_ears_reference(dec, weights, b, n, e)
    return _LateFusionEars.apply(dec, weights, b, n, e)


def late_fusion_ears_reference(dec: torch.Tensor, weights: torch.Tensor, b: int, n: int, e: int) -> torch.Tensor:
    """:func:`late_fusion_ears` written plainly (the maps expanded or transposed per source, then an einsum)."""
    k, w, t = dec.shape[1:]
    if dec.shape[0] == b * e:
        out = dec.view(b, 1, e, k, w, t).expand(b, n, e, k, w, t)
    else:
        out = dec.view(b, e, n, k, w, t).transpose(1, 2)
    return torch.einsum("bnekwt,bnk->bnewt", out, weights.view(b, n, -1))
