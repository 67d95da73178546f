"""Training and evaluation on a micro synthetic dataset rendered and extracted by the real stages."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from workflow_helpers import micro_clips, micro_params

from avsep.config.params import Params
from avsep.core.io import read_manifest
from avsep.data.inputs import FrameInputs
from avsep.data.mixtures import TrainSampler
from avsep.data.store import ClipStore
from avsep.engine import checkpoint
from avsep.engine.hfra import HFRATask, TrainData
from avsep.engine.trainer import fit
from avsep.evaluation.inference import separate


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    p = Params(micro_params())
    return p, micro_clips(p, tmp_path_factory.mktemp("micro"))


def _data(p: Params, manifest: Path) -> TrainData:
    v = p.models["sop"].separator.visual
    sampler = TrainSampler(read_manifest(manifest), num_sources=2, seed=p.seed, crop=p.crop(v.n_frames))
    store = ClipStore(manifest, 11025)
    return TrainData(store, sampler, FrameInputs(store, v.frame_size), p.frontend)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(path)["model"]


def test_training_is_deterministic_and_resumes_to_identical_weights(micro, tmp_path):
    p, manifest = micro
    cfg = p.train  # 3 steps, resume state every 2
    sep = p.models["sop"].separator
    a = fit(HFRATask(sep, _data(p, manifest)), cfg, tmp_path / "a", meta={"model": "sop"})
    b = fit(HFRATask(sep, _data(p, manifest)), cfg, tmp_path / "b", meta={"model": "sop"})
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)

    # Interrupted after 2 steps (the resume state is written), then rerun: same final weights.
    state = fit(HFRATask(sep, _data(p, manifest)), cfg, tmp_path / "c", meta={"model": "sop"}, stop_after=2)
    assert state.name == "state.pt" and state.exists()
    c = fit(HFRATask(sep, _data(p, manifest)), cfg, tmp_path / "c", meta={"model": "sop"})
    wc = _weights(c)
    assert all(torch.equal(wa[k], wc[k]) for k in wa)
    log = pd.read_csv(tmp_path / "c/train_log.csv")
    assert list(log["step"]) == [1, 2, 3]


def test_training_reduces_the_loss(micro, tmp_path):
    from dataclasses import replace

    p, manifest = micro
    cfg = replace(p.train, steps=30, lr=3e-3, lr_milestones=(), log_every=5, checkpoint_every=1000, batch_size=4)
    fit(HFRATask(p.models["sop"].separator, _data(p, manifest)), cfg, tmp_path, meta={"model": "sop"})
    loss = pd.read_csv(tmp_path / "train_log.csv")["loss"].to_numpy()
    assert loss[-2:].mean() < loss[0]


def test_eq4_loss_trains_and_is_saved_with_the_model(micro, tmp_path):
    from dataclasses import replace

    p, manifest = micro
    sep = replace(p.models["sop"].separator, sep_loss="l1_spec")
    cfg = replace(p.train, steps=30, lr=3e-3, lr_milestones=(), log_every=5, checkpoint_every=1000, batch_size=4)
    ck = fit(HFRATask(sep, _data(p, manifest)), cfg, tmp_path, meta={"model": "sop"})
    loss = pd.read_csv(tmp_path / "train_log.csv")["loss"].to_numpy()
    assert loss[-2:].mean() < loss[0]
    model, _ = checkpoint.load_separator(ck)
    assert model.cfg.sep_loss == "l1_spec"


def test_separation_outside_the_workflow(micro, tmp_path):
    p, manifest = micro
    ck = fit(HFRATask(p.models["sop"].separator, _data(p, manifest)), p.train, tmp_path, meta={"model": "sop", "label": "x"})
    model, meta = checkpoint.load_separator(ck)
    assert meta["model"] == "sop"
    store = ClipStore(manifest, 11025)
    ids = sorted(store.rows)
    a = store.audio(ids[0], 0, 70000)[0]
    b = store.audio(ids[-1], 0, 70000)[0]
    mix = (a + b) / 2
    frames = torch.from_numpy(np.stack([[store.frame(ids[0], 5, 32)], [store.frame(ids[-1], 5, 32)]]))
    est = separate(model, mix, frames, p.frontend, threshold=None)
    assert est.shape == (2, 70000)  # any length: consecutive windows of 65,535 samples
    assert np.all(np.isfinite(est))
    # Each estimate carries signal (a soft mask of a non-silent mixture).
    assert (np.abs(est).sum(axis=1) > 0).all()
    with pytest.raises(ValueError, match="NaN"):
        separate(model, np.full(100, np.nan, dtype=np.float32), frames, p.frontend)


def test_a_nan_model_output_fails_evaluation_naming_the_mixture(micro, tmp_path):
    from avsep.data.mixtures import make_test_mixtures
    from avsep.evaluation.evaluate import EvalConfig, evaluate_model
    from avsep.models.hfra.separator import AVSeparator

    p, manifest = micro
    v = p.models["sop"].separator
    net = AVSeparator(v)
    with torch.no_grad():
        net.bias.fill_(float("nan"))  # every mask logit becomes NaN
    table = make_test_mixtures(read_manifest(manifest), 2, 2, p.seed, p.crop(v.visual.n_frames))
    store = ClipStore(manifest, 11025)
    with pytest.raises(FloatingPointError, match=r"mixture mix00000 \(clips .+\).*NaN or inf"):
        evaluate_model(net, store, table, FrameInputs(store, v.visual.frame_size), EvalConfig(batch_size=2), p.frontend)


def test_avsep_info_describes_a_checkpoint_and_refuses_other_files(micro, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    p, manifest = micro
    out = tmp_path / "models/synth-music/sop"
    ck = fit(HFRATask(p.models["sop"].separator, _data(p, manifest)), p.train, out,
             meta={"model": "sop", "label": "Sound-of-Pixels", "dataset": "synth-music", "visual_weights": "random-init"})
    (tmp_path / "results/eval/synth-music").mkdir(parents=True)
    (tmp_path / "results/eval/synth-music/sop.json").write_text(json.dumps(
        {"sdr": 1.25, "sir": 2.5, "sar": 9.0, "n_scored": 4, "n_skipped": 0}))
    avsep = Path(sys.executable).parent / "avsep"  # the console script the package installs
    res = subprocess.run([str(avsep), "info", str(ck)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "family: HFRA family" in res.stdout and "variant: sop (Sound-of-Pixels)" in res.stdout
    assert "dataset: synth-music" in res.stdout and "visual weights: random-init" in res.stdout
    assert f"training: {p.train.steps} steps of batch {p.train.batch_size}" in res.stdout
    assert "evaluation (results/eval/synth-music/sop.json): SDR 1.25, SIR 2.50, SAR 9.00 dB on 4 mixtures" in res.stdout
    for bad, why in ((tmp_path / "results/eval/synth-music/sop.json", "not a readable checkpoint"),
                     (tmp_path / "missing.pt", "does not exist")):
        res = subprocess.run([str(avsep), "info", str(bad)], capture_output=True, text=True)
        assert res.returncode == 2 and why in res.stderr and str(bad) in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    helped = subprocess.run([str(avsep), "--help"], capture_output=True, text=True).stdout
    assert all(cmd in helped for cmd in ("info", "train", "lavss-oracles"))


def test_warmup_linear_schedule_is_logged_and_resumes(micro, tmp_path):
    """HFRA's code schedule: linear warm-up, linear decay to lr_gamma x lr at decay_steps, then flat."""
    from dataclasses import replace

    from avsep.engine.trainer import lr_factor

    p, manifest = micro
    cfg = replace(p.train, steps=8, lr=1e-3, lr_milestones=(), lr_schedule="warmup_linear", warmup_steps=2,
                  decay_steps=6, lr_gamma=0.1, log_every=1, checkpoint_every=3)
    assert [round(lr_factor(s, cfg), 4) for s in range(8)] == [0.5, 1.0, 1.0, 0.775, 0.55, 0.325, 0.1, 0.1]
    sep = p.models["sop"].separator
    a = fit(HFRATask(sep, _data(p, manifest)), cfg, tmp_path / "a", meta={"model": "sop"})
    lr = pd.read_csv(tmp_path / "a/train_log.csv")["lr"].to_numpy()  # the lr after each step
    assert np.allclose(lr, [1e-3 * lr_factor(s, cfg) for s in range(1, 9)], rtol=1e-3)
    fit(HFRATask(sep, _data(p, manifest)), cfg, tmp_path / "b", meta={"model": "sop"}, stop_after=3)
    b = fit(HFRATask(sep, _data(p, manifest)), cfg, tmp_path / "b", meta={"model": "sop"})
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_lr_visual_trains_the_visual_encoder_at_its_own_rate(micro):
    from dataclasses import replace

    from avsep.engine.trainer import _optimizer
    from avsep.models.hfra.separator import AVSeparator

    p, _ = micro
    model = AVSeparator(p.models["sop"].separator)
    opt = _optimizer(model, replace(p.train, lr=1e-3, lr_visual=5e-5))
    groups = {g["lr"]: g["params"] for g in opt.param_groups}
    visual = {id(q) for q in model.frame_encoder.parameters()}
    assert {id(q) for q in groups[5e-5]} == visual
    assert not visual & {id(q) for q in groups[1e-3]}
    assert sum(len(g) for g in groups.values()) == len(list(model.parameters()))
    assert len(_optimizer(model, p.train).param_groups) == 1  # unset: one group, as before


@pytest.mark.parametrize("train, match", [
    ({"lr_schedule": "warmup_linear", "warmup_steps": 5, "lr_milestones": []}, r"train.lr_schedule=warmup_linear needs train.decay_steps"),
    ({"lr_schedule": "warmup_linear", "warmup_steps": 5, "decay_steps": 4, "lr_milestones": []}, r"decay_steps above"),
    ({"lr_schedule": "warmup_linear", "decay_steps": 4, "lr_milestones": [2]}, r"train.lr_milestones is for lr_schedule=step"),
    ({"warmup_steps": 5}, r"train.warmup_steps/decay_steps apply to lr_schedule=warmup_linear only"),
])
def test_lr_schedule_errors_name_the_key(train, match):
    from avsep.config.params import ConfigError

    raw = micro_params()
    raw["train"].update(train)
    with pytest.raises(ConfigError, match=match):
        Params(raw)
