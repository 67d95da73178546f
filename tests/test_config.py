import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from avsep.config import ConfigError, Params, load_params

ROOT = Path(__file__).resolve().parents[1]


def _raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


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
    raw = _raw()
    mutate(raw)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Params(raw)


def test_snakemake_stops_before_any_job_naming_the_key(tmp_path):
    for name in ("Snakefile", "rules", "workflow_scripts", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    (tmp_path / "avsep" / "schemas").mkdir(parents=True)
    shutil.copy(ROOT / "avsep/schemas/params.schema.yaml", tmp_path / "avsep/schemas/")
    raw = _raw()
    raw["train"]["batch_size"] = "thirty-two"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "results/table1.csv"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "batch_size" in out and "thirty-two" in out
    assert not (tmp_path / "data").exists()
