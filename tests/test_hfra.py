"""HFRA: CLIP-embedding fusion variants, the CLAP alignment loss, and the representation analyses."""

import copy
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from avsep.config.params import ConfigError, Params, load_params
from avsep.data.inputs import ClapTargets, EmbeddingInputs, TableSampler
from avsep.data.mixtures import MixSpec
from avsep.losses.alignment import alignment_loss
from avsep.models.hfra.config import SeparatorConfig, UNetConfig, VisualConfig
from avsep.models.hfra.separator import AVSeparator
from avsep.reporting.analysis import linear_probe, modality_gap, per_class_sdr


def _clip_net(fusion: str, align_dim: int = 0, middle_dim: int = 16) -> AVSeparator:
    torch.manual_seed(0)
    cfg = SeparatorConfig(
        fusion=fusion, k=8, middle_dim=middle_dim, align_dim=align_dim, unet=UNetConfig(ngf=4),
        visual=VisualConfig(kind="embedding", embedding_dim=24),
    )
    return AVSeparator(cfg)


def test_alignment_loss_is_zero_for_identical_and_parallel_vectors_and_one_for_orthogonal():
    z = torch.randn(5, 12)
    assert alignment_loss(z, z.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert alignment_loss(3.0 * z, z).item() == pytest.approx(0.0, abs=1e-6)
    e = torch.eye(2)
    assert alignment_loss(e[:1], e[1:]).item() == pytest.approx(1.0)
    assert alignment_loss(e[:1], -e[:1]).item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="alignment"):
        alignment_loss(torch.randn(2, 3), torch.randn(2, 4))


def test_alignment_gradient_reaches_the_encoder_and_its_head_only():
    net = _clip_net("hierarchical", align_dim=10).train()
    out = net(torch.randn(3, 1, 256, 256), torch.randn(3, 2, 24))
    alignment_loss(net.aligned(out["bottleneck"]), torch.randn(3, 10)).backward()
    grads = {n: p.grad for n, p in net.named_parameters()}
    encoder = [n for n in grads if n.startswith("unet.downs.")]
    assert encoder and all(grads[n] is not None and grads[n].abs().sum() > 0 for n in encoder if n.endswith("weight"))
    assert grads["align_proj.weight"].abs().sum() > 0
    untouched = [n for n in grads if n.startswith(("unet.ups.", "proj_late", "proj_mid", "scale", "bias"))]
    assert untouched
    for n in untouched:
        assert grads[n] is None or grads[n].abs().sum() == 0, n


@pytest.mark.parametrize("fusion", ["late", "middle", "hierarchical"])
def test_clip_variants_condition_each_mask_on_its_own_embedding_only(fusion):
    # The public HFRA code rebuilt every mask from the last source's embedding; here it must not.
    net = _clip_net(fusion).eval()
    x = torch.randn(2, 1, 256, 256)
    emb = torch.randn(2, 3, 24)
    with torch.no_grad():
        a = net(x, emb)["logits"]
        changed = emb.clone()
        changed[:, 2] = torch.randn(2, 24)
        b = net(x, changed)["logits"]
    assert a.shape == (2, 3, 256, 256)
    assert torch.equal(a[:, :2], b[:, :2])
    assert not torch.allclose(a[:, 2], b[:, 2])


def test_middle_late_hierarchical_masks_have_the_right_shape_and_differ():
    x = torch.randn(2, 1, 256, 256)
    emb = torch.randn(2, 2, 24)
    outs = {}
    for fusion in ("middle", "late", "hierarchical"):
        with torch.no_grad():
            outs[fusion] = torch.sigmoid(_clip_net(fusion).eval()(x, emb)["logits"])
        assert outs[fusion].shape == (2, 2, 256, 256)
    assert not torch.allclose(outs["middle"], outs["late"])
    assert not torch.allclose(outs["late"], outs["hierarchical"])
    assert not torch.allclose(outs["middle"], outs["hierarchical"])
    h = _clip_net("hierarchical", middle_dim=512)
    assert h.unet.cfg.bottleneck_channels == 512 and h.unet.cfg.out_channels == 8  # Proj2 tiled, Proj1 late
    assert h.proj_mid[0].in_features == 24 and h.proj_mid[0].out_features == 512


def test_registry_builds_the_paper_variants():
    p = load_params()
    assert p.model("sop").separator.visual.kind == "frames"
    late, mid, hier = p.model("clipsep_late"), p.model("clipsep_middle"), p.model("hfra_align")
    assert (late.separator.fusion, mid.separator.fusion, hier.separator.fusion) == ("late", "middle", "hierarchical")
    assert mid.separator.middle_dim == 32 and hier.separator.middle_dim == 512
    assert hier.aligned and hier.separator.align_dim == 512 and not late.aligned
    assert p.method_label("nmf_mfcc") == "NMF-MFCC"


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda r: r["models"]["hfra_align"].update(align_lambda=-0.1), "models.hfra_align.align_lambda"),
        (lambda r: r["tables"]["table6"]["methods"].append("no_such"), "no_such"),
        (lambda r: r["tables"]["table4"].update(methods=["nmf_mfcc"]), "tables.table4"),
        (lambda r: r["models"]["hfra"].update(visual="clap"), "models.hfra.visual"),
    ],
)
def test_bad_variant_config_names_the_key(mutate, key):
    raw = copy.deepcopy(load_params().raw)
    mutate(raw)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Params(raw)


def _spec(clips, frames, gains=(1.0, 1.0)):
    return MixSpec(tuple(clips), ("a", "b"), (0, 0), tuple(frames), tuple(gains))


def test_embedding_inputs_take_the_nearest_cached_frame_of_the_crop_centre(tmp_path):
    arr = np.arange(5 * 4, dtype=np.float32).reshape(5, 4)
    np.save(tmp_path / "c.npy", arr)
    pd.DataFrame({"clip": ["x", "x", "x", "y", "y"], "frame": [0, 8, 16, 0, 8], "row": [0, 1, 2, 3, 4]}).to_parquet(
        tmp_path / "c.parquet"
    )
    emb = EmbeddingInputs([(tmp_path / "c.npy", tmp_path / "c.parquet")])
    # centre of the listed frames: x -> 11 (nearest cached 8, row 1); y -> 3 (nearest 0, row 3)
    out = emb([_spec(["x", "y"], [(5, 11, 13), (1, 3, 30)])])
    assert torch.equal(out[0, 0], torch.from_numpy(arr[1]))
    assert torch.equal(out[0, 1], torch.from_numpy(arr[3]))
    with pytest.raises(KeyError, match="'z'"):
        emb([_spec(["z", "y"], [(0,), (0,)])])


def test_table_sampler_serves_rows_by_step_and_keys_match_the_clap_cache(tmp_path):
    rows = []
    for step in range(3):
        for index in range(2):
            rows.append({"step": step, "index": index, "mixture_id": f"e0-{(step * 2 + index) % 4}", "epoch": 0,
                         **{f"{c}_{j}": v for j in range(2) for c, v in
                            (("clip", f"c{j}"), ("label", f"l{j}"), ("start", step), ("frames", "1,2"), ("gain", 0.5 + j))}})
    table = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # any row order
    s = TableSampler(table, 2)
    assert [sp.starts for sp in s.batch(2, 2)] == [(2, 2), (2, 2)]
    assert s.batch(1, 2)[0].gains == (0.5, 1.5)
    assert s.keys(2, 2) == ["e0-0", "e0-1"]  # epochs repeat: the same cache rows
    assert s.keys(1, 1, rank_offset=1) == ["e0-3"]
    with pytest.raises(IndexError, match="regenerate"):
        s.batch(3, 2)
    np.save(tmp_path / "m.npy", np.eye(4, dtype=np.float32))
    pd.DataFrame({"key": [f"e0-{i}" for i in range(4)], "row": [0, 1, 2, 3]}).to_parquet(tmp_path / "m.parquet")
    clap = ClapTargets(tmp_path / "m.npy", tmp_path / "m.parquet")
    assert torch.equal(clap(s.keys(1, 2)), torch.eye(4)[[2, 3]])


def test_linear_probe_separates_separable_classes_and_is_deterministic():
    g = np.random.default_rng(0)
    centres = g.normal(size=(3, 6)) * 5
    y_tr, y_te = np.repeat(["a", "b", "c"], 20), np.repeat(["a", "b", "c"], 10)
    x_tr = centres[np.repeat([0, 1, 2], 20)] + g.normal(size=(60, 6))
    x_te = centres[np.repeat([0, 1, 2], 10)] + g.normal(size=(30, 6))
    assert linear_probe(x_tr, y_tr, x_te, y_te) == 1.0
    # Labels unrelated to the features: far from perfect, and the same number twice.
    shuffled = g.permutation(y_te)
    a = linear_probe(x_tr, y_tr, x_te, shuffled)
    assert a < 0.8 and a == linear_probe(x_tr, y_tr, x_te, shuffled)


def test_modality_gap_closed_forms():
    e = np.eye(4)
    assert modality_gap(np.tile(e[0], (3, 1)), np.tile(e[1], (3, 1))) == pytest.approx(math.sqrt(2))
    assert modality_gap(np.tile(2 * e[0], (3, 1)), np.tile(e[0], (3, 1))) == pytest.approx(0.0)
    # Narrower audio vectors are zero-padded: (1, 0) in R^2 against e_0 of R^4 -> no gap.
    assert modality_gap(np.array([[1.0, 0.0]]), e[:1]) == pytest.approx(0.0)
    # Two opposite audio vectors average to 0; the gap is then |mean visual| = 1.
    assert modality_gap(np.array([e[0], -e[0]]), np.array([e[1], e[1]])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same"):
        modality_gap(e[:2], e[:3])


def test_per_class_sdr_averages_every_scored_source_of_each_label():
    t = pd.DataFrame(
        [
            {"status": "scored", "labels": "flute,tuba", "sdr_0": 1.0, "sdr_1": 5.0},
            {"status": "scored", "labels": "tuba,violin", "sdr_0": 3.0, "sdr_1": 2.0},
            {"status": "skipped", "labels": "flute,violin", "sdr_0": np.nan, "sdr_1": np.nan},
        ]
    )
    s = per_class_sdr(t, 2)
    assert s.to_dict() == {"flute": 1.0, "tuba": 4.0, "violin": 2.0}


def test_l1_spectrogram_loss_is_eq4_on_ratio_masks():
    from avsep.audio.mixing import SpectralBatch
    from avsep.losses.separation import l1_spectrogram

    g = torch.Generator().manual_seed(0)
    src = torch.rand(2, 2, 8, 8, generator=g)
    mix = src.sum(1, keepdim=True) + 1e-10
    batch = SpectralBatch(mix_spec=torch.zeros(2, 8, 8, dtype=torch.complex64), log_mag=mix.log(), gt_masks=(src > mix / 2).float(),
                          weight=torch.ones_like(mix), mix_mag=mix, src_mag=src)
    exact = torch.logit((src / mix).clamp(1e-6, 1 - 1e-6))
    assert l1_spectrogram(exact, batch).item() == pytest.approx(0.0, abs=1e-4)
    off = exact + 0.5
    expected = ((torch.sigmoid(off) * mix - src).abs().mean(dim=(-2, -1)).sum(1)).mean()
    assert l1_spectrogram(off, batch).item() == pytest.approx(expected.item()) and expected > 0.01


def test_alignment_head_none_aligns_the_bottleneck_itself():
    cfg = SeparatorConfig(fusion="late", k=4, align_dim=16, align_head="none", unet=UNetConfig(ngf=2, num_downs=5),
                          visual=VisualConfig(kind="embedding", embedding_dim=8))
    net = AVSeparator(cfg)
    assert net.align_proj is None
    z = torch.randn(3, 16)
    assert torch.equal(net.aligned(z), z)
    assert AVSeparator(replace(cfg, align_head="linear")).align_proj is not None
    with pytest.raises(ValueError, match=r"align_head=none aligns the U-Net bottleneck itself, but it has 16 channels"):
        AVSeparator(replace(cfg, align_dim=512))
