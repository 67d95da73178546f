import math

import numpy as np
import torch

from avsep.audio.frontend import FrontendConfig, istft, stft, unwarp, unwarp_positions, warp, warp_positions

CFG = FrontendConfig()


def test_stft_shape_matches_reference_sizes():
    spec = stft(torch.randn(3, CFG.clip_samples), CFG)
    assert spec.shape == (3, 512, 256)
    assert CFG.n_freq == 512 and CFG.n_frames == 256


def test_stft_istft_reconstruction():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, CFG.clip_samples, generator=gen) * 0.3
    y = istft(stft(x, CFG), CFG)
    assert y.shape == x.shape
    assert torch.max(torch.abs(x - y)).item() < 1e-5


def test_tone_lands_in_its_bin():
    sr, f0 = CFG.sample_rate, 1000.0
    t = torch.arange(CFG.clip_samples) / sr
    spec = stft(torch.sin(2 * math.pi * f0 * t)[None], CFG).abs()[0].mean(-1)
    peak_hz = spec.argmax().item() * sr / CFG.n_fft
    assert abs(peak_hz - f0) <= sr / CFG.n_fft


def test_warp_reads_documented_rows():
    pos = warp_positions(512, 256)
    assert pos[0].item() == 0.0
    assert abs(pos[-1].item() - 511.0) < 1e-9
    i = 100
    assert abs(pos[i].item() - 511 * (21 ** (i / 255) - 1) / 20) < 1e-9
    # Warping a ramp that equals the linear bin index returns the documented positions.
    ramp = torch.arange(512, dtype=torch.float32)[None, None, :, None].expand(1, 1, 512, 4)
    out = warp(ramp, CFG)[0, 0, :, 0].double()
    assert torch.allclose(out, pos, atol=1e-3)


def test_unwarp_is_inverse_map():
    back = warp_positions(512, 256)[torch.arange(0, 256, 17)]
    inv = unwarp_positions(512, 256)
    # unwarp_positions(warp_positions(i)) == i at the sampled rows (via interpolation of the inverse map)
    lin = np.interp(back.numpy(), np.arange(512), inv.numpy())
    assert np.allclose(lin, np.arange(0, 256, 17), atol=0.05)


def test_warp_unwarp_round_trip_on_smooth_spectra():
    f = torch.linspace(0, 1, 512)[None, None, :, None].expand(2, 1, 512, 256)
    smooth = 1.0 + torch.sin(3 * f) * torch.linspace(0.5, 1, 256)
    rt = unwarp(warp(smooth, CFG), CFG)
    assert rt.shape == smooth.shape
    assert torch.max(torch.abs(rt - smooth)).item() < 1e-3
    w = torch.linspace(0, 1, 256)[None, None, :, None].expand(1, 1, 256, 256)
    assert torch.max(torch.abs(warp(unwarp(w, CFG), CFG) - w)).item() < 1e-3
