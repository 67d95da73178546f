import pytest
from workflow_helpers import ROOT, copy_workflow, default_params, snakemake, write_params

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


def test_command_line_values_are_typed_like_params_yaml_and_errors_name_their_source(tmp_path):
    from avsep.config.params import validate
    from avsep.config.sources import apply_command_line, origin, typed

    # What Snakemake hands over for --config audio="{'hop': 512, 'fps': 8.0}" train="{'lr_milestones': [1]}".
    cli = {"audio": {"hop": "512", "fps": "8.0"}, "train": {"lr_milestones": ["1"]}, "clip": {"pretrained": "random"}}
    assert typed(cli) == {"audio": {"hop": 512, "fps": 8.0}, "train": {"lr_milestones": [1]}, "clip": {"pretrained": "random"}}
    raw = default_params()
    apply_command_line(raw, cli)
    assert raw["audio"]["hop"] == 512 and raw["audio"]["n_fft"] == 1022  # merged, not replaced
    cfile = tmp_path / "paper.yaml"
    cfile.write_text("train:\n  steps: 0\n")
    name = origin({"audio": {"hop": "x"}}, [str(ROOT / "params.yaml"), str(cfile)])
    assert name(["audio", "hop"]) == "--config"
    assert name(["train", "steps"]) == f"--configfile {cfile}"
    assert name(["seed"]) == "params.yaml"
    bad = default_params()
    apply_command_line(bad, {"audio": {"hop": "x"}})
    with pytest.raises(ConfigError, match=r"^--config: invalid value for audio\.hop: 'x' is not of type 'integer'"):
        validate(bad, name)


@pytest.mark.parametrize("args, message", [
    (["--config", "audio={'hop': 'x'}"], "--config: invalid value for audio.hop: 'x' is not of type 'integer'"),
    (["--configfile", "bad.yaml"], "bad.yaml: invalid value for train.steps: 0 is less than the minimum of 1"),
])
def test_snakemake_names_where_a_bad_value_came_from(tmp_path, args, message):
    copy_workflow(tmp_path)
    write_params(tmp_path, default_params())
    (tmp_path / "bad.yaml").write_text("train:\n  steps: 0\n")
    res = snakemake(tmp_path, "-n", "results/table1.csv", *args)
    assert res.returncode != 0 and message in res.stdout + res.stderr
    assert any(line.startswith(args[0]) and message in line for line in (res.stdout + res.stderr).splitlines())


def test_snakemake_accepts_a_nested_command_line_value(tmp_path):
    copy_workflow(tmp_path)
    write_params(tmp_path, default_params())
    res = snakemake(tmp_path, "-n", "results/table1.csv", "--config", "mixing={'test_mixtures': 24}")
    assert res.returncode == 0, (res.stdout + res.stderr)[-2000:]


def test_a_larger_spectrogram_with_the_demo_depth_is_refused_not_a_4x4_bottleneck():
    raw = default_params()
    raw["audio"]["warp_bins"] = 256  # the papers' 256 rows, but the demo's 6 levels: 256 / 64 = 4
    with pytest.raises(ConfigError, match=r"models\.sop: audio\.warp_bins = 256 halved num_downs = 6 times leaves a "
                                          r"4-wide bottleneck.*use num_downs = 7"):
        Params(raw)
    raw["model_defaults"]["num_downs"] = 7
    raw["audio"]["clip_samples"] = 65535  # 256 frames
    assert Params(raw).models["hfra"].separator.unet.num_downs == 7


def test_hfra_loss_and_alignment_head_switches():
    raw = default_params()
    p = Params(raw)
    assert p.models["hfra_align"].separator.sep_loss == "bce" and p.models["hfra_align"].separator.align_head == "linear"
    raw["model_defaults"].update(sep_loss="l1_spec", align_head="none")
    with pytest.raises(ConfigError, match=r"models\.late_align\.align_head=none aligns the U-Net bottleneck itself "
                                          r"\(8 x ngf = 64 channels\) to the 512-d CLAP embedding: set ngf=64"):
        Params(raw)
    raw["model_defaults"]["ngf"] = 64
    sep = Params(raw).models["hfra_align"].separator
    assert (sep.sep_loss, sep.align_head) == ("l1_spec", "none")
    raw["model_defaults"]["sep_loss"] = "l2"
    with pytest.raises(ConfigError, match=r"model_defaults\.sep_loss"):
        Params(raw)
