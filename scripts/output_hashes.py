"""Fingerprints of a DAG run's outputs, to check that a refactor changes no result.

    python scripts/output_hashes.py RUN_DIR > before.txt   # on the old revision's run
    python scripts/output_hashes.py RUN_DIR > after.txt    # on the new revision's run
    diff before.txt after.txt                               # nothing: the same results

One line per artefact, ``<first 16 hex of sha256> <path>``: the bytes of every table, per-mixture score
file and summary under ``results/`` (``.csv``, ``.parquet``, ``.json``) and of the mixture lists and
embedding caches under ``data/``; each checkpoint's state dict (tensor names and bytes, not the pickle, whose
metadata may differ); each ``train_log.csv`` without its wall-clock ``seconds`` column.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pandas as pd
import torch


def _h(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def fingerprints(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in sorted(root.glob("results/**/*")):
        if p.is_file() and p.suffix in (".csv", ".parquet", ".json"):
            out[str(p.relative_to(root))] = _h(p.read_bytes())
    for p in sorted(root.glob("models/**/checkpoint.pt")):
        state = torch.load(p, map_location="cpu", weights_only=True)["model"]
        h = hashlib.sha256()
        for k, v in sorted(state.items()):
            h.update(k.encode())
            h.update(v.contiguous().numpy().tobytes())
        out[f"{p.relative_to(root)}:state_dict"] = h.hexdigest()[:16]
    for p in sorted(root.glob("models/**/train_log.csv")):
        log = pd.read_csv(p).drop(columns=["seconds"])
        out[f"{p.relative_to(root)}:no-seconds"] = _h(log.to_csv(index=False).encode())
    for p in sorted(root.glob("data/*/*.parquet")) + sorted(root.glob("data/*/embed/*.npy")):
        out[str(p.relative_to(root))] = _h(p.read_bytes())
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(__doc__, file=sys.stderr)
        return 2
    for path, digest in fingerprints(Path(argv[0])).items():
        print(digest, path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
