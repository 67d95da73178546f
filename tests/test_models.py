import pytest
import torch

from avsep.models.hfra.config import SeparatorConfig, UNetConfig, VisualConfig
from avsep.models.hfra.separator import AVSeparator
from avsep.models.hfra.unet import UNet, count_parameters


def test_unet7_parameter_count_matches_reference():
    # ngf 64 with a 32-channel output: the Sound-of-Pixels / CLIPSep U-Net.
    assert count_parameters(UNet(UNetConfig(ngf=64, out_channels=32))) == 30_274_210


def test_unet7_shapes_and_bottleneck():
    net = UNet(UNetConfig(ngf=4, out_channels=32))
    out, bott = net(torch.randn(2, 1, 256, 256))
    assert out.shape == (2, 32, 256, 256)
    assert bott.shape == (2, 32, 2, 2)


def _small(fusion: str, kind: str = "frames") -> AVSeparator:
    torch.manual_seed(0)
    cfg = SeparatorConfig(
        fusion=fusion, unet=UNetConfig(ngf=4), visual=VisualConfig(kind=kind, width=8, frame_size=64, n_frames=2)
    )
    return AVSeparator(cfg).eval()


@pytest.mark.parametrize("fusion", ["late", "middle", "hierarchical"])
def test_mask_of_each_source_depends_on_its_own_visual_input_only(fusion):
    net = _small(fusion)
    log_mag = torch.randn(2, 1, 256, 256)
    frames = torch.rand(2, 2, 2, 3, 64, 64)
    with torch.no_grad():
        a = net(log_mag, frames)["logits"]
        changed = frames.clone()
        changed[:, 1] = torch.rand_like(changed[:, 1])
        b = net(log_mag, changed)["logits"]
    assert a.shape == (2, 2, 256, 256)
    assert torch.equal(a[:, 0], b[:, 0])  # source 0's mask ignores source 1's frames
    assert not torch.allclose(a[:, 1], b[:, 1])  # source 1's mask follows its frames


def test_fusions_differ_in_output_channels():
    assert _small("late").unet.cfg.out_channels == 32
    assert _small("middle").unet.cfg.out_channels == 1
    assert _small("middle").unet.cfg.bottleneck_channels == 32


def test_config_round_trip_through_dict():
    cfg = _small("hierarchical", "embedding").cfg
    assert SeparatorConfig.from_dict(cfg.to_dict()) == cfg
