"""The whole DAG on a micro config: synth -> extract -> test mixtures -> train -> evaluate -> table1."""

import json
import re
import shutil

import pandas as pd
import pytest
from workflow_helpers import copy_workflow, micro_params, snakemake, write_params


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    copy_workflow(root)
    write_params(root, micro_params())
    first = snakemake(root, "results/table1.csv")
    assert first.returncode == 0, first.stderr[-4000:]
    return root, (root / "results/table1.csv").read_bytes()


@pytest.mark.slow
def test_two_clean_runs_write_byte_identical_tables(first_run, tmp_path):
    copy_workflow(tmp_path)
    write_params(tmp_path, micro_params())
    res = snakemake(tmp_path, "results/table1.csv")
    assert res.returncode == 0, res.stderr[-4000:]
    assert (tmp_path / "results/table1.csv").read_bytes() == first_run[1]
    assert (tmp_path / "results/eval/synth-music/sop.parquet").read_bytes() == (
        first_run[0] / "results/eval/synth-music/sop.parquet"
    ).read_bytes()


@pytest.mark.slow
def test_dag_runs_end_to_end_then_has_nothing_to_do(first_run):
    tmp_path = first_run[0]

    table = pd.read_csv(tmp_path / "results/table1.csv")
    assert list(table.columns) == ["method", "SDR", "SIR", "SAR", "dataset", "n_mixtures", "n_skipped", "visual_weights",
                                   "SDR_common", "SIR_common", "SAR_common", "n_common", "SDR_std", "SIR_std", "SAR_std",
                                   "SDR_common_std", "SIR_common_std", "SAR_common_std", "n_seeds"]
    row = table.iloc[0]
    assert row["method"] == "Sound-of-Pixels"
    assert row["n_seeds"] == 1 and table.filter(like="_std").isna().all().all()  # one seed (params seeds:): no spread
    assert row["dataset"] == "synth-music"
    assert row["visual_weights"] == "random-init"
    assert row["n_mixtures"] + row["n_skipped"] == 4
    assert table[["SDR", "SIR", "SAR"]].notna().all().all()

    # The table row is the mean of the per-mixture scores the evaluation stage wrote.
    per_mix = pd.read_parquet(tmp_path / "results/eval/synth-music/sop.parquet")
    scored = per_mix[per_mix["status"] == "scored"]
    assert len(scored) == row["n_mixtures"]
    assert abs(scored["sdr"].mean() - row["SDR"]) < 1e-3
    assert row["n_common"] == row["n_mixtures"] and abs(row["SDR_common"] - row["SDR"]) < 1e-9  # one row: all its own
    summary = json.loads((tmp_path / "results/eval/synth-music/sop.json").read_text())
    assert summary["visual_weights"] == "random-init"

    # Every stage logged, and the extract stage printed its counts.
    assert "extract synth-music: ok=22 failed=0" in (tmp_path / "logs/extract/synth-music.log").read_text()
    # Every job recorded its usage (rule_context: wall, peak RSS, CPU), the training's in full.
    usage = {f.relative_to(tmp_path / "logs/benchmarks").as_posix(): pd.read_csv(f, sep="\t")
             for f in (tmp_path / "logs/benchmarks").rglob("*.tsv")}
    assert {"synth/synth-music.tsv", "extract/synth-music.tsv", "train/synth-music/sop.tsv",
            "evaluate/synth-music/sop.tsv", "report/table1.tsv"} <= set(usage)
    for name, u in usage.items():
        assert list(u.columns) == ["s", "h:m:s", "max_rss", "cpu_time", "user", "system"] and len(u) == 1, name
        assert u["s"].iloc[0] > 0 and u["max_rss"].iloc[0] > 0 and u["cpu_time"].iloc[0] > 0, name
    train = usage["train/synth-music/sop.tsv"].iloc[0]
    assert train["max_rss"] > 100 and train["cpu_time"] > 1  # torch, the model and the clips: not a bare Python
    assert (tmp_path / "models/synth-music/sop/train_log.csv").exists()
    assert not (tmp_path / "models/synth-music/sop/state.pt").exists()  # resume state removed at the end

    second = snakemake(tmp_path, "-n", "results/table1.csv")
    assert second.returncode == 0
    assert "Nothing to be done" in second.stdout + second.stderr

    # Editing package code a rule runs makes that rule (and only what depends on it) out of date.
    report_src = tmp_path / "avsep/reporting/tables.py"
    report_src.write_text(report_src.read_text() + "\n# edited\n")
    third = snakemake(tmp_path, "-n", "results/table1.csv")
    out = third.stdout + third.stderr
    assert "rule separation_table:" in out or "localrule separation_table:" in out
    assert "avsep/reporting/tables.py" in out
    assert "rule train:" not in out and "localrule train:" not in out


@pytest.mark.slow
def test_editing_a_module_reached_only_through_imports_replans_the_job(first_run, tmp_path):
    """The train rule's script never names avsep/engine/distributed.py: only the import chain train.py ->
    avsep.stages.train -> avsep.engine.trainer -> avsep.engine.distributed reaches it. Editing it must still
    make the training job (and what depends on it) out of date, and leave the data jobs alone."""
    root = tmp_path / "copy"
    shutil.copytree(first_run[0], root, symlinks=True)  # copy2 keeps the mtimes: training is up to date
    before = snakemake(root, "-n", "results/table1.csv")
    assert before.returncode == 0 and "rule train:" not in before.stdout + before.stderr
    script = (root / "workflow_scripts/train.py").read_text()
    assert "distributed" not in script and "engine" not in script
    mod = root / "avsep/engine/distributed.py"
    mod.write_text(mod.read_text() + "\n# edited\n")
    out = snakemake(root, "-n", "results/table1.csv")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "rule train:" in text or "localrule train:" in text
    assert "avsep/engine/distributed.py" in text  # the reason: updated input files
    assert "rule separation_table:" in text or "localrule separation_table:" in text
    for upstream in ("synth", "extract", "test_mixtures"):
        assert f"rule {upstream}:" not in text and f"localrule {upstream}:" not in text


def _planned(text: str) -> list[tuple[str, str]]:
    """(rule, wildcards) of each job of a dry run's listing."""
    jobs: list[tuple[str, str]] = []
    for line in text.splitlines():
        m = re.match(r"^\s*(?:local)?rule (\w+):\s*$", line)
        if m:
            jobs.append((m.group(1), ""))
        elif jobs and (w := re.match(r"^\s+wildcards: (.*)$", line)):
            jobs[-1] = (jobs[-1][0], w.group(1).strip())
    return jobs


@pytest.mark.slow
def test_a_changed_training_parameter_reruns_exactly_the_jobs_downstream_of_training(first_run, tmp_path):
    """train.lr feeds only the train rule's params: the plan is training, the evaluation of its checkpoint and
    the table; the data, the mixtures and the baselines stay as they are."""
    root = tmp_path / "copy"
    shutil.copytree(first_run[0], root, symlinks=True)  # copy2 keeps the mtimes: everything is up to date
    params = micro_params()
    params["train"]["lr"] = params["train"]["lr"] * 1.1
    write_params(root, params)
    out = snakemake(root, "-n", "results/table1.csv")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert sorted(_planned(text)) == [
        ("evaluate", "dataset=synth-music, model=sop"),
        ("separation_table", "table=table1"),
        ("train", "dataset=synth-music, model=sop"),
    ], text[-3000:]
    assert "params" in text  # the reason Snakemake gives: the job's params changed


@pytest.mark.slow
def test_a_second_seed_trains_one_more_run_and_the_table_averages_both(first_run, tmp_path):
    """seeds: [1234, 1235] adds the run sop~s1235 (its own training and evaluation, seed 1235); the first seed's run
    is the one already made, not retrained, and the table reports the mean over both runs, SDR_std and n_seeds."""
    import torch

    root = tmp_path / "copy"
    shutil.copytree(first_run[0], root, symlinks=True)  # copy2 keeps the mtimes: the first seed is up to date
    seeds = ("--config", "seeds=[1234,1235]")
    plan = snakemake(root, "-n", "results/table1.csv", *seeds)
    text = plan.stdout + plan.stderr
    assert plan.returncode == 0, text[-3000:]
    assert sorted(_planned(text)) == [
        ("evaluate", "dataset=synth-music, model=sop~s1235"),
        ("separation_table", "table=table1"),
        ("train", "dataset=synth-music, model=sop~s1235"),
    ], text[-3000:]
    res = snakemake(root, "results/table1.csv", "results/metrics/table1.json", *seeds)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    a = torch.load(root / "models/synth-music/sop/checkpoint.pt", map_location="cpu", weights_only=True)
    b = torch.load(root / "models/synth-music/sop~s1235/checkpoint.pt", map_location="cpu", weights_only=True)
    assert a["meta"]["train"]["seed"] == 1234 and b["meta"]["train"]["seed"] == 1235
    assert any(not torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    runs = [json.loads((root / f"results/eval/synth-music/{r}.json").read_text())["sdr"] for r in ("sop", "sop~s1235")]
    row = pd.read_csv(root / "results/table1.csv").iloc[0]
    assert row["n_seeds"] == 2 and row["SDR"] == pytest.approx(sum(runs) / 2, abs=1e-3)
    assert row["SDR_std"] == pytest.approx(abs(runs[0] - runs[1]) / 2**0.5, abs=1e-3) and row["SDR_std"] > 0
    metrics = json.loads((root / "results/metrics/table1.json").read_text())
    assert metrics["Sound-of-Pixels"]["n_seeds"] == 2 and metrics["Sound-of-Pixels"]["SDR_std"] == pytest.approx(row["SDR_std"])
