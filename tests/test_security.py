"""Security rules of the code base (issue: no pickle from outside, no shell, weights-only checkpoints)."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from avsep.engine import checkpoint

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("avsep/**/*.py"), *ROOT.glob("workflow_scripts/*.py")])


def _calls(pattern: str) -> list[str]:
    rx = re.compile(pattern)
    return [f"{p.relative_to(ROOT)}:{i}" for p in SOURCES for i, line in enumerate(p.read_text().splitlines(), 1) if rx.search(line)]


def test_sources_found():
    assert len(SOURCES) > 30


def test_no_shell_and_no_pickle_anywhere():
    assert _calls(r"shell\s*=\s*True") == []
    assert _calls(r"\bos\.system\(|\bos\.popen\(") == []
    assert _calls(r"\bpickle\.loads?\(|\bdill\.|\bjoblib\.load\(") == []
    assert _calls(r"allow_pickle\s*=\s*True") == []
    assert _calls(r"yaml\.load\(|yaml\.unsafe_load\(") == []


def test_every_torch_load_is_weights_only():
    loads = _calls(r"torch\.load\(")
    assert loads, "checkpoint loading moved: update this test"
    for where in loads:
        path, line = where.rsplit(":", 1)
        text = (ROOT / path).read_text().splitlines()[int(line) - 1]
        assert "weights_only=True" in text, where


def test_checkpoint_with_a_pickled_object_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):  # would run code on unpickling
            return (print, ("pwned",))

    bad = tmp_path / "evil.pt"
    torch.save({"model": {}, "x": Evil()}, bad)
    with pytest.raises(RuntimeError, match="could not be loaded safely"):
        checkpoint.load(bad)
    good = tmp_path / "good.pt"
    torch.save({"model": {"w": torch.ones(2)}, "meta": {"a": [1, 2]}}, good)
    assert torch.equal(checkpoint.load(good)["model"]["w"], torch.ones(2))


def test_embedding_caches_refuse_object_arrays(tmp_path):
    from avsep.data.inputs import ClapTargets

    np.save(tmp_path / "m.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    import pandas as pd

    pd.DataFrame({"key": ["k"], "row": [0]}).to_parquet(tmp_path / "m.parquet")
    with pytest.raises(ValueError, match="allow_pickle"):
        ClapTargets(tmp_path / "m.npy", tmp_path / "m.parquet")
