"""Seeds as a table dimension (params ``seeds:``, issue 17): run names, the mean/spread over seeds and the planned
jobs (a two-seed table through the real DAG: tests/test_workflow_e2e.py)."""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from workflow_helpers import copy_workflow, default_params, micro_params, snakemake, write_params

from avsep.config.params import ConfigError, Params, model_runs, resolve_run, seed_list, seeded_name, split_seeded
from avsep.reporting.seeds import group_runs, mean_over_seeds, sample_std, series_over_seeds, spread_columns
from avsep.reporting.tables import TABLE_COLUMNS, separation_table, separation_vs_paper

# --- run names ------------------------------------------------------------------------------------------


def test_run_names_round_trip():
    assert seeded_name("sop", None) == "sop" and split_seeded("sop") == ("sop", None)
    assert seeded_name("hfra_align", 1235) == "hfra_align~s1235"
    assert split_seeded("hfra_align~s1235") == ("hfra_align", 1235)
    assert split_seeded(seeded_name("late_align", 0)) == ("late_align", 0)


@pytest.mark.parametrize("bad", ["sop~", "sop~s", "sop~x12", "sop~s12a", "~s3", "sop~s1~s2", "sop~s-1", "sop~s١٢"])
def test_malformed_run_names_are_refused_with_the_expected_form(bad):
    with pytest.raises(ConfigError, match=r"malformed model run name .*<model>~s<seed>"):
        split_seeded(bad)


def test_runs_follow_the_seed_list_and_baselines_run_once():
    raw = default_params()
    assert seed_list(raw) == [1234] == [raw["seed"]]
    del raw["seeds"]
    assert seed_list(raw) == [raw["seed"]]  # optional: defaults to [seed]
    raw["seeds"] = [7, 1235, 3]
    assert model_runs(raw, "sop") == ["sop", "sop~s1235", "sop~s3"]
    assert model_runs(raw, "rpca") == ["rpca"]
    assert resolve_run(raw, "sop") == ("sop", 7) and resolve_run(raw, "sop~s3") == ("sop", 3)
    with pytest.raises(ConfigError, match="the first seed's run is named 'sop'"):
        resolve_run(raw, "sop~s7")
    with pytest.raises(ConfigError, match=r"99 is not one of seeds: \[7, 1235, 3\]"):
        resolve_run(raw, "sop~s99")
    with pytest.raises(ConfigError, match="'nope' is not defined under models"):
        resolve_run(raw, "nope~s3")


def test_training_seed_of_each_run_and_the_data_seed():
    raw = default_params()
    p = Params(raw)
    v, cfg = p.run("sop")
    assert cfg == p.train and cfg.seed == p.seed == 1234  # the default: today's training, bit for bit
    raw["seeds"] = [1234, 1235]
    p = Params(raw)
    v, cfg = p.run("sop~s1235")
    assert v is p.model("sop") and cfg.seed == 1235 and p.seed == 1234
    assert {k: x for k, x in vars(cfg).items() if k != "seed"} == {k: x for k, x in vars(p.train).items() if k != "seed"}


@pytest.mark.parametrize("seeds", [[], [1, 1], [-1], [1.5]])
def test_seed_lists_are_validated(seeds):
    raw = default_params()
    raw["seeds"] = seeds
    with pytest.raises(ConfigError, match="seeds"):
        Params(raw)


# --- the mean and spread over seeds ----------------------------------------------------------------------


def test_mean_over_seeds_on_made_numbers():
    a = [{"method": "A", "SDR": 1.0, "n": 48, "w": "x"}, {"method": "A", "SDR": 2.0, "n": 47, "w": "x"},
         {"method": "A", "SDR": 6.0, "n": 48, "w": "y"}]
    base = [{"method": "RPCA", "SDR": -0.5, "n": 48, "w": "none"}]
    rows = mean_over_seeds([a, base], ["SDR"])
    assert list(rows[0]) == ["method", "SDR", "n", "w", "SDR_std", "n_seeds"]
    assert rows[0]["SDR"] == pytest.approx(3.0) and rows[0]["SDR_std"] == pytest.approx(np.std([1, 2, 6], ddof=1))
    assert rows[0]["n_seeds"] == 3 and rows[0]["n"] == pytest.approx(143 / 3) and rows[0]["w"] == "x; y"
    # one run (a baseline, or one seed): its own values, unchanged, and no spread
    assert rows[1] == {**base[0], "SDR_std": rows[1]["SDR_std"], "n_seeds": 1} and math.isnan(rows[1]["SDR_std"])
    assert type(rows[1]["n"]) is int
    assert sample_std([2.0, 4.0]) == pytest.approx(math.sqrt(2.0)) and math.isnan(sample_std([2.0]))
    assert spread_columns(["SDR", "SIR"]) == ["SDR_std", "SIR_std", "n_seeds"]


def test_series_over_seeds():
    s1 = pd.Series({"cello": 1.0, "tuba": 3.0})
    s2 = pd.Series({"cello": 3.0, "tuba": 5.0, "flute": 2.0})
    mean, sd = series_over_seeds([s1, s2])
    assert mean.to_dict() == {"cello": 2.0, "flute": 2.0, "tuba": 4.0}
    assert sd["cello"] == pytest.approx(math.sqrt(2)) and math.isnan(sd["flute"])  # one seed has it
    mean, sd = series_over_seeds([s1])
    assert mean is s1 and sd.isna().all()


def test_group_runs_names_a_missing_run():
    runs = {"sop": ["sop", "sop~s5"], "rpca": ["rpca"]}
    files = ["r/sop~s5.json", "r/rpca.json", "r/sop.json"]
    assert group_runs(files, runs, lambda f: f.split("/")[-1][:-5]) == {
        "sop": ["r/sop.json", "r/sop~s5.json"], "rpca": ["r/rpca.json"]}
    with pytest.raises(ValueError, match=r"no input file for run\(s\) \['sop~s5'\]"):
        group_runs(files[1:], runs, lambda f: f.split("/")[-1][:-5])


def _eval_files(tmp_path, name, scores):
    df = pd.DataFrame([{"mixture_id": m, "status": "scored" if v is not None else "skipped", "sdr": v, "sir": v, "sar": v}
                       for m, v in scores.items()])
    df.to_parquet(tmp_path / f"{name}.parquet")
    ok = df[df["status"] == "scored"]
    (tmp_path / f"{name}.json").write_text(json.dumps({
        "n_scored": len(ok), "n_skipped": len(df) - len(ok), "sdr": ok["sdr"].mean(), "sir": ok["sir"].mean(),
        "sar": ok["sar"].mean(), "dataset": "d", "visual_weights": "random-init"}))
    return tmp_path / f"{name}.json", tmp_path / f"{name}.parquet"


def test_separation_table_averages_the_seeds_of_a_row(tmp_path):
    runs = {"x": {"m0": 1.0, "m1": 3.0}, "x~s2": {"m0": 3.0, "m1": None}, "base": {"m0": 0.0, "m1": 1.0}}
    files = {k: _eval_files(tmp_path, k, v) for k, v in runs.items()}
    t = separation_table([[files["x"][0], files["x~s2"][0]], files["base"][0]], ["X", "Base"],
                         [[files["x"][1], files["x~s2"][1]], files["base"][1]])
    assert list(t.columns) == TABLE_COLUMNS
    x, b = t.iloc[0], t.iloc[1]
    assert x["SDR"] == pytest.approx((2.0 + 3.0) / 2) and x["SDR_std"] == pytest.approx(np.std([2.0, 3.0], ddof=1))
    assert x["n_seeds"] == 2 and x["n_mixtures"] == pytest.approx(1.5)
    # common mixtures: those every run of every row scored (m0 only)
    assert x["n_common"] == 1 and x["SDR_common"] == pytest.approx(2.0) and x["SDR_common_std"] == pytest.approx(math.sqrt(2))
    assert b["n_seeds"] == 1 and math.isnan(b["SDR_std"]) and b["SDR"] == pytest.approx(0.5) and b["SDR_common"] == 0.0
    vs = separation_vs_paper(t, ["x", "rpca"], "table1")
    assert list(vs.columns[-4:]) == ["SDR_std", "SIR_std", "SAR_std", "n_seeds"] and list(vs["n_seeds"]) == [2, 1]
    # one run per row: the values it had before the seeds existed
    one = separation_table([files["x"][0]], ["X"], [files["x"][1]])
    assert one.iloc[0]["SDR"] == json.loads(files["x"][0].read_text())["sdr"] and one.iloc[0]["n_mixtures"] == 2
    assert one.iloc[0]["n_seeds"] == 1 and one[["SDR_std", "SIR_std", "SAR_std"]].isna().all().all()


# --- the workflow ----------------------------------------------------------------------------------------


def test_plan_has_one_training_and_one_evaluation_per_model_and_seed(tmp_path):
    copy_workflow(tmp_path)
    p = micro_params()
    p["tables"] = {"table1": {"dataset": "synth-music", "methods": ["rpca", "sop", "clipsep_late"]},
                   "tableA1": {"dataset": "synth-music", "methods": ["clipsep_late"]}}
    write_params(tmp_path, p)
    res = snakemake(tmp_path, "-n", "results/table1.csv", "results/tableA1.csv", "--config", "seeds=[1234,77]",
                    timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", out, re.MULTILINE))
    assert int(jobs["train"]) == 4 and int(jobs["evaluate"]) == 4 and int(jobs["evaluate_baseline"]) == 1
    for m in ("sop", "sop~s77", "clipsep_late", "clipsep_late~s77"):
        assert f"models/synth-music/{m}/checkpoint.pt" in out and f"results/eval/synth-music/{m}.json" in out, m
    assert "rpca~s77" not in out and "~s1234" not in out
    # a run whose seed is not in seeds is no job: the input function names why
    res = snakemake(tmp_path, "-n", "models/synth-music/sop~s5/checkpoint.pt", "--config", "seeds=[1234,77]", timeout=300)
    assert res.returncode != 0 and "5 is not one of seeds: [1234, 77]" in res.stdout + res.stderr


# Two seeds trained through the real DAG: tests/test_workflow_e2e.py (it reuses that module's run of the first seed).
