import pytest
from workflow_helpers import (
    ROOT,
    copy_workflow,
    default_params,
    snakemake,
    write_params,
)

from avsep.config.params import ConfigError, Params, load_params


def test_default_params_are_valid():
    p = load_params(ROOT / "params.yaml")
    # The papers' STFT; the demo separates 3 s clips into 128 x 128 spectrograms with a 6-level U-Net (2 x 2 bottleneck).
    assert p.frontend.n_fft == 1022 and p.frontend.hop == 256 and p.frontend.clip_samples == 32767
    assert p.frontend.n_frames == p.frontend.warp_bins == 128
    assert p.models["sop"].separator.fusion == "late" and p.models["hfra"].separator.unet.num_downs == 6


def test_spectrogram_sides_must_divide_by_the_unet_depth():
    raw = default_params()
    raw["audio"]["warp_bins"] = 96
    with pytest.raises(ConfigError, match=r"models\.sop: audio\.warp_bins = 96 is not a multiple of 2\^num_downs = 64"):
        Params(raw)
    raw["audio"]["warp_bins"] = 128
    raw["models"]["hfra"]["num_downs"] = 8
    with pytest.raises(ConfigError, match=r"models\.hfra: audio\.warp_bins = 128 is not a multiple of 2\^num_downs = 256"):
        Params(raw)


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
