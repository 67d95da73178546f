"""The integrated LAVSS model, its data (boxes, mixture lists, sampler), training, evaluation and config."""

from __future__ import annotations

import copy
import math
import zlib

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from PIL import Image
from workflow_helpers import default_params

from avsep.audio.binaural import audio_features
from avsep.audio.frontend import FrontendConfig, stft
from avsep.config.lavss import LAVSSTrainConfig
from avsep.config.params import ConfigError, Params
from avsep.core.seeding import seed_everything
from avsep.data.binaural_batches import Batch, LAVSSData, mirror_batch
from avsep.data.binaural_mixtures import LAVSSSampler, eligible_clips, make_mixture_list
from avsep.data.boxes import BoxSource
from avsep.data.mixtures import Crop
from avsep.data.prepare.spatial import position_to_azimuth, spatialize
from avsep.data.store import ClipStore
from avsep.engine.lavss import LAVSSTask, load_lavss
from avsep.engine.trainer import fit
from avsep.evaluation.binaural import evaluate_lavss
from avsep.evaluation.metrics import evaluate_mixture
from avsep.evaluation.oracles import ORACLES, expected_ipd, oracle_table, score_oracles
from avsep.losses.binaural import gt_masks, lavss_gt_masks, loss_terms
from avsep.models.hfra.unet import count_parameters
from avsep.models.lavss.blocks import CMA, PositionNet, VPAttention
from avsep.models.lavss.config import LAVSSConfig
from avsep.models.lavss.network import LAVSSNet, transfer_pretrained

FE = FrontendConfig(sample_rate=11025, clip_samples=8191, n_fft=254, hop=64, warp_bins=128)  # 128 x 128 spectrograms
TINY = {"ngf": 2, "k": 4, "visual_width": 2, "crop_size": 32, "image_size": 32, "d_model": 8, "pos_hidden": 8,
        "pos_grid": 4, "n_heads": 2, "n_layers": 1, "ffn_mult": 1, "ipd_features": ("cos", "sin")}
FPS = 8.0


def tiny(**kw: object) -> LAVSSConfig:
    return LAVSSConfig(**{**TINY, **kw})  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- a tiny dataset

LABELS = {"flute": (523.0, (220, 60, 60)), "horn": (196.0, (60, 60, 220))}
POSITIONS = (0.2, 0.8)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """Stereo clips of two 'instruments' (harmonic tones) at two positions per split; frames with a coloured
    square at the object's box; ground-truth boxes. Laid out like an extract stage output."""
    root = tmp_path_factory.mktemp("lavss_data")
    sr, n = FE.sample_rate, 3 * FE.sample_rate
    rows, boxes = [], []
    for split in ("train", "test"):
        for label, (f0, colour) in LABELS.items():
            for k, x in enumerate(POSITIONS):
                cid = f"{label}-{split}-{k}"
                gen = np.random.default_rng(zlib.crc32(cid.encode()) + 7)  # not hash(): it changes per process
                t = np.arange(n) / sr
                env = 0.6 + 0.4 * np.sin(2 * np.pi * gen.uniform(0.5, 2.0) * t + gen.uniform(0, 6))
                mono = sum(np.sin(2 * np.pi * h * f0 * t + gen.uniform(0, 6)) / h for h in (1, 2, 3)) * env * 0.3
                stereo = spatialize(mono, sr, position_to_azimuth(x))
                (root / "audio").mkdir(exist_ok=True)
                sf.write(root / "audio" / f"{cid}.wav", stereo.T, sr)
                fdir = root / "frames" / cid
                fdir.mkdir(parents=True)
                box = (x - 0.15, 0.35, x + 0.15, 0.65)
                img = np.full((64, 64, 3), 128, np.uint8)
                img[int(box[1] * 64):int(box[3] * 64), int(box[0] * 64):int(box[2] * 64)] = colour
                n_frames = int(n / sr * FPS)
                for f in range(n_frames):
                    Image.fromarray(img).save(fdir / f"{f + 1:06d}.jpg")
                    boxes.append({"id": cid, "instance": 0, "frame": f, "time": f / FPS, "x1": box[0], "y1": box[1],
                                  "x2": box[2], "y2": box[3], "cx": x})
                rows.append({"id": cid, "status": "ok", "reason": "", "label": label, "split": split,
                             "audio": f"audio/{cid}.wav", "frames": f"frames/{cid}", "n_samples": n,
                             "n_frames": n_frames})
    pd.DataFrame(rows).to_parquet(root / "manifest.parquet", index=False)
    pd.DataFrame(boxes).to_parquet(root / "boxes.parquet", index=False)
    return root


def _data(root, channels=2) -> tuple[pd.DataFrame, LAVSSData]:
    man = pd.read_parquet(root / "manifest.parquet")
    boxes = BoxSource.ground_truth(root / "boxes.parquet", FPS)
    return man, LAVSSData(ClipStore(root / "manifest.parquet", FE.sample_rate, channels), boxes, FE, 32)


def _crop() -> Crop:
    return Crop(FE.clip_samples, FE.sample_rate, FPS, 1)


# ---------------------------------------------------------------------------------------------- the model


def calibrated(model: LAVSSNet, audio: torch.Tensor) -> LAVSSNet:
    """``model`` in eval mode with BatchNorm statistics estimated on ``audio`` and random frames and boxes (as after
    training; with the initial statistics, mean 0 and variance 1, the deep features are vanishingly small)."""
    g = torch.Generator().manual_seed(1)
    b, n = audio.shape[0], 2
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for _ in range(3):
            xy = torch.rand(b, n, 2, generator=g) * 0.6
            boxes = torch.cat([xy, xy + 0.3], dim=-1)
            model(audio, torch.rand(b, n, 3, 32, 32, generator=g), boxes)
    return model.eval()


def _inputs(b: int = 1, e: int = 2, c: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(b, e, c, 128, 128, generator=g)
    images = torch.full((b, 2, 3, 32, 32), 0.5)  # uniform: every crop looks the same, only the box position differs
    boxes = torch.tensor([[[0.05, 0.3, 0.35, 0.7], [0.65, 0.3, 0.95, 0.7]]]).expand(b, 2, 4).clone()
    return audio, images, boxes


@pytest.mark.parametrize("backbone", ["sep25d", "sop"])
def test_position_reaches_the_masks_and_swapping_boxes_swaps_them(backbone):
    torch.manual_seed(0)
    audio, images, boxes = _inputs()
    model = calibrated(LAVSSNet(tiny(backbone=backbone)), audio)
    with torch.no_grad():
        out = model(audio, images, boxes)
        swapped = model(audio, images, boxes.flip(1))
    assert out.shape == (1, 2, 2, 128, 128)
    # Two identical-looking objects at different places: only the position tells the masks apart ...
    assert (out[:, 0] - out[:, 1]).abs().max() > 1e-2
    # ... and each source's masks follow its own box.
    assert torch.allclose(swapped[:, 0], out[:, 1], atol=1e-6) and torch.allclose(swapped[:, 1], out[:, 0], atol=1e-6)
    # Without position guidance the two sources cannot be told apart.
    blind = calibrated(LAVSSNet(tiny(backbone=backbone, position=False)), audio)
    with torch.no_grad():
        o = blind(audio, images, boxes)
    assert torch.allclose(o[:, 0], o[:, 1], atol=1e-6)


def test_each_source_mask_depends_only_on_its_own_image_and_box():
    torch.manual_seed(0)
    audio, images, boxes = _inputs()
    model = calibrated(LAVSSNet(tiny()), audio)
    with torch.no_grad():
        a = model(audio, images, boxes)
        images2, boxes2 = images.clone(), boxes.clone()
        images2[:, 1] = torch.rand(3, 32, 32)
        boxes2[:, 1] = torch.tensor([0.4, 0.1, 0.6, 0.5])
        b = model(audio, images2, boxes2)
    assert torch.allclose(a[:, 0], b[:, 0], atol=1e-6)
    assert (a[:, 1] - b[:, 1]).abs().max() > 1e-2


def test_ablation_switches_remove_exactly_their_modules():
    n = {name: count_parameters(LAVSSNet(tiny(**kw))) for name, kw in {
        "full": {}, "no_pos": {"position": False}, "no_vp": {"vp_attention": False}, "no_avp": {"avp_attention": False},
        "no_multi": {"multi_scale": False}, "tile": {"tile_concat": True}, "no_ipd": {"ipd": False},
        "cos_only": {"ipd_features": ("cos",)}, "sop": {"backbone": "sop"},
        "sop_late": {"backbone": "sop", "bottleneck_fusion": False},
        "frame": {"visual": "frame", "position": False},
    }.items()}
    d, c, ngf, k = TINY["d_model"], 8 * TINY["ngf"], TINY["ngf"], TINY["k"]
    cma = count_parameters(CMA(d, 2, 1, 1))
    pos = count_parameters(PositionNet(d, 16, 8, 1)) + count_parameters(VPAttention(d, 2, 1, 1))
    assert n["full"] - n["no_pos"] == pos
    assert n["full"] - n["no_vp"] == 2 * cma  # CMA(F_v, F_p) and CMA(F_p, F_v)
    assert n["full"] - n["no_avp"] == 2 * cma  # CMA(F_a, F_vp) and CMA(F_vp, F_a)
    assert n["full"] - n["no_multi"] == 2 * (c * d + d) + 2 * (2 * d) * c * 9  # two scale projections, a smaller f2
    full_net, tile_net = LAVSSNet(tiny()), LAVSSNet(tiny(tile_concat=True))
    assert count_parameters(tile_net.fusion) == (c + d) * c * 9 + c  # one 3 x 3 conv over [bottleneck, tiled F_vp]
    assert n["full"] - n["tile"] == count_parameters(full_net.fusion) - count_parameters(tile_net.fusion)
    # IPD: one input channel per feature, in the first convolution (4 x 4, ngf filters) and the input BatchNorm.
    assert n["full"] - n["no_ipd"] == 2 * (ngf * 16 + 2)
    assert n["full"] - n["cos_only"] == ngf * 16 + 2
    # SoP backbone: a k-channel U-Net output (last 3 x 3 conv over 2 ngf channels) and the late-fusion head.
    late_head = (d * k + k) + k + 1
    assert n["sop"] - n["full"] == late_head + (k - 1) * (2 * ngf * 9 + 1)
    assert n["sop"] - n["sop_late"] == count_parameters(full_net.fusion)  # plain Sound-of-Pixels: no bottleneck fusion
    # The whole-frame baselines have the same networks as the box-crop ones without position.
    assert n["frame"] == n["no_pos"]
    with pytest.raises(ValueError, match="bottleneck_fusion"):
        tiny(bottleneck_fusion=False)


@pytest.mark.parametrize("backbone", ["sep25d", "sop"])
def test_transfer_copies_the_mono_weights_and_leaves_the_new_branches_fresh(backbone):
    torch.manual_seed(0)
    mono = LAVSSNet(tiny(backbone=backbone, ipd=False, position=False)).eval()
    for p in mono.parameters():  # make the BatchNorm affine parameters non-trivial
        p.data.add_(0.01 * torch.randn_like(p))
    net = LAVSSNet(tiny(backbone=backbone))  # binaural: IPD channels and the position branch are new
    fresh = {k: v.clone() for k, v in net.state_dict().items()}
    parts = transfer_pretrained(net, mono.state_dict(), mono.cfg)
    assert parts == ["U-Net", "visual network", "AVP fusion"]  # with position the late-fusion head stays fresh
    got, pre = net.state_dict(), mono.state_dict()
    for key, val in pre.items():  # every other mono weight is copied (the first conv and BatchNorm into channel 0)
        if key.startswith(("late.", "scale", "bias")):
            assert torch.equal(got[key], fresh[key]), key
        elif key == "unet.downs.0.0.weight":
            assert torch.equal(got[key][:, :1], val)
        elif key.startswith("unet.bn0.") and val.dim() == 1:
            assert torch.equal(got[key][:1], val)
        else:
            assert torch.equal(got[key], val), key
    # The IPD input weights and the position branch keep their fresh initialisation: none is zeroed.
    assert torch.equal(got["unet.downs.0.0.weight"][:, 1:], fresh["unet.downs.0.0.weight"][:, 1:])
    assert got["unet.downs.0.0.weight"][:, 1:].abs().sum() > 0 and net.vp.conv.weight.abs().sum() > 0
    new = [k for k in got if k.startswith(("position_net.", "vp."))]
    assert new and all(torch.equal(got[k], fresh[k]) for k in new)
    # Both new branches reach the masks and are trained from there.
    net.eval()
    audio, images, boxes = _inputs(c=3)
    with torch.no_grad():
        out = net(audio, images, boxes)
        no_ipd = audio.clone()
        no_ipd[:, :, 1:] = 0.0
        assert not torch.allclose(out, net(no_ipd, images, boxes))
        assert not torch.allclose(out, net(audio, images, boxes.flip(1)))
    net.train()
    net(audio, images, boxes).square().mean().backward()
    assert net.vp.conv.weight.grad.abs().sum() > 0 and net.unet.downs[0][0].weight.grad[:, 1:].abs().sum() > 0
    # Without position (IPD only) the late-fusion head is copied too; another fusion is not copied.
    head = ["late-fusion head"] if backbone == "sop" else []
    ipd_only = LAVSSNet(tiny(backbone=backbone, position=False))
    assert transfer_pretrained(ipd_only, mono.state_dict(), mono.cfg) == ["U-Net", "visual network", "AVP fusion", *head]
    if head:
        assert torch.equal(ipd_only.late.weight, mono.late.weight) and torch.equal(ipd_only.scale, mono.scale)
    other = LAVSSNet(tiny(backbone=backbone, multi_scale=False))
    assert transfer_pretrained(other, mono.state_dict(), mono.cfg) == ["U-Net", "visual network"]
    with pytest.raises(ValueError, match="monaural"):
        transfer_pretrained(other, net.state_dict(), net.cfg)


# ---------------------------------------------------------------------------------------------- data


def test_sin_ipd_tells_the_side_cos_ipd_does_not(tiny_dataset):
    sr = FE.sample_rate
    t = np.arange(FE.clip_samples) / sr
    tone = np.sin(2 * np.pi * 300.0 * t)
    feats = {}
    for side, x in (("left", 0.15), ("right", 0.85)):
        st = torch.from_numpy(spatialize(tone, sr, position_to_azimuth(x)))[None]
        f, spec = audio_features(st, FE, True, ("cos", "sin"))
        assert f.shape == (1, 2, 3, 128, 128) and spec.shape == (1, 2, 128, 128)
        assert torch.equal(f[0, 0, 1:], f[0, 1, 1:])  # the IPD channels are shared by both ears
        row = int(torch.argmax(f[0, 0, 0].mean(-1)))  # the tone's row
        feats[side] = f[0, 0, 1:, row, 10:-10].mean(-1)
    assert feats["left"][1] > 0.2 and feats["right"][1] < -0.2  # sin IPD: + on the left, - on the right
    assert torch.allclose(feats["left"][0], feats["right"][0], atol=1e-2)  # cos IPD: the same on both sides
    mono, _ = audio_features(torch.randn(2, 1, FE.clip_samples), FE, False)
    assert mono.shape == (2, 1, 1, 128, 128)
    with pytest.raises(ValueError, match="two ears"):
        audio_features(torch.randn(2, 1, FE.clip_samples), FE, True)


def test_gt_masks_match_the_building_block():
    x = torch.rand(3, 2, 2, 16, 16)
    x[0, 0, 0, 0, 0] = x[0, 1, 0, 0, 0]  # a tie goes to source 0
    assert torch.equal(gt_masks(x), lavss_gt_masks(x, source_dim=1))


def test_detected_boxes_follow_the_object_and_exclude_failed_clips(tmp_path):
    objects = pd.DataFrame({
        "clip": ["c1", "c2"], "rank": [1, 1], "status": ["ok", "failed"], "reason": ["", "nothing detected in 4 frame(s)"],
        "x1": [0.1, np.nan], "y1": [0.1, np.nan], "x2": [0.4, np.nan], "y2": [0.5, np.nan], "median_cx": [0.26, np.nan],
    })
    boxes = pd.DataFrame({
        "clip": ["c1"] * 5, "frame": [1, 3, 3, 5, 5], "time": [0.0, 0.25, 0.25, 0.5, 0.5],
        "score": [0.9, 0.5, 0.8, 0.7, 0.95], "instrument": [True] * 5,
        "x1": [0.1, 0.12, 0.11, 0.14, 0.7], "y1": [0.1] * 5, "x2": [0.4, 0.42, 0.41, 0.44, 0.95], "y2": [0.5] * 5,
    })
    objects.to_parquet(tmp_path / "objects.parquet")
    boxes.to_parquet(tmp_path / "boxes.parquet")
    src = BoxSource.detected(tmp_path / "objects.parquet", tmp_path / "boxes.parquet", FPS)
    assert src.positions == {"c1": 0.26}
    assert np.allclose(src.box("c1", 2), [0.11, 0.1, 0.41, 0.5])  # t = 0.25: the better of two boxes of that frame
    # t = 0.5: the 0.95 box is another object (IoU < 0.3 with the clip's top box); its own box is taken
    assert np.allclose(src.box("c1", 4), [0.14, 0.1, 0.44, 0.5])
    assert np.allclose(src.box("c1", 40), [0.14, 0.1, 0.44, 0.5])  # past the end: the nearest detected frame
    with pytest.raises(KeyError, match="nothing detected"):
        src.box("c2", 0)


def test_mixture_lists_are_seeded_and_same_type_pairs_are_apart(tiny_dataset):
    man, data = _data(tiny_dataset)
    crop = _crop()
    same = make_mixture_list(man, data.boxes, "same_type", 6, 3, crop, 0.3)
    assert (same["label_0"] == same["label_1"]).all()
    assert ((same["cx_0"] - same["cx_1"]).abs() >= 0.3).all()
    assert sorted(same["label_0"].unique()) == sorted(LABELS)
    assert same.equals(make_mixture_list(man, data.boxes, "same_type", 6, 3, crop, 0.3))
    assert not same.equals(make_mixture_list(man, data.boxes, "same_type", 6, 4, crop, 0.3))
    diff = make_mixture_list(man, data.boxes, "different", 5, 3, crop, 0.3)
    assert (diff["label_0"] != diff["label_1"]).all() and (diff["kind"] == "different").all()
    with pytest.raises(ValueError, match="at least 0.9"):
        make_mixture_list(man, data.boxes, "same_type", 2, 3, crop, 0.9)
    clips = eligible_clips(man, "train", data.boxes, FE.clip_samples)
    sampler = LAVSSSampler(clips, 5, crop, (0.5, 1.5), same_type=0.5, min_dx=0.3)
    batch = sampler.batch(3, 16)
    assert batch == sampler.batch(3, 16)  # a pure function of the step
    kinds = {sp.labels[0] == sp.labels[1] for sp in batch}
    assert kinds == {True, False}
    assert all(0 <= sp.frames[0][0] < 24 for sp in batch)


def test_a_mirrored_mixture_is_the_mixture_rendered_at_the_mirrored_positions():
    sr, n = FE.sample_rate, FE.clip_samples
    gen = np.random.default_rng(4)
    t = np.arange(n) / sr
    monos = [np.sin(2 * np.pi * f0 * t) * gen.uniform(0.5, 1.0, n) for f0 in (220.0, 330.0)]
    xs = (0.2, 0.65)

    def render(positions):
        return torch.from_numpy(np.stack([spatialize(m, sr, position_to_azimuth(x)) for m, x in zip(monos, positions)]))

    sources = render(xs)[None]  # (1, N, E, L)
    boxes = torch.tensor([[[x - 0.1, 0.3, x + 0.1, 0.7] for x in xs]])
    images = torch.rand(1, 2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    batch = Batch(sources, sources.sum(1), images, boxes)
    before = [x.clone() for x in (batch.sources, batch.mixture, batch.images, batch.boxes)]
    m = mirror_batch(batch, torch.tensor([True]))
    mirrored = render([1.0 - x for x in xs])[None]
    assert torch.allclose(m.sources, mirrored, atol=1e-5)  # the renderer is left-right symmetric
    assert torch.allclose(m.mixture, mirrored.sum(1), atol=1e-5)
    assert torch.allclose(m.boxes, torch.tensor([[[0.7, 0.3, 0.9, 0.7], [0.25, 0.3, 0.45, 0.7]]]))
    assert torch.equal(m.images, images.flip(-1))
    # the input batch is untouched, mirroring twice gives it back, and unflagged mixtures stay as they are
    assert all(torch.equal(a, b) for a, b in zip(before, (batch.sources, batch.mixture, batch.images, batch.boxes)))
    twice = mirror_batch(m, torch.tensor([True]))
    assert torch.equal(twice.sources, batch.sources) and torch.allclose(twice.boxes, batch.boxes)
    assert mirror_batch(batch, torch.tensor([False])) is batch
    with pytest.raises(ValueError, match="do not match"):
        mirror_batch(batch, torch.tensor([True, False]))


def test_mirror_flags_are_a_seeded_function_of_the_step(tiny_dataset):
    man, data = _data(tiny_dataset)
    clips = eligible_clips(man, "train", data.boxes, FE.clip_samples)
    sampler = LAVSSSampler(clips, 5, _crop(), (0.5, 1.5))
    flags = torch.stack([sampler.mirror_flags(s, 8, 0.5) for s in range(50)])
    assert torch.equal(flags, torch.stack([sampler.mirror_flags(s, 8, 0.5) for s in range(50)]))
    assert 0.4 < flags.float().mean() < 0.6 and not torch.equal(flags[0], flags[1])
    assert not sampler.mirror_flags(3, 8, 0.0).any() and sampler.mirror_flags(3, 8, 1.0).all()


def test_mix_gt_scores_the_mixture_per_ear(tiny_dataset):
    man, data = _data(tiny_dataset)
    table = make_mixture_list(man, data.boxes, "different", 2, 3, _crop(), 0.3)
    res = evaluate_lavss(None, data, table, 2, 0.5)
    batch = data.batch([*__import__("avsep.data.mixtures", fromlist=["x"]).specs_from_table(table, 2)])
    for j in range(2):
        for e, ear in enumerate(("left", "right")):
            ref = batch.sources[j, :, e].double().numpy()
            mix = np.stack([batch.mixture[j, e].double().numpy()] * 2)
            assert res[f"sdr_{ear}"].iloc[j] == pytest.approx(evaluate_mixture(ref, mix)["sdr"], abs=1e-9)
        assert res["sdr"].iloc[j] == pytest.approx((res["sdr_left"].iloc[j] + res["sdr_right"].iloc[j]) / 2)


# ---------------------------------------------------------------------------------------------- training


def test_training_lowers_the_loss_and_resumes_to_identical_weights(tiny_dataset, tmp_path):
    man, data = _data(tiny_dataset)
    clips = eligible_clips(man, "train", data.boxes, FE.clip_samples)
    sampler = LAVSSSampler(clips, 1, _crop(), (0.5, 1.5), same_type=0.5, min_dx=0.3)
    # 40 steps: over 8 datasets (other tone phases) the held-out loss fell by 0.73-1.10 (from about 3.06); after 20 steps
    # by -0.01-0.42, too close to the noise to test on every processor.
    cfg = LAVSSTrainConfig(steps=40, batch_size=4, lr=3e-3, checkpoint_every=10, log_every=10, weighting="magnitude",
                           mirror=0.5, seed=2, threads=1)
    arch = tiny(backbone="sop", bottleneck_fusion=False)
    held_out = data.batch(LAVSSSampler(eligible_clips(man, "test", data.boxes, FE.clip_samples), 9, _crop(), (1.0, 1.0),
                                       same_type=0.5, min_dx=0.3).batch(0, 8))

    def held_out_loss(model: LAVSSNet) -> float:
        model.train()  # batch statistics, as in training
        with torch.no_grad():
            t = loss_terms(model, held_out, FE)
        return float(t["l1"] + 0.5 * t["l2"] + 0.25 * t["time"])

    seed_everything(cfg.seed, 1)
    before = held_out_loss(LAVSSNet(arch))  # the initial weights of the run (same seed, same construction)
    final = fit(LAVSSTask(arch, cfg, sampler, data), cfg, tmp_path / "a", {"model": "t"})
    trained, meta = load_lavss(final)
    after = held_out_loss(trained)
    assert after < before - 0.3
    log = pd.read_csv(tmp_path / "a" / "train_log.csv")
    assert list(log["step"]) == [10, 20, 30, 40]
    np.testing.assert_allclose(log["loss"], log["l1"] + 0.5 * log["l2"] + 0.25 * log["time"], atol=1e-5)
    # Interrupted after 20 steps (states at 10 and 20), then resumed: the same weights as straight through.
    fit(LAVSSTask(arch, cfg, sampler, data), cfg, tmp_path / "b", {"model": "t"}, stop_after=20)
    assert (tmp_path / "b" / "state.pt").exists() and not (tmp_path / "b" / "checkpoint.pt").exists()
    again, _ = load_lavss(fit(LAVSSTask(arch, cfg, sampler, data), cfg, tmp_path / "b", {"model": "t"}))
    for (k, v1), v2 in zip(load_lavss(final)[0].state_dict().items(), again.state_dict().values()):
        assert torch.equal(v1, v2), k
    assert not (tmp_path / "b" / "state.pt").exists() and meta["transferred"] == []
    # A resume state of another architecture stops the run with the file named, instead of being half loaded.
    fit(LAVSSTask(arch, cfg, sampler, data), cfg, tmp_path / "c", {"model": "t"}, stop_after=10)
    with pytest.raises(RuntimeError, match=r"c/state\.pt: this resume state does not fit"):
        fit(LAVSSTask(tiny(backbone="sop", bottleneck_fusion=False, k=3), cfg, sampler, data), cfg, tmp_path / "c", {"model": "t"})
    assert pd.read_csv(tmp_path / "b" / "train_log.csv").equals(log.assign(seconds=pd.read_csv(tmp_path / "b" / "train_log.csv")["seconds"]))


# ---------------------------------------------------------------------------------------------- config


def _lavss_raw(**changes: object) -> dict:
    raw = default_params()
    lv = copy.deepcopy(raw["lavss"])
    for path, value in changes.items():
        node = lv
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    raw["lavss"] = lv
    return raw


def test_default_lavss_config_parses():
    lp = Params(default_params()).lavss
    assert lp.variant("lavss").arch.position and lp.variant("lavss").pretrain is not None
    assert not lp.variant("sop_pre_star").finetune
    assert lp.crop.n_frames == 1 and lp.frontend.sample_rate == 11025
    assert math.isclose(lp.train.alpha, 0.5) and math.isclose(lp.train.beta, 0.25)


@pytest.mark.parametrize("changes, key", [
    ({"models__lavss__pretrain": "nope"}, "lavss.models.lavss.pretrain"),
    ({"models__sop_pre_star__ipd": True}, "lavss.models.sop_pre_star"),
    ({"tables__lavss_table1": ["sop_ear", "ghost"]}, "lavss.tables.lavss_table1"),
    ({"dataset": "synth-music"}, "lavss.dataset"),
    ({"models__lavss__position_typo": True}, "lavss.models.lavss"),
    ({"defaults__num_downs": 8}, "lavss.pretrain.models.pre_sop: lavss.audio.warp_bins = 128 is not a multiple of 2"),
])
def test_config_errors_name_the_key(changes, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Params(_lavss_raw(**changes)).lavss


# ---------------------------------------------------------------------------------------------- oracle masks


def test_expected_ipd_matches_the_renderer():
    sr = FE.sample_rate
    t = np.arange(FE.clip_samples) / sr
    noise = np.random.default_rng(3).standard_normal(t.size)
    for x in (0.1, 0.5, 0.85):
        st = torch.from_numpy(spatialize(noise, sr, position_to_azimuth(x)))
        spec = stft(st, FE)  # (2 ears, F, T)
        cross = (spec[0] * spec[1].conj()).sum(-1)  # time-averaged cross-spectrum: its angle is the IPD
        exp = expected_ipd(spec.shape[1], sr, position_to_azimuth(x)).double()
        err = torch.angle(torch.exp(1j * (torch.angle(cross) - exp)))
        assert err[1:-1].abs().max() < 0.1, x  # radians, over every bin but DC and Nyquist
    assert expected_ipd(5, sr, 0.0).abs().max() == 0  # straight ahead: no phase difference
    assert expected_ipd(64, sr, position_to_azimuth(0.9))[1] < 0 < expected_ipd(64, sr, position_to_azimuth(0.1))[1]


def test_position_and_ipd_oracle_separates_two_sources_by_their_sides(tiny_dataset):
    sr, n = FE.sample_rate, FE.clip_samples
    t = np.arange(n) / sr
    gen = np.random.default_rng(5)

    def tone(f0):  # a harmonic 'instrument' with a slow random envelope
        env = np.interp(t, np.linspace(0, t[-1], 12), gen.uniform(0.2, 1.0, 12))
        return env * sum(np.sin(2 * np.pi * h * f0 * t + gen.uniform(0, 6)) / h for h in range(1, 7))

    xs = [(0.2, 0.8), (0.75, 0.3)]
    sources = torch.stack([torch.stack([torch.from_numpy(spatialize(tone(f0), sr, position_to_azimuth(x)))
                                        for f0, x in zip((220.0, 310.0), pos)]) for pos in xs]).float()
    res = score_oracles(sources, sources.sum(1), xs, FE).groupby("oracle")["sdr"].mean()
    assert set(res.index) == set(ORACLES)
    # the positions and the observed IPD alone give most of what the true sources give
    assert res["ipd_template"] > res["mixture"] + 8 and res["ibm"] >= res["ipd_template"] - 0.5
    assert res["ipd_sign"] > res["mixture"] + 3
    # given the positions the wrong way round, the template oracle assigns every bin to the wrong source
    swapped = score_oracles(sources, sources.sum(1), [p[::-1] for p in xs], FE).groupby("oracle")["sdr"].mean()
    assert swapped["ipd_template"] < res["mixture"] - 3
    # the test-list driver reads the box centres of a LAVSS list and scores every oracle of every mixture
    man, data = _data(tiny_dataset)
    table = oracle_table(data, make_mixture_list(man, data.boxes, "different", 2, 3, _crop(), 0.3))
    assert list(table["oracle"]) == list(ORACLES) and (table["mixtures"] == 2).all()
    assert table.set_index("oracle").loc["ipd_template", "sdr"] > table.set_index("oracle").loc["mixture", "sdr"]


def test_paper_rows_follow_the_backbone():
    from avsep.reporting.lavss_tables import PAPER_TABLE1, paper_method

    lp = Params(default_params()).lavss
    assert paper_method(lp, "sep_all") == "LAVSS" and PAPER_TABLE1["LAVSS"][0] == 5.89  # 2.5D-sep, every module
    assert paper_method(lp, "lavss") == "LAVSS (SoP backbone)" and PAPER_TABLE1["LAVSS (SoP backbone)"][0] == 5.32
    assert paper_method(lp, "sop_ear") == "SoP" and paper_method(lp, "sep25d_ear") == "2.5D-sep"
    assert paper_method(lp, "sop_pos") is None
