"""scripts/output_hashes.py: the fingerprints that show a refactor changed no result."""

import subprocess
import sys

import pandas as pd
import torch
from workflow_helpers import ROOT


def _run(root) -> dict[str, str]:
    res = subprocess.run([sys.executable, str(ROOT / "scripts/output_hashes.py"), str(root)], capture_output=True,
                         text=True, check=True)
    return {line.split(" ", 1)[1]: line.split(" ", 1)[0] for line in res.stdout.splitlines()}


def test_fingerprints_follow_results_and_weights_but_not_wall_clock(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "models/d/m").mkdir(parents=True)
    (tmp_path / "results/table1.csv").write_text("method,SDR\nx,1.0\n")
    torch.save({"model": {"w": torch.ones(3)}, "meta": {"when": 1}}, tmp_path / "models/d/m/checkpoint.pt")
    pd.DataFrame({"step": [1], "loss": [0.5], "lr": [1e-3], "seconds": [1.0]}).to_csv(tmp_path / "models/d/m/train_log.csv", index=False)
    first = _run(tmp_path)
    assert set(first) == {"results/table1.csv", "models/d/m/checkpoint.pt:state_dict", "models/d/m/train_log.csv:no-seconds"}
    # other metadata and another wall-clock time: the same fingerprints
    torch.save({"model": {"w": torch.ones(3)}, "meta": {"when": 2}}, tmp_path / "models/d/m/checkpoint.pt")
    pd.DataFrame({"step": [1], "loss": [0.5], "lr": [1e-3], "seconds": [9.0]}).to_csv(tmp_path / "models/d/m/train_log.csv", index=False)
    assert _run(tmp_path) == first
    # a changed weight or table cell: a changed fingerprint
    torch.save({"model": {"w": torch.tensor([1.0, 1.0, 1.0 + 1e-7])}}, tmp_path / "models/d/m/checkpoint.pt")
    (tmp_path / "results/table1.csv").write_text("method,SDR\nx,1.01\n")
    second = _run(tmp_path)
    assert second["models/d/m/checkpoint.pt:state_dict"] != first["models/d/m/checkpoint.pt:state_dict"]
    assert second["results/table1.csv"] != first["results/table1.csv"]
