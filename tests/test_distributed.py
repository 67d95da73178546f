"""Distributed data-parallel training: 2 CPU processes (gloo, torchrun) against one process, same global batch."""

import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from workflow_helpers import micro_clips, micro_params

from avsep.config.params import Params
from avsep.core.io import read_manifest, write_parquet
from avsep.data.mixtures import make_train_mixtures
from avsep.engine import checkpoint
from avsep.stages import train

# Per-process BatchNorm statistics (on CPU; GPUs use SyncBatchNorm) are the only difference between
# the two runs, so the loss curves agree closely but not bit for bit.
LOSS_RTOL = 0.05


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    raw = micro_params()
    raw["train"].update(steps=4, batch_size=4, lr_milestones=[3], checkpoint_every=2, log_every=1)
    p = Params(raw)
    manifest = micro_clips(p, root)
    table = make_train_mixtures(read_manifest(manifest), steps=4, batch_size=4, num_sources=2, seed=p.seed,
                                crop=p.crop(p.model("sop").separator.visual.n_frames), gain_range=(0.5, 1.5),
                                per_epoch=16, distinct_epochs=None)
    write_parquet(table, root / "train_mixtures.parquet")
    return root, raw, manifest


@pytest.mark.slow
def test_two_gloo_processes_follow_the_single_process_loss_curve(setup, tmp_path):
    root, raw, manifest = setup
    single = train.train(Params(raw), "synth-music", "sop", manifest, tmp_path / "one/checkpoint.pt",
                                root / "train_mixtures.parquet")
    raw2 = {**raw, "train": {**raw["train"], "processes": 2}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw2))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "avsep.cli", "train",
         "--params", str(tmp_path / "params.yaml"), "--dataset", "synth-music", "--model", "sop",
         "--manifest", str(manifest), "--mixtures", str(root / "train_mixtures.parquet"),
         "--out", str(tmp_path / "two/checkpoint.pt")],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    one = pd.read_csv(single.parent / "train_log.csv")
    two = pd.read_csv(tmp_path / "two/train_log.csv")
    assert list(two["step"]) == [1, 2, 3, 4]
    # Step 1 starts from identical weights on identical mixtures: only BatchNorm statistics differ.
    rel = ((two["loss"] - one["loss"]).abs() / one["loss"]).max()
    assert rel < LOSS_RTOL, (one["loss"].tolist(), two["loss"].tolist())
    assert checkpoint.load(tmp_path / "two/checkpoint.pt")["meta"]["world_size"] == 2
    assert not (tmp_path / "two/state.pt").exists()  # rank 0 removed the resume state at the end


def test_batch_size_must_split_evenly_over_the_processes():
    raw = micro_params()
    raw["train"].update(batch_size=3, processes=2)
    with pytest.raises(ValueError, match="train.processes"):
        Params(raw)
