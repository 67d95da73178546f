import pytest

from avsep.config import ConfigError, Params, load_params

from workflow_helpers import ROOT, copy_workflow, default_params, snakemake, write_params


def test_default_params_are_valid():
    p = load_params(ROOT / "params.yaml")
    assert p.frontend.n_fft == 1022 and p.frontend.hop == 256 and p.frontend.clip_samples == 65535
    assert p.models["sop"].separator.fusion == "late"


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda r: r["train"].__setitem__("stepz", 3), "train.stepz"),
        (lambda r: r["train"].__setitem__("steps", "many"), "train.steps"),
        (lambda r: r["mixing"].__setitem__("num_sources", 1), "mixing.num_sources"),
        (lambda r: r["models"]["sop"].__setitem__("fusion", "early"), "models.sop.fusion"),
        (lambda r: r.__setitem__("colour", "blue"), "colour"),
        (lambda r: r["tables"]["table1"].__setitem__("methods", ["nope"]), "tables.table1.methods"),
        (lambda r: r["tables"]["table1"].__setitem__("dataset", "music-real"), "tables.table1.dataset"),
    ],
)
def test_schema_error_names_the_key(mutate, key):
    raw = default_params()
    mutate(raw)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Params(raw)


@pytest.mark.parametrize(
    "mutate, needles",
    [
        (lambda r: r["train"].__setitem__("batch_size", "thirty-two"), ("batch_size", "thirty-two")),
        (lambda r: r["evaluate"].__setitem__("mask_treshold", 0.5), ("mask_treshold",)),
        (lambda r: r["tables"]["table1"].__setitem__("methods", ["nope"]), ("tables.table1.methods", "nope")),
        (lambda r: r["models"]["hfra_align"].__setitem__("align_lambda", -1.0), ("models.hfra_align.align_lambda",)),
        (lambda r: r["datasets"].pop("synth-sounds"), ("tables.table3.dataset", "synth-sounds")),
    ],
)
def test_snakemake_stops_before_any_job_naming_the_key(tmp_path, mutate, needles):
    copy_workflow(tmp_path)
    raw = default_params()
    mutate(raw)
    write_params(tmp_path, raw)
    proc = snakemake(tmp_path, "-n", "results/table1.csv", timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for n in needles:
        assert n in out
    assert not (tmp_path / "data").exists()
