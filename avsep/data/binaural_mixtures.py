"""LAVSS mixture lists: eligible clips, different-instrument and same-type test lists, the training sampler."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from avsep.config.lavss import MIXTURE_KINDS
from avsep.core.seeding import rng
from avsep.data.boxes import BoxSource
from avsep.data.mixtures import Crop, MixSpec, make_test_mixtures, specs_from_table, usable_clips


def eligible_clips(manifest: pd.DataFrame, split: str, boxes: BoxSource, clip_samples: int) -> pd.DataFrame:
    """Usable clips of ``split`` (ok, long enough) that have boxes, with their position ``cx``."""
    clips = usable_clips(manifest, split, clip_samples)
    has = clips["id"].astype(str).isin(boxes.tracks.keys())
    clips = clips[has].reset_index(drop=True)
    clips["cx"] = [boxes.positions[str(c)] for c in clips["id"]]
    return clips


def _spec_row(i: int, spec: MixSpec, kind: str, cx: Sequence[float]) -> dict[str, object]:
    row: dict[str, object] = {"mixture_id": f"{kind}{i:05d}", "kind": kind}
    for j in range(len(spec.clips)):
        row[f"clip_{j}"] = spec.clips[j]
        row[f"label_{j}"] = spec.labels[j]
        row[f"start_{j}"] = spec.starts[j]
        row[f"frames_{j}"] = ",".join(str(f) for f in spec.frames[j])
        row[f"cx_{j}"] = float(cx[j])
    return row


def same_type_pairs(clips: pd.DataFrame, min_dx: float) -> dict[str, list[tuple[int, int]]]:
    """Per label, the pairs of clip rows (i < j) whose positions differ by at least ``min_dx``."""
    out: dict[str, list[tuple[int, int]]] = {}
    for lab, g in clips.groupby("label", sort=True):
        idx = list(g.index)
        pairs = [(a, b) for ai, a in enumerate(idx) for b in idx[ai + 1:]
                 if abs(float(clips.at[a, "cx"]) - float(clips.at[b, "cx"])) >= min_dx]
        if pairs:
            out[str(lab)] = pairs
    return out


def _draw_same_type(clips: pd.DataFrame, pairs: dict[str, list[tuple[int, int]]], gen: np.random.Generator,
                    label: str, crop: Crop, centre: bool, gain_range: tuple[float, float] | None,
                    random_frame: bool) -> MixSpec:
    a, b = pairs[label][int(gen.integers(len(pairs[label])))]
    rows = [clips.loc[a], clips.loc[b]]
    if gen.random() < 0.5:
        rows.reverse()
    return _spec_from_rows(rows, gen, crop, centre, gain_range, random_frame)


def _spec_from_rows(rows: list[pd.Series], gen: np.random.Generator, crop: Crop, centre: bool,
                    gain_range: tuple[float, float] | None, random_frame: bool) -> MixSpec:
    clips, labs, starts, frames, gains = [], [], [], [], []
    for r in rows:
        slack = int(r["n_samples"]) - crop.clip_samples
        start = slack // 2 if centre else int(gen.integers(slack + 1))
        if random_frame:  # one random frame inside the crop (the paper picks one frame per clip)
            t = start / crop.sample_rate + gen.uniform(0.0, crop.clip_samples / crop.sample_rate)
            fr: tuple[int, ...] = (int(min(max(round(t * crop.fps), 0), int(r["n_frames"]) - 1)),)
        else:
            fr = crop.frames(start, int(r["n_frames"]))
        clips.append(str(r["id"]))
        labs.append(str(r["label"]))
        starts.append(start)
        frames.append(fr)
        gains.append(float(gen.uniform(*gain_range)) if gain_range else 1.0)
    return MixSpec(tuple(clips), tuple(labs), tuple(starts), tuple(frames), tuple(gains))


def make_mixture_list(
    manifest: pd.DataFrame, boxes: BoxSource, kind: str, n: int, seed: int, crop: Crop, min_dx: float,
    split: str = "test",
) -> pd.DataFrame:
    """The seeded test list of ``kind`` (``different`` | ``same_type``): two sources per mixture, one frame each.

    ``different``: :func:`avsep.data.mixtures.make_test_mixtures` on the clips that have boxes (centre
    crops). ``same_type``: mixture ``i`` is of label ``i mod L`` (labels in sorted order, so every
    instrument gets the same share); a random pair of its clips at least ``min_dx`` apart, a random
    order and random crops (the few pairs of a small test split then still give distinct mixtures).
    """
    if crop.n_frames != 1:
        raise ValueError("LAVSS mixtures use one frame per source (crop.n_frames = 1)")
    clips = eligible_clips(manifest, split, boxes, crop.clip_samples)
    pos = dict(zip(clips["id"].astype(str), clips["cx"]))
    if kind == "different":
        table = make_test_mixtures(clips, n, 2, seed, crop, split=split)
        rows = [_spec_row(i, s, kind, [pos[c] for c in s.clips]) for i, s in enumerate(specs_from_table(table, 2))]
        return pd.DataFrame(rows)
    if kind != "same_type":
        raise ValueError(f"unknown mixture kind {kind!r}; expected one of {MIXTURE_KINDS}")
    pairs = same_type_pairs(clips, min_dx)
    if not pairs:
        raise ValueError(f"same-type mixtures ({split} split): no instrument has two clips with boxes at least "
                         f"{min_dx} of the frame width apart ({len(clips)} clips with {boxes.label})")
    labels = sorted(pairs)
    gen = rng("lavss-same-type", seed)
    rows = []
    for i in range(n):
        s = _draw_same_type(clips, pairs, gen, labels[i % len(labels)], crop, False, None, False)
        rows.append(_spec_row(i, s, kind, [pos[c] for c in s.clips]))
    return pd.DataFrame(rows)


class LAVSSSampler:
    """Training mixtures as a pure function of (seed, step, index): a resumed run sees the same batches.

    With probability ``same_type`` a mixture is two clips of one instrument at least ``min_dx`` apart
    (only position and the binaural cues tell them apart), else two clips of different instruments.
    """

    def __init__(self, clips: pd.DataFrame, seed: int, crop: Crop, gain_range: tuple[float, float],
                 same_type: float = 0.0, min_dx: float = 0.2, where: str = "training") -> None:
        self.clips = clips.reset_index(drop=True)
        self.by_label = {str(k): list(g.index) for k, g in self.clips.groupby("label", sort=True)}
        if len(self.by_label) < 2:
            raise ValueError(f"{where}: mixing needs clips of at least 2 labels with boxes, found {sorted(self.by_label)}")
        self.pairs = same_type_pairs(self.clips, min_dx) if same_type > 0 else {}
        if same_type > 0 and not self.pairs:
            raise ValueError(f"{where}: train_same_type > 0 but no instrument has two clips >= {min_dx} apart")
        self.seed, self.crop, self.gain_range, self.same_type = seed, crop, gain_range, same_type

    def item(self, step: int, index: int) -> MixSpec:
        gen = rng("lavss-train", self.seed, step, index)
        if self.same_type > 0 and gen.random() < self.same_type:
            labels = sorted(self.pairs)
            return _draw_same_type(self.clips, self.pairs, gen, labels[int(gen.integers(len(labels)))], self.crop,
                                   False, self.gain_range, True)
        labels = sorted(self.by_label)
        la, lb = gen.choice(len(labels), size=2, replace=False)
        rows = [self.clips.loc[self.by_label[labels[int(li)]][int(gen.integers(len(self.by_label[labels[int(li)]])))]]
                for li in (la, lb)]
        return _spec_from_rows(rows, gen, self.crop, False, self.gain_range, True)

    def batch(self, step: int, batch_size: int, rank_offset: int = 0) -> list[MixSpec]:
        """Mixtures ``rank_offset .. rank_offset + batch_size - 1`` of the step's batch (a process's share)."""
        return [self.item(step, i) for i in range(rank_offset, rank_offset + batch_size)]

    def mirror_flags(self, step: int, batch_size: int, p: float, rank_offset: int = 0) -> torch.Tensor:
        """Which mixtures of the batch at ``step`` are mirrored (each with probability ``p``; a pure function of
        (seed, step, index), like the mixtures themselves)."""
        return torch.tensor([bool(rng("lavss-mirror", self.seed, step, i).random() < p)
                             for i in range(rank_offset, rank_offset + batch_size)])
