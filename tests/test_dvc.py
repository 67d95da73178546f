"""``dvc.yaml`` on a micro config in a temporary git repository: ``dvc repro`` equals Snakemake, experiments,
metrics and plots work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from workflow_helpers import ROOT, copy_workflow, micro_params, write_params

#: What a clean checkout holds for DVC beside the workflow files.
DVC_FILES = ("dvc.yaml", ".dvcignore", ".gitignore", ".dvc/config", ".dvc/.gitignore")
TABLE = "results/table1.csv"


def _env() -> dict[str, str]:
    # The stages call `snakemake` from PATH: the one installed beside this Python.
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONUNBUFFERED": "1",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }


def _run(cwd: Path, *cmd: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(cmd), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"
    return res


def _dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(cwd, sys.executable, "-m", "dvc", *args)


def _checkout(dest: Path, params: dict) -> None:
    """A clean checkout of the repository (workflow, config, DVC files) as a git repository."""
    dest.mkdir()
    copy_workflow(dest)
    write_params(dest, params)
    for name in DVC_FILES:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, dest / name)
    _run(dest, "git", "init", "-q", "-b", "main")
    _run(dest, "git", "add", "-A")
    _run(dest, "git", "commit", "-q", "-m", "checkout")


@pytest.mark.slow
def test_dvc_repro_equals_snakemake_then_experiment_metrics_and_plots(tmp_path: Path) -> None:
    params = micro_params()
    # The micro config has no binaural dataset, so it has no LAVSS tables (their stages need one).
    params["lavss"]["tables"] = {}

    # The reference: Snakemake alone, in its own copy, running while DVC works on the other.
    sm_dir = tmp_path / "snakemake"
    sm_dir.mkdir()
    copy_workflow(sm_dir)
    write_params(sm_dir, params)
    reference = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "1", TABLE],
        cwd=sm_dir, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        repo = tmp_path / "repo"
        _checkout(repo, params)
        stages = _dvc(repo, "stage", "list", "--name-only").stdout.split()
        assert stages == ["table@table1"], stages  # micro config: one table, no figure
        _dvc(repo, "repro")
        out, _ = reference.communicate(timeout=600)
    finally:
        reference.kill()
    assert reference.returncode == 0, out[-5000:]

    # Same bytes as Snakemake.
    assert (repo / TABLE).read_bytes() == (sm_dir / TABLE).read_bytes()
    table = pd.read_csv(repo / TABLE)
    assert list(table["method"]) == ["Sound-of-Pixels"]

    # Up to date afterwards: DVC has nothing to run.
    status = _dvc(repo, "status", "--json").stdout
    assert json.loads(status) == {}, status

    # Metrics: the table's numbers.
    metrics = json.loads(_dvc(repo, "metrics", "show", "--json").stdout)
    m = metrics[""]["data"]["results/metrics/table1.json"]["data"]
    row = table.iloc[0]
    for col in ("SDR", "SIR", "SAR", "n_mixtures"):
        assert m["Sound-of-Pixels"][col] == pytest.approx(float(row[col]))

    # Plots: the training curve (from train_log.csv) and per-instrument SDR render.
    plots = json.loads(_dvc(repo, "plots", "show", "--json").stdout)["data"]
    curve_key = "results/plots/table1/train_loss/sop.csv"
    sdr_key = "results/plots/table1/sdr_by_instrument/sop.csv"
    assert set(plots) == {curve_key, sdr_key}, set(plots)
    log = pd.read_csv(repo / "models/synth-music/sop/train_log.csv")
    curve = plots[curve_key][0]["content"]["data"]["values"]
    assert [float(v["loss"]) for v in curve] == pytest.approx(log["loss"].tolist())
    assert plots[curve_key][0]["content"]["encoding"]["x"]["field"] == "step"
    bars = plots[sdr_key][0]["content"]["data"]["values"]
    per_mix = pd.read_parquet(repo / "results/eval/synth-music/sop.parquet")
    scored = per_mix[per_mix["status"] == "scored"]
    labels = {lab for labs in scored["labels"] for lab in labs.split(",")}
    assert {v["instrument"] for v in bars} == labels
    _dvc(repo, "plots", "show", "-o", str(tmp_path / "dvc_plots"))
    assert (tmp_path / "dvc_plots/index.html").stat().st_size > 0

    # An experiment: a changed parameter reruns training (Snakemake sees the new params) and is tracked.
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-q", "-m", "baseline")
    base_ckpt = (repo / "models/synth-music/sop/checkpoint.pt").read_bytes()
    new_lr = params["train"]["lr"] * 2  # a value the config does not already have, whatever its default
    _dvc(repo, "exp", "run", "-S", f"train.lr={new_lr}", "-n", "lr2")
    assert (repo / "models/synth-music/sop/checkpoint.pt").read_bytes() != base_ckpt
    new_log = pd.read_csv(repo / "models/synth-music/sop/train_log.csv")
    assert new_log["lr"].iloc[0] == pytest.approx(new_lr)
    shown = json.loads(_dvc(repo, "exp", "show", "--json").stdout)
    runs = {e["name"]: e["revs"][0]["data"] for rev in shown for e in rev.get("experiments") or []}
    assert set(runs) == {"lr2"}, shown
    exp = runs["lr2"]
    assert exp["params"]["params.yaml"]["data"]["train"]["lr"] == pytest.approx(new_lr)
    exp_metrics = exp["metrics"]["results/metrics/table1.json"]["data"]["Sound-of-Pixels"]
    workspace_table = pd.read_csv(repo / TABLE).iloc[0]
    for col in ("SDR", "SIR", "SAR"):
        assert exp_metrics[col] == pytest.approx(float(workspace_table[col]))
    baseline = next(rev for rev in shown if rev.get("experiments"))["data"]
    assert baseline["params"]["params.yaml"]["data"]["train"]["lr"] == params["train"]["lr"]
    assert baseline["metrics"]["results/metrics/table1.json"]["data"]["Sound-of-Pixels"]["SDR"] == pytest.approx(
        float(row["SDR"])
    )
