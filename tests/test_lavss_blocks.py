"""LAVSS building blocks: binaural features, position encoding, CMA / VP / AVP modules, masks and loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from avsep.audio.binaural import audio_features, phase_difference
from avsep.audio.frontend import FrontendConfig, stft, warp
from avsep.data.prepare.spatial import spatialize
from avsep.losses.binaural import lavss_gt_masks, lavss_loss, lavss_loss_terms
from avsep.models.hfra.config import UNetConfig
from avsep.models.hfra.unet import UNet, count_parameters
from avsep.models.lavss.blocks import (
    CMA,
    AVPFusion,
    CropEncoder,
    PositionNet,
    VPAttention,
    box_position_map,
    crop_boxes,
    inflate_unet_input,
    position_encoding,
    unet_decode,
    unet_encode,
)

CFG = FrontendConfig()


def _wrap(a: torch.Tensor) -> torch.Tensor:
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi


# ---------------------------------------------------------------- position encoding


def test_position_encoding_matches_formula_and_order():
    x, y = 0.5, -0.25
    enc = position_encoding(x, y, D=16)
    assert enc.shape == (64,)
    expected = []
    for k in range(16):
        f = (2.0**k) * math.pi
        expected += [math.sin(f * x), math.cos(f * x), math.sin(f * y), math.cos(f * y)]
    assert torch.allclose(enc, torch.tensor(expected, dtype=torch.float32), atol=1e-6)
    # a few hand values: sin(pi/2) = 1, cos(pi/2) = 0, sin(-pi/4), cos(-pi/4); 2pi x = pi
    assert enc[:4].tolist() == pytest.approx([1.0, 0.0, -math.sqrt(0.5), math.sqrt(0.5)], abs=1e-6)
    assert enc[4:6].tolist() == pytest.approx([0.0, -1.0], abs=1e-6)
    assert position_encoding(torch.zeros(3, 5), torch.zeros(3, 5), D=4).shape == (3, 5, 16)


def test_box_map_covers_the_box_in_frame_coordinates():
    hw = (720, 1280)
    box = (0.25, 0.5, 0.5, 0.75)
    m = box_position_map(box, hw)
    assert m.shape == (64, 180, 320)  # the box in pixels
    # top-left sample = centre of frame pixel (row 360, col 320) in [-1, 1] frame coordinates
    x0, y0 = 2 * (320 + 0.5) / 1280 - 1, 2 * (360 + 0.5) / 720 - 1
    assert torch.allclose(m[:, 0, 0], position_encoding(x0, y0), atol=1e-6)
    # the same-size box elsewhere in the frame encodes differently
    assert not torch.allclose(m, box_position_map((0.5, 0.0, 0.75, 0.25), hw))
    g = box_position_map(box, hw, grid=(4, 8))
    assert g.shape == (64, 4, 8)
    x_c, y_c = 2 * (0.25 + 0.5 * 0.25 / 8) - 1, 2 * (0.5 + 0.5 * 0.25 / 4) - 1
    assert torch.allclose(g[:, 0, 0], position_encoding(x_c, y_c), atol=1e-6)
    batch = box_position_map(torch.tensor([box, (0.0, 0.0, 1.0, 1.0)]), hw, grid=(7, 7), D=4)
    assert batch.shape == (2, 16, 7, 7)
    with pytest.raises(ValueError):
        box_position_map(torch.tensor([box, (0.0, 0.0, 1.0, 1.0)]), hw)  # sizes differ without a grid


def test_full_frame_box_map_is_zero_outside_the_box():
    hw = (72, 128)
    box = (0.25, 0.5, 0.5, 0.75)
    m = box_position_map(box, hw, D=16, full_frame=True)
    assert m.shape == (64, 72, 128)
    inside = torch.zeros(72, 128, dtype=torch.bool)
    inside[36:54, 32:64] = True
    assert torch.count_nonzero(m[:, ~inside]) == 0
    assert torch.allclose(m[:, inside].reshape(64, 18, 32), box_position_map(box, hw), atol=1e-6)


def test_position_net_shape():
    net = PositionNet(d_model=32, D=16)
    fp = net.encode_boxes(torch.tensor([[0.1, 0.2, 0.4, 0.9], [0.5, 0.5, 1.0, 1.0]]), (720, 1280), grid=(20, 20))
    assert fp.shape == (2, 32, 7, 7)
    assert count_parameters(PositionNet(d_model=512)) == 64 * 256 + 256 + 256 * 512 + 512  # 64 -> 256 -> 512


# ---------------------------------------------------------------- binaural features


def test_ipd_of_a_known_delay():
    d = 40  # the left channel lags the right by d samples
    g = torch.Generator().manual_seed(0)
    src = torch.randn(32768 + 100, generator=g)
    right, left = src[100 : 100 + 32768], src[100 - d : 100 - d + 32768]
    spec = stft(torch.stack([left, right])[None], CFG)[0]
    p = phase_difference(spec[0], spec[1])
    assert p.shape == spec.shape[1:]
    pi32 = float(torch.tensor(math.pi))  # float32 pi rounds up
    assert float(p.min()) > -pi32 and float(p.max()) <= pi32
    k = torch.arange(1, 30)
    expected = _wrap(-2 * math.pi * (k * CFG.sample_rate / CFG.n_fft) * d / CFG.sample_rate)  # wraps above k=12
    circ_mean = torch.angle(torch.exp(1j * p[k].double()).mean(-1))
    assert torch.all(_wrap(circ_mean - expected).abs() < 0.1)


def test_ipd_wraps_minus_pi_to_plus_pi():
    a = torch.tensor([-1.0 + 0j, 1.0 + 0j])
    b = torch.tensor([1.0 + 0j, 1.0 + 0j])
    p = phase_difference(torch.complex(a.real, torch.tensor([-0.0, 0.0])), b)
    assert p.tolist() == pytest.approx([math.pi, 0.0])


@pytest.mark.parametrize("azimuth_deg, sign", [(60.0, -1.0), (-60.0, 1.0)])
def test_ipd_sign_follows_the_source_side(azimuth_deg, sign):
    mono = np.random.default_rng(1).standard_normal(32768).astype(np.float32)
    st = torch.from_numpy(spatialize(mono, CFG.sample_rate, math.radians(azimuth_deg)))
    spec = stft(st[None], CFG)[0]
    low = phase_difference(spec[0], spec[1])[1:20].mean(-1)  # ITD ~5.4 samples: no wrapping below bin 20
    assert torch.all(sign * low > 0)


def test_binaural_features_layout():
    mono = np.random.default_rng(2).standard_normal(16384).astype(np.float32)
    st = torch.from_numpy(spatialize(mono, CFG.sample_rate, math.radians(45)))[None].repeat(2, 1, 1)
    feats, spec = audio_features(st, CFG, ipd=True)
    assert feats.shape == (2, 2, 2, CFG.warp_bins, 16384 // CFG.hop + 1)
    assert torch.equal(spec, stft(st, CFG))
    assert torch.allclose(feats[:, :, 0], torch.log(warp(spec.abs(), CFG) + 1e-10), atol=1e-5)
    assert torch.equal(feats[:, 0, 1], feats[:, 1, 1])  # cos(IPD) is shared by the ears
    assert float(feats[:, :, 1].abs().max()) <= 1.0 + 1e-6
    assert not torch.allclose(feats[:, 0, 0], feats[:, 1, 0])  # the ears' magnitudes differ


# ---------------------------------------------------------------- attention blocks


def test_cma_shapes_and_attention_normalised():
    torch.manual_seed(0)
    cma = CMA(32, n_heads=8, n_layers=2)
    q, kv = torch.randn(3, 10, 32), torch.randn(3, 49, 32)
    out, weights = cma(q, kv, return_attention=True)
    assert out.shape == (3, 10, 32)
    assert len(weights) == 2
    for w in weights:
        assert w.shape == (3, 8, 10, 49)
        assert torch.allclose(w.sum(-1), torch.ones(3, 8, 10), atol=1e-5)
    assert torch.equal(cma(q, kv), out)
    with pytest.raises(ValueError):
        CMA(30, n_heads=8)


def test_vp_attention_halves_channels_and_ablation_removes_exactly_the_cmas():
    torch.manual_seed(0)
    d = 32
    vp = VPAttention(d, n_heads=8)
    assert vp.conv.in_channels == 2 * d and vp.conv.out_channels == d
    fv, fp = torch.randn(2, d, 7, 7), torch.randn(2, d, 7, 7)
    assert vp(fv, fp).shape == (2, d, 7, 7)
    plain = VPAttention(d, n_heads=8, attention=False)
    assert plain(fv, fp).shape == (2, d, 7, 7)
    assert plain.cma_v is None and plain.cma_p is None
    removed = count_parameters(vp.cma_v) + count_parameters(vp.cma_p)
    assert removed > 0
    assert count_parameters(vp) - count_parameters(plain) == removed


@pytest.mark.parametrize("attention", [True, False])
def test_vp_block_weighs_both_modalities_whatever_the_scale_of_f_v(attention):
    # A pre-trained visual network's F_v is ~30x larger than a fresh one's; the position must still register.
    torch.manual_seed(1)
    d = 16
    vp = VPAttention(d, n_heads=4, attention=attention).eval()
    fv, fp = torch.randn(2, d, 2, 2), torch.randn(2, d, 2, 2)
    with torch.no_grad():
        out = vp(fv, fp)
        assert torch.allclose(vp(30.0 * fv, fp), out, atol=1e-4)  # the input norms remove the scale of each input
        assert torch.allclose(vp(fv, 30.0 * fp), out, atol=1e-4)
        moved = vp(30.0 * fv, fp.flip(0)) - vp(30.0 * fv, fp)  # another position changes F_vp as much at any scale
        assert moved.abs().mean() > 0.1 * out.abs().mean()


def _audio_feats(ngf: int = 4, size: int = 128) -> tuple[UNet, list[torch.Tensor]]:
    unet = UNet(UNetConfig(ngf=ngf, out_channels=1))
    inflate_unet_input(unet, 2)
    skips = unet_encode(unet, torch.randn(2, 2, size, size))
    return unet, skips


def test_avp_fusion_shapes_and_ablation_parameter_counts():
    torch.manual_seed(0)
    d = 32
    unet, skips = _audio_feats()
    chans = [f.shape[1] for f in skips[-3:]]
    fvp = torch.randn(2, d, 7, 7)
    full = AVPFusion(chans, d, n_heads=8)
    variants = {
        "full": full,
        "no_attention": AVPFusion(chans, d, n_heads=8, attention=False),
        "single_scale": AVPFusion(chans, d, n_heads=8, multi_scale=False),
        "tile_concat": AVPFusion(chans, d, n_heads=8, tile_concat=True),
    }
    for name, mod in variants.items():
        out = mod(skips, fvp)
        assert out.shape == skips[-1].shape, name
        assert unet_decode(unet, skips, out).shape == (2, 1, 128, 128), name
    n = {k: count_parameters(v) for k, v in variants.items()}
    # w/o AVP attention: exactly the two CMA blocks are gone
    assert n["full"] - n["no_attention"] == count_parameters(full.cma_a) + count_parameters(full.cma_vp)
    # w/o multi-scale: the two shallower projections and 2 * (2d) input channels of f2's 3x3 conv are gone
    c_out = chans[-1]
    assert n["full"] - n["single_scale"] == (
        count_parameters(full.proj[0]) + count_parameters(full.proj[1]) + 2 * (2 * d) * c_out * 9
    )
    # Tile-Concat: no attention, no projections, no f1; smaller than every other variant
    assert n["tile_concat"] == (c_out + d) * c_out * 9 + c_out
    assert n["tile_concat"] < min(n["no_attention"], n["single_scale"])


def test_avp_output_follows_the_visual_positional_input():
    torch.manual_seed(0)
    d = 32
    _, skips = _audio_feats()
    chans = [f.shape[1] for f in skips[-3:]]
    for kwargs in ({}, {"attention": False}, {"multi_scale": False}, {"tile_concat": True}):
        mod = AVPFusion(chans, d, n_heads=8, **kwargs).eval()
        with torch.no_grad():
            a = mod(skips, torch.randn(2, d, 7, 7))
            b = mod(skips, torch.randn(2, d, 7, 7))
        assert not torch.allclose(a, b), kwargs


def test_inflated_unet_ignores_the_new_channel_at_first():
    torch.manual_seed(0)
    unet = UNet(UNetConfig(ngf=4, out_channels=1)).eval()
    x = torch.randn(1, 1, 128, 128)
    with torch.no_grad():
        ref, _ = unet(x)
        inflate_unet_input(unet, 2)
        out, _ = unet(torch.cat([x, torch.randn_like(x)], dim=1))
    assert torch.allclose(ref, out, atol=1e-6)


def test_crop_encoder_and_crops():
    torch.manual_seed(0)
    enc = CropEncoder(width=4).eval()
    assert enc.out_channels == 32
    images = torch.rand(2, 3, 72, 128)
    crops = crop_boxes(images, torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.25, 0.5, 0.5, 0.75]]), size=224)
    assert crops.shape == (2, 3, 224, 224)
    # the full box of a 224 x 224 image is the image itself
    img = torch.rand(1, 3, 224, 224)
    assert torch.allclose(crop_boxes(img, torch.tensor([[0.0, 0.0, 1.0, 1.0]])), img, atol=1e-4)
    with torch.no_grad():
        assert enc(crops).shape == (2, 32, 7, 7)
    assert CropEncoder(width=4, d_model=16).out_channels == 16


# ---------------------------------------------------------------- masks and loss


def test_gt_masks_complement_for_two_sources():
    g = torch.Generator().manual_seed(0)
    mags = torch.rand(3, 2, 2, 16, 20, generator=g)  # (B, N, ears, W, T)
    mags[0, 1, 0, 0, 0] = mags[0, 0, 0, 0, 0]  # a tie goes to the first source
    m = lavss_gt_masks(mags)
    assert m.shape == mags.shape
    assert torch.equal(m[:, 0] + m[:, 1], torch.ones_like(m[:, 0]))
    assert torch.equal(m[:, 0], (mags[:, 0] >= mags[:, 1]).float())
    assert m[0, 0, 0, 0, 0] == 1
    # the Sound-of-Pixels rule on a mixture magnitude
    half = lavss_gt_masks(mags, mix_mag=mags.sum(1), mode="half_mixture")
    assert torch.equal(half, (mags > 0.5 * mags.sum(1, keepdim=True)).float())
    with pytest.raises(ValueError):
        lavss_gt_masks(mags, mode="mixture")


def test_loss_zero_for_perfect_prediction_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    gt = (torch.rand(2, 2, 2, 16, 20, generator=g) > 0.5).float()
    ref = torch.randn(2, 2, 2, 400, generator=g)
    pred = gt.clone().requires_grad_(True)
    loss = lavss_loss(pred, gt, ref.clone(), ref)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    noisy = (gt * 0.8 + 0.1).requires_grad_(True)
    bad = lavss_loss(noisy, gt, ref + 0.01, ref).detach()
    assert float(bad) > 0
    # terms: |diff| = 0.1 everywhere -> L1 = RMS = 0.1 per (source, ear) pair, 4 pairs; time = 0.01 x 4 pairs
    t = lavss_loss_terms(noisy.detach(), gt, ref + 0.01, ref)
    assert float(t["l1"]) == pytest.approx(0.4, rel=1e-5)
    assert float(t["l2"]) == pytest.approx(0.4, rel=1e-5)
    assert float(t["time"]) == pytest.approx(0.04, rel=1e-4)
    assert float(bad) == pytest.approx(0.4 + 0.5 * 0.4 + 0.25 * 0.04, rel=1e-5)
    sq = lavss_loss_terms(noisy.detach(), gt, ref, ref, squared_l2=True)
    assert float(sq["l2"]) == pytest.approx(4 * 0.01, rel=1e-4)
    assert float(lavss_loss(gt, gt, ref + 0.01, ref)) > 0  # the waveform term alone
