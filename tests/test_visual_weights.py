"""Pre-trained ResNet-18 weights are loaded where a config names them (HFRA's frame encoder, LAVSS's crop
encoder), in torchvision's key format or our own, and a file that does not fit is a clear error."""

import pytest
import torch
import torchvision

from avsep.engine.hfra import HFRATask
from avsep.engine.lavss import build_model
from avsep.models.hfra.config import SeparatorConfig, UNetConfig, VisualConfig
from avsep.models.hfra.visual import ResNet18, load_resnet18_weights
from avsep.models.lavss.config import LAVSSConfig


def _torchvision_names(state: dict) -> dict:
    """Our trunk's state dict under torchvision's resnet18 key names (what an ImageNet file holds)."""
    out = {}
    for k, v in state.items():
        k = k.replace("stem.0.", "conv1.", 1) if k.startswith("stem.0.") else k
        k = k.replace("stem.1.", "bn1.", 1) if k.startswith("stem.1.") else k
        out[k.replace(".down.", ".downsample.")] = v
    return out


def _random_state(trunk: ResNet18, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.rand(v.shape, generator=g) + 0.5 if v.is_floating_point() else v.clone())
            for k, v in trunk.state_dict().items()}


def test_torchvision_resnet18_file_loads_and_computes_torchvisions_features(tmp_path):
    tv = torchvision.models.resnet18(weights=None).eval()
    torch.save(tv.state_dict(), tmp_path / "resnet18.pth")
    ours = ResNet18(64, dilate_last=False).eval()
    load_resnet18_weights(ours, str(tmp_path / "resnet18.pth"))
    x = torch.rand(2, 3, 64, 64)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    z = (x - mean) / std
    ref = tv.layer4(tv.layer3(tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(z))))))))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref.detach(), rtol=1e-4, atol=1e-5)


def test_hfra_frames_variant_starts_from_the_named_weights(tmp_path):
    def cfg(weights: str) -> SeparatorConfig:
        return SeparatorConfig(fusion="late", k=4, unet=UNetConfig(ngf=2, num_downs=5),
                               visual=VisualConfig(kind="frames", width=2, frame_size=32, n_frames=1, weights=weights))

    state = _random_state(ResNet18(2), seed=1)
    torch.save({**_torchvision_names(state), "fc.weight": torch.zeros(1000, 16)}, tmp_path / "w.pt")
    torch.manual_seed(0)
    fresh = HFRATask(cfg("random"), data=None).build()
    torch.manual_seed(0)
    loaded = HFRATask(cfg(str(tmp_path / "w.pt")), data=None).build()
    for k, v in state.items():
        assert torch.equal(loaded.frame_encoder.trunk.state_dict()[k], v), k
    frames = torch.rand(2, 1, 3, 32, 32)
    fresh.eval(), loaded.eval()
    assert not torch.allclose(fresh.frame_encoder(frames), loaded.frame_encoder(frames))
    # the rest of the network is the same seeded random start in both
    for k, v in fresh.unet.state_dict().items():
        assert torch.equal(v, loaded.unet.state_dict()[k]), k


def test_lavss_crop_encoder_starts_from_the_named_weights(tmp_path):
    arch = dict(backbone="sop", visual="crop", position=False, ipd=False, bottleneck_fusion=False, ngf=2, num_downs=5,
                k=4, visual_width=2, crop_size=32, image_size=48, d_model=8)
    state = _random_state(ResNet18(2, dilate_last=False), seed=2)
    torch.save(state, tmp_path / "own_names.pt")  # this module's own key names load too
    model, _ = build_model(LAVSSConfig(**arch, visual_weights=str(tmp_path / "own_names.pt")))
    for k, v in state.items():
        assert torch.equal(model.crop_encoder.trunk.state_dict()[k], v), k
    fresh, _ = build_model(LAVSSConfig(**arch))
    assert not torch.equal(fresh.crop_encoder.trunk.state_dict()["stem.0.weight"], state["stem.0.weight"])


def test_weights_that_do_not_fit_are_a_clear_error(tmp_path):
    trunk = ResNet18(2)
    torch.save(_random_state(ResNet18(4), seed=3), tmp_path / "wide.pt")
    with pytest.raises(ValueError, match=r"wide\.pt is not a ResNet-18 state dict for this trunk \(width 2\): .*another shape"):
        load_resnet18_weights(trunk, str(tmp_path / "wide.pt"))
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other\.pt .* missing: .*unexpected: conv\.weight"):
        load_resnet18_weights(trunk, str(tmp_path / "other.pt"))
    with pytest.raises(FileNotFoundError, match=r"visual_weights: nope\.pt is neither a weights file"):
        load_resnet18_weights(trunk, "nope.pt")
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    load_resnet18_weights(trunk, "random")
    assert all(torch.equal(before[k], v) for k, v in trunk.state_dict().items())


def test_a_local_weights_file_is_an_input_of_the_training_job(tmp_path):
    from workflow_helpers import copy_workflow, default_params, snakemake, write_params

    copy_workflow(tmp_path)
    torch.save(_random_state(ResNet18(16), seed=4), tmp_path / "r18.pt")
    p = default_params()
    p["model_defaults"]["visual_weights"] = "r18.pt"
    write_params(tmp_path, p)
    res = snakemake(tmp_path, "-n", "models/synth-music/sop/checkpoint.pt")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-2000:]
    train_job = out[out.index("rule train:"):]
    assert "r18.pt" in train_job[: train_job.index("jobid")]
