"""What the CLIP and CLAP pre-training share: provenance labels, class-balanced batches, the lr schedule, logs.

Contrastive batches hold one example of each of ``batch_classes`` different classes (all classes by default):
captions of the same class are the same words, so two examples of one class in a batch would be false
negatives of each other under CLIP's InfoNCE loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from avsep.core.io import read_manifest, write_csv

#: Columns of ``pretrain_log.csv`` (one row per epoch).
LOG_COLUMNS = ("epoch", "step", "loss", "heldout_accuracy", "heldout_n", "chance", "lr", "logit_scale", "seconds", "cpu_seconds")


def provenance(dataset: str, seed: int) -> str:
    """The weights' provenance, the start of their label: ``synth-pretrained(<dataset>, seed=<seed>)``."""
    return f"synth-pretrained({dataset}, seed={seed})"


def split_clips(manifest_path: str | Path, split: str) -> pd.DataFrame:
    """The ok clips of ``split`` of an extract manifest, sorted by id."""
    m = read_manifest(manifest_path)
    m = m[(m["status"] == "ok") & (m["split"] == split)].sort_values("id").reset_index(drop=True)
    if m.empty:
        raise ValueError(f"{manifest_path}: no ok clip in split {split!r}")
    return m


def class_names(manifest_path: str | Path) -> list[str]:
    """The classes of a dataset: the labels of its ok clips, sorted."""
    m = read_manifest(manifest_path)
    return sorted(m.loc[m["status"] == "ok", "label"].astype(str).unique())


def class_batches(labels: np.ndarray, n_classes: int, steps: int, gen: np.random.Generator,
                  batch_classes: int | None = None) -> Iterator[np.ndarray]:
    """``steps`` batches of example indices, each one example of ``batch_classes`` distinct classes.

    Classes are drawn without replacement per batch; each class walks through a fresh permutation of its
    examples (so every example is seen before any repeats)."""
    labels = np.asarray(labels)
    k = n_classes if batch_classes is None else min(int(batch_classes), n_classes)
    pools = [np.flatnonzero(labels == c) for c in range(n_classes)]
    if any(len(p) == 0 for p in pools):
        missing = [c for c, p in enumerate(pools) if len(p) == 0]
        raise ValueError(f"no training example of class index(es) {missing}")
    orders = [gen.permutation(p) for p in pools]
    pos = [0] * n_classes
    for _ in range(steps):
        cls = np.sort(gen.permutation(n_classes)[:k])
        batch = []
        for c in cls:
            if pos[c] == len(orders[c]):
                orders[c], pos[c] = gen.permutation(pools[c]), 0
            batch.append(orders[c][pos[c]])
            pos[c] += 1
        yield np.asarray(batch, dtype=np.int64)


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def pick_captions(labels: Sequence[str], caption_sets: dict[str, list[str]], gen: np.random.Generator) -> list[str]:
    """One caption per example: a random template of its class."""
    return [caption_sets[lb][int(gen.integers(len(caption_sets[lb])))] for lb in labels]


def epoch_row(epoch: int, step: int, losses: Sequence[float], accuracy: float, n_heldout: int, n_classes: int,
              lr: float, logit_scale: float, t0: float, c0: float) -> dict:
    """One row of ``pretrain_log.csv``: the epoch's mean loss and held-out zero-shot accuracy, with ``t0`` /
    ``c0`` the wall and CPU clocks (``time.time``, ``time.process_time``) at the start of training."""
    return {"epoch": epoch, "step": step, "loss": float(np.mean(losses)), "heldout_accuracy": accuracy,
            "heldout_n": n_heldout, "chance": 1.0 / n_classes, "lr": lr, "logit_scale": logit_scale,
            "seconds": time.time() - t0, "cpu_seconds": time.process_time() - c0}


def write_log(rows: list[dict], path: str | Path) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(LOG_COLUMNS))
    write_csv(df, path)
    return df
