"""Helpers for tests that run the Snakemake workflow in a temporary copy of the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "rules", "workflow_scripts", "envs", "avsep", "report")


def copy_workflow(dest: Path) -> None:
    """The workflow files and the package sources they track (not the data) into ``dest``.

    The package that runs is the installed one; the copied sources are the rules' code inputs.
    """
    for name in WORKFLOW_FILES:
        src = ROOT / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, target)


def default_params() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def micro_params() -> dict[str, Any]:
    """The default config shrunk to seconds: same stages, tiny sizes."""
    p = default_params()
    p["datasets"] = {
        "synth-music": {"source": "synth", "classes": "synth-music", "clips_per_class": {"train": 1, "test": 1}, "binaural": False}
    }
    p["synth"].update(clip_seconds=6.5, video_fps=8, frame_size=48)
    p["mixing"]["test_mixtures"] = 4
    p["model_defaults"].update(ngf=2, k=4, visual_width=2, frame_size=32, n_frames=1)
    p["train"].update(steps=3, batch_size=2, lr_milestones=[2], checkpoint_every=2, log_every=1)
    # Soft masks: a 3-step model's binary masks are often all zero, and all-silent estimates are not scored.
    p["evaluate"].update(batch_size=4, mask_threshold=None)
    p["threads"] = 1
    # random encoders (seeded): the micro DAG does not pre-train the domain encoders (tests/test_pretrain_encoders.py does)
    p["clip"].update(model="ViT-B-32", pretrained="random")
    p["clap"]["weights"] = "random"
    p["tables"] = {"table1": {"dataset": "synth-music", "methods": ["sop"]}}
    p["figures"] = {}
    if "detect" in p:  # detection runs on the datasets that exist here
        p["detect"]["datasets"] = [d for d in p["detect"].get("datasets", []) if d in p["datasets"]]
    return p


def micro_clips(p: Any, root: Path) -> Path:
    """The micro ``synth-music`` clips rendered and extracted by the real stages under ``root``; the extract
    manifest's path."""
    from avsep.stages import data

    data.synth(p, "synth-music", root / "raw/manifest.parquet")
    data.extract(p, "synth-music", root / "raw/manifest.parquet", root / "extract/manifest.parquet")
    return root / "extract/manifest.parquet"


def write_params(dest: Path, params: dict[str, Any]) -> None:
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def snakemake(cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env,
    )
