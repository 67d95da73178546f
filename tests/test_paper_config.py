"""The papers' protocol (params/paper.yaml, params/hfra-code.yaml, params/lavss-code.yaml): it validates, plans every
table without network, builds every model at the papers' sizes with the parameter counts derived here by hand, and
runs the real training path at that size on synthetic clips (CPU, 1 step of batch 2 per model)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from workflow_helpers import ROOT, copy_workflow, default_params, snakemake, write_params

from avsep.config.paper import on_synthetic_data, paper_params
from avsep.config.params import ConfigError, Params
from avsep.engine import checkpoint
from avsep.models.hfra.separator import AVSeparator
from avsep.models.hfra.unet import count_parameters
from avsep.models.lavss.config import LAVSSConfig
from avsep.models.lavss.network import LAVSSNet

# ---------------------------------------------------------------------------------------------------------
# Parameter counts, derived from the papers' architectures (not from the code)
# ---------------------------------------------------------------------------------------------------------


def unet_count(ngf: int, levels: int, in_c: int, out_c: int, cond: int = 0) -> int:
    """CLIPSep's U-Net7: input BatchNorm; 4x4 stride-2 down-convs without bias, BatchNorm on all but the first and the
    innermost; 3x3 up-convs without bias + BatchNorm, the outermost with bias and no norm; skips concatenated;
    ``cond`` channels tiled onto the bottleneck (middle fusion)."""
    ch = [ngf * min(2**i, 8) for i in range(levels)]
    n = 2 * in_c  # input BatchNorm
    prev = in_c
    for i, c in enumerate(ch):
        n += prev * c * 16 + (2 * c if 0 < i < levels - 1 else 0)
        prev = c
    for j in range(levels):
        level = levels - 1 - j
        c_in = ch[level] + cond if j == 0 else 2 * ch[level]
        n += c_in * out_c * 9 + out_c if level == 0 else c_in * ch[level - 1] * 9 + 2 * ch[level - 1]
    return n


RESNET18 = 11_176_512  # torchvision resnet18: 11,689,512 parameters, minus its fc layer 512 x 1000 + 1000


def test_unet_and_resnet_counts_by_hand():
    # ngf 64, 7 levels, 1 -> 32 channels:
    #   input BN 2; downs 1.64.16 + 64.128.16 + 128.256.16 + 256.512.16 + 3 x 512.512.16 = 15,336,448 weights,
    #   BN of levels 2-6: 2 (128 + 256 + 512 + 512 + 512) = 3,840;
    #   ups (512 + 1024 + 1024) . 512 . 9 + 1024 . 256 . 9 + 512 . 128 . 9 + 256 . 64 . 9 = 14,893,056 weights,
    #   their BN 2 (512 + 512 + 512 + 256 + 128 + 64) = 3,968; the outermost 128 . 32 . 9 + 32 = 36,896.
    assert unet_count(64, 7, 1, 32) == 2 + 15_336_448 + 3_840 + 14_893_056 + 3_968 + 36_896 == 30_274_210
    # CLIPSep middle fusion: 32 tiled channels add 32 . 512 . 9 to the innermost up-conv; 1 output channel
    assert unet_count(64, 7, 1, 1, cond=32) == 30_274_210 + 147_456 - 36_896 + (128 * 9 + 1)
    from avsep.models.hfra.visual import ResNet18

    assert count_parameters(ResNet18(64)) == RESNET18


def linear(i: int, o: int) -> int:
    return i * o + o


def cma_count(d: int, layers: int, ffn_mult: int) -> int:
    """LAVSS eq. 2: ``n_layers`` x (multi-head attention 4 d^2 + 4 d, LayerNorm, FFN d -> f d -> d, LayerNorm)."""
    f = ffn_mult * d
    return layers * (4 * d * d + 4 * d + 2 * d + linear(d, f) + linear(f, d) + 2 * d)


def hfra_count(fusion: str, visual: str, k: int, middle_dim: int, ngf: int, levels: int, width: int) -> int:
    """HFRA eq. 5 / CLIPSep / Sound-of-Pixels heads on the U-Net (no alignment head: ``align_head none``)."""
    late, middle = fusion in ("late", "hierarchical"), fusion in ("middle", "hierarchical")
    n = unet_count(ngf, levels, 1, k if late else 1, cond=middle_dim if middle else 0)
    if visual == "frames":  # ResNet-18 + 3x3 conv to the fusion width (Sound-of-Pixels)
        n += RESNET18 * (width // 64) ** 2 + 8 * width * (k if late else middle_dim) * 9 + (k if late else middle_dim)
    else:  # Proj1 = Linear(512 -> k) (late), Proj2 = Linear(512 -> middle_dim) (middle)
        n += (linear(512, k) if late else 0) + (linear(512, middle_dim) if middle else 0)
    return n + (k + 1 if late else 0)  # the late fusion's per-channel scale and bias


def lavss_count(a: LAVSSConfig) -> int:
    """LAVSS (fig. 3): U-Net (log magnitude + IPD channels in), ResNet-18 crop encoder, PositionNet 4D -> 256 -> 512,
    VP attention (two CMA blocks, 1x1 conv 2d -> d), AVP fusion (1x1 projections of the last 3 down maps, two CMA
    blocks, a 1-D conv over the 49 VP tokens, a 3x3 conv 3 . 2d -> 512), or the Sound-of-Pixels late head."""
    assert a.visual_width == 64 and a.d_model == 8 * a.visual_width  # no projection after the ResNet-18
    d, c = a.d_model, 8 * a.ngf
    n = unet_count(a.ngf, a.num_downs, a.in_channels, a.k if a.backbone == "sop" else 1) + RESNET18
    if a.position:
        n += linear(4 * a.pos_D, a.pos_hidden) + linear(a.pos_hidden, d)
        n += (2 * cma_count(d, a.n_layers, a.ffn_mult) if a.vp_attention else 0) + linear(2 * d, d)
        n += 4 * d if a.vp_input_norm else 0
    if a.bottleneck_fusion:
        if a.tile_concat:
            n += (c + d) * c * 9 + c
        else:
            scales = 3 if a.multi_scale else 1
            n += scales * linear(c, d) + (2 * cma_count(d, a.n_layers, a.ffn_mult) if a.avp_attention else 0)
            n += linear(a.pool**2, 1) + scales * 2 * d * c * 9 + c
    if a.backbone == "sop":
        n += linear(d, a.k) + a.k + 1
    return n


def test_every_paper_model_has_the_derived_parameter_count():
    p = Params(paper_params())
    hfra = {}
    for name, v in p.models.items():
        s = v.separator
        assert (s.unet.ngf, s.unet.num_downs, s.visual.width, s.align_head) == (64, 7, 64, "none"), name
        want = hfra_count(s.fusion, s.visual.kind, s.k, s.middle_dim, s.unet.ngf, s.unet.num_downs, s.visual.width)
        hfra[name] = count_parameters(AVSeparator(s))
        assert hfra[name] == want, name
    # Sound-of-Pixels: 30,274,210 + ResNet-18 11,176,512 + 3x3 conv 512 -> 32 (147,488) + scale/bias 33
    assert hfra["sop"] == 41_598_243
    # HFRA: U-Net with 512 tiled channels (+ 512 . 512 . 9) + Proj1 16,416 + Proj2 262,656 + 33
    assert hfra["hfra"] == hfra["hfra_align"] == 30_274_210 + 2_359_296 + 16_416 + 262_656 + 33 == 32_912_611
    lp = p.lavss
    counts = {}
    for name, v in {**{f"pre:{k}": type("V", (), {"arch": a}) for k, a in lp.pretrain.items()}, **lp.variants}.items():
        a = v.arch
        assert (a.ngf, a.num_downs, a.d_model, a.crop_size, a.pos_D, a.n_heads, a.n_layers) == (64, 7, 512, 224, 16, 8, 2)
        counts[name] = count_parameters(LAVSSNet(a))
        assert counts[name] == lavss_count(a), name
    # LAVSS (2.5D-sep backbone, cos IPD): U-Net 2 -> 1 channels 30,239,493, ResNet-18 11,176,512, PositionNet 148,224,
    # VP 2 x 4,205,568 + 524,800, AVP 3 x 262,656 + 2 x 4,205,568 + 50 + 14,156,288
    assert counts["lavss"] == 30_239_493 + RESNET18 + 148_224 + 8_935_936 + 23_355_442 == 73_855_607


# ---------------------------------------------------------------------------------------------------------
# Validation and planning
# ---------------------------------------------------------------------------------------------------------


def test_paper_config_sets_the_papers_front_ends_and_schedules():
    p = Params(paper_params())
    assert (p.frontend.sample_rate, p.frontend.n_fft, p.frontend.clip_samples, p.frontend.warp_bins) == (11625, 1024, 65535, 256)
    assert (p.train.batch_size, p.train.lr, p.train.lr_milestones) == (32, 1e-4, (90750,))
    lp = p.lavss
    assert (lp.frontend.sample_rate, lp.frontend.n_fft, lp.frontend.warp_bins) == (11025, 1022, 256)
    assert p.extract_rate("fairplay") == 11025 and p.extract_rate("music") == 11625
    assert (lp.train.weighting, lp.train.mirror, lp.mask_threshold, lp.train.lr_visual) == ("none", 0.0, 0.5, 5e-5)
    a = lp.variants["lavss"].arch
    assert a.ipd_features == ("cos",) and not a.vp_input_norm and not a.vp_residual
    assert {m.separator.sep_loss for m in p.models.values()} == {"l1_spec"}
    code = Params(paper_params("params/hfra-code.yaml"))
    assert (code.train.lr, code.train.lr_schedule, code.train.warmup_steps, code.train.decay_steps) == (
        1e-3, "warmup_linear", 5000, 100000)
    assert {m.separator.sep_loss for m in code.models.values()} == {"bce"}
    lcode = Params(paper_params("params/lavss-code.yaml")).lavss
    assert (lcode.train.alpha, lcode.train.beta, lcode.train.weighting, lcode.mask_threshold) == (0.0, 0.0, "magnitude", None)


def test_paper_depth_refuses_the_demo_spectrogram():
    raw = paper_params()
    raw["audio"]["warp_bins"] = 128  # 128 rows at 7 levels: a 1 x 1 bottleneck
    with pytest.raises(ConfigError, match=r"models\.\w+: audio.warp_bins = 128 .* 1-wide bottleneck"):
        Params(raw)


@pytest.mark.parametrize("overlays", [(), ("params/hfra-code.yaml",), ("params/lavss-code.yaml",)])
def test_snakemake_plans_every_table_of_the_paper_config_without_network(tmp_path, overlays):
    copy_workflow(tmp_path)
    write_params(tmp_path, default_params())
    (tmp_path / "params").mkdir()
    for f in ("paper.yaml", *[Path(o).name for o in overlays]):
        (tmp_path / "params" / f).write_text((ROOT / "params" / f).read_text())
    res = snakemake(tmp_path, "-n", "all", "--configfile", "params/paper.yaml", *overlays, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", out, re.MULTILINE))
    assert int(jobs["separation_table"]) == 4 and int(jobs["lavss_table"]) == 4  # tables 1-3, 6 and LAVSS 1-4
    for t in ("probe_table", "gap_table", "per_instrument_table", "figure1", "figure3"):
        assert int(jobs[t]) == 1, t
    for ds in ("music", "music21", "vggsound", "fairplay"):
        assert f"data/{ds}/meta/" in out or f"data/{ds}/" in out, ds
    assert "synth-" not in out  # every table on its real dataset


# ---------------------------------------------------------------------------------------------------------
# The real code path at paper size, on synthetic clips (CPU)
# ---------------------------------------------------------------------------------------------------------


def smoke_params(weights: Path) -> dict:
    """The paper config at full model size on two tiny synthetic datasets: 1 step of batch 2 per model; the
    pretrained encoders are the offline stand-ins (random CLIP/CLAP, a written ResNet-18 state dict)."""
    raw = on_synthetic_data(paper_params(), str(weights), clips_per_class=1, steps=1, batch_size=2)
    raw["mixing"]["test_mixtures"] = 2
    return raw


@pytest.mark.slow
def test_paper_size_training_runs_on_cpu_on_synthetic_clips(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(0)
    weights = tmp_path / "resnet18.pth"
    torch.save(resnet18().state_dict(), weights)  # a torchvision state dict, loaded as the ImageNet weights would be
    copy_workflow(tmp_path)
    write_params(tmp_path, smoke_params(weights))
    targets = ["models/synth-music/sop/checkpoint.pt", "models/synth-music/hfra_align/checkpoint.pt",
               "models/synth-fairplay/lavss/lavss/checkpoint.pt"]
    res = snakemake(tmp_path, *targets, timeout=1500)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    p = Params(smoke_params(weights))
    sop = checkpoint.load(tmp_path / targets[0])
    hfra = checkpoint.load(tmp_path / targets[1])
    lavss = checkpoint.load(tmp_path / targets[2])
    assert sum(v.numel() for v in sop["model"].values() if v.is_floating_point()) >= 41_598_243  # + BN statistics
    assert "resnet18.pth" in sop["meta"]["visual_weights"]
    assert (hfra["config"]["unet"]["ngf"], hfra["config"]["unet"]["num_downs"]) == (64, 7)
    assert lavss["config"]["d_model"] == 512 and lavss["meta"]["transferred"] == ["U-Net", "visual network", "AVP fusion"]
    for d in ("synth-music/sop", "synth-music/hfra_align", "synth-fairplay/lavss/lavss"):
        log = (tmp_path / "models" / d / "train_log.csv").read_text().splitlines()
        assert len(log) == 2 and "nan" not in "".join(log), d
    # the LAVSS pre-training read synth-music (extracted at HFRA's 11,625 Hz) resampled to LAVSS's 11,025 Hz
    assert p.extract_rate("synth-music") == 11625 and p.lavss.frontend.sample_rate == 11025
