"""Mix-and-separate: which clips are mixed, where they are cropped, and the fixed test mixture list.

A mixture is N clips of N different labels. Training mixtures are drawn from a generator seeded by
(seed, step, index), so any step's batch can be rebuilt (resume, distributed training). The test mixture
list is a seeded manifest written once, so every model is scored on the same mixtures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from avsep.core.seeding import rng


@dataclass(frozen=True)
class MixSpec:
    """One mixture: per source the clip row, crop start (samples), frame indices and gain."""

    clips: tuple[str, ...]
    labels: tuple[str, ...]
    starts: tuple[int, ...]
    frames: tuple[tuple[int, ...], ...]
    gains: tuple[float, ...]


@dataclass(frozen=True)
class Crop:
    """Where a source is read: crop length and rate, frame rate, and frames per source."""

    clip_samples: int
    sample_rate: int
    fps: float
    n_frames: int

    def frames(self, start: int, n_frames_clip: int) -> tuple[int, ...]:
        return frame_indices(start, self.clip_samples, self.sample_rate, self.fps, n_frames_clip, self.n_frames)


def frame_indices(start: int, clip_samples: int, sample_rate: int, fps: float, n_frames_clip: int, k: int) -> tuple[int, ...]:
    """0-based frame indices inside the crop: its centre for k=1, else evenly inside the crop.

    For k frames the crop is divided into k equal parts and the centre of each part is taken.
    """
    dur = clip_samples / sample_rate
    t0 = start / sample_rate
    times = [t0 + dur * (j + 0.5) / k for j in range(k)]
    return tuple(int(min(max(round(t * fps), 0), n_frames_clip - 1)) for t in times)


def _check_pool(clips: pd.DataFrame, num_sources: int, where: str) -> dict[str, pd.DataFrame]:
    groups = {str(lab): g.reset_index(drop=True) for lab, g in clips.groupby("label", sort=True)}
    if len(groups) < num_sources:
        raise ValueError(
            f"{where}: mixing {num_sources} sources needs clips of at least {num_sources} labels, "
            f"found {len(groups)} ({sorted(groups)})"
        )
    return groups


def draw_mixture(
    groups: dict[str, pd.DataFrame],
    gen: np.random.Generator,
    num_sources: int,
    crop: Crop,
    centre: bool,
    gain_range: tuple[float, float] | None,
) -> MixSpec:
    """Draw one mixture: distinct labels, one clip each, a crop and frames per clip."""
    labels = sorted(groups)
    chosen = gen.choice(len(labels), size=num_sources, replace=False)
    clips, labs, starts, frames, gains = [], [], [], [], []
    for li in chosen:
        g = groups[labels[int(li)]]
        row = g.iloc[int(gen.integers(len(g)))]
        slack = int(row["n_samples"]) - crop.clip_samples
        start = slack // 2 if centre else int(gen.integers(slack + 1))
        clips.append(str(row["id"]))
        labs.append(str(row["label"]))
        starts.append(start)
        frames.append(crop.frames(start, int(row["n_frames"])))
        gains.append(float(gen.uniform(*gain_range)) if gain_range else 1.0)
    return MixSpec(tuple(clips), tuple(labs), tuple(starts), tuple(frames), tuple(gains))


def usable_clips(manifest: pd.DataFrame, split: str, clip_samples: int) -> pd.DataFrame:
    """Rows of ``split`` that extracted fine and are long enough to crop."""
    m = manifest[(manifest["status"] == "ok") & (manifest["split"] == split)]
    return m[m["n_samples"] >= clip_samples].sort_values("id").reset_index(drop=True)


def make_test_mixtures(
    manifest: pd.DataFrame,
    n_mixtures: int,
    num_sources: int,
    seed: int,
    crop: Crop,
    split: str = "test",
) -> pd.DataFrame:
    """The fixed, seeded test mixture list (centre crops, unit gains), one row per mixture."""
    clips = usable_clips(manifest, split, crop.clip_samples)
    groups = _check_pool(clips, num_sources, f"test mixtures ({split} split)")
    gen = rng("test-mixtures", seed)
    rows = []
    for i in range(n_mixtures):
        spec = draw_mixture(groups, gen, num_sources, crop, True, None)
        row: dict[str, object] = {"mixture_id": f"mix{i:05d}"}
        for j in range(num_sources):
            row[f"clip_{j}"] = spec.clips[j]
            row[f"label_{j}"] = spec.labels[j]
            row[f"start_{j}"] = spec.starts[j]
            row[f"frames_{j}"] = ",".join(str(f) for f in spec.frames[j])
        rows.append(row)
    return pd.DataFrame(rows)


def specs_from_table(table: pd.DataFrame, num_sources: int) -> list[MixSpec]:
    """MixSpecs of a mixture list written by :func:`make_test_mixtures`."""
    out = []
    for _, r in table.iterrows():
        out.append(
            MixSpec(
                clips=tuple(str(r[f"clip_{j}"]) for j in range(num_sources)),
                labels=tuple(str(r[f"label_{j}"]) for j in range(num_sources)),
                starts=tuple(int(r[f"start_{j}"]) for j in range(num_sources)),
                frames=tuple(tuple(int(x) for x in str(r[f"frames_{j}"]).split(",")) for j in range(num_sources)),
                gains=(1.0,) * num_sources,
            )
        )
    return out


class TrainSampler:
    """Training mixtures as a pure function of (seed, step, index in batch)."""

    def __init__(
        self,
        manifest: pd.DataFrame,
        num_sources: int,
        seed: int,
        crop: Crop,
        gain_range: tuple[float, float] = (0.5, 1.5),
        split: str = "train",
    ) -> None:
        self.groups = _check_pool(usable_clips(manifest, split, crop.clip_samples), num_sources, f"training ({split} split)")
        self.num_sources = num_sources
        self.seed = seed
        self.crop = crop
        self.gain_range = gain_range

    def batch(self, step: int, batch_size: int, rank_offset: int = 0) -> list[MixSpec]:
        return [
            draw_mixture(
                self.groups,
                rng("train-mixture", self.seed, step, rank_offset + i),
                self.num_sources,
                self.crop,
                False,
                self.gain_range,
            )
            for i in range(batch_size)
        ]


# --------------------------------------------------------------------------------------------------
# The training-mixture manifest (HFRA aligns the U-Net bottleneck to the CLAP embedding of each mixture,
# so the training mixtures are a finite, seeded list whose CLAP embeddings are cached before training)
# --------------------------------------------------------------------------------------------------


def train_mixture_key(epoch: int, index_in_epoch: int, distinct_epochs: int | None) -> str:
    """The content key of a training mixture: equal keys mean identical mixtures.

    With ``distinct_epochs = K`` epoch ``e`` repeats the mixtures of epoch ``e % K``; with ``None`` every
    epoch draws new ones.
    """
    content_epoch = epoch % distinct_epochs if distinct_epochs else epoch
    return f"e{content_epoch:04d}-{index_in_epoch:06d}"


def make_train_mixtures(
    manifest: pd.DataFrame,
    steps: int,
    batch_size: int,
    num_sources: int,
    seed: int,
    crop: Crop,
    gain_range: tuple[float, float],
    per_epoch: int,
    distinct_epochs: int | None,
    split: str = "train",
) -> pd.DataFrame:
    """The seeded training-mixture manifest: one row per (step, index in batch).

    Global sample ``g = step * batch_size + index`` falls in epoch ``g // per_epoch`` at position
    ``k = g % per_epoch``; its mixture (random crops, random gains in ``gain_range``, distinct labels) is
    drawn from a generator seeded by ``(seed, "train-mixture", e, k)`` with ``e`` the epoch, or the epoch
    modulo ``distinct_epochs`` when that is set (then epochs repeat and only ``distinct_epochs x
    per_epoch`` distinct mixtures exist). ``mixture_id`` is the content key (:func:`train_mixture_key`).
    Columns: ``step, index, mixture_id, epoch`` and per source j ``clip_j, label_j, start_j, frames_j``
    (comma-separated frame indices, as in :func:`make_test_mixtures`) and ``gain_j``.
    """
    if steps < 1 or batch_size < 1 or per_epoch < 1:
        raise ValueError(f"training mixtures: steps={steps}, batch_size={batch_size}, per_epoch={per_epoch} must be >= 1")
    if distinct_epochs is not None and distinct_epochs < 1:
        raise ValueError(f"training mixtures: distinct_epochs={distinct_epochs} must be >= 1 or None")
    lo, hi = gain_range
    if not 0 < lo <= hi:
        raise ValueError(f"training mixtures: gain_range={gain_range!r} must be [low, high] with 0 < low <= high")
    clips = usable_clips(manifest, split, crop.clip_samples)
    groups = _check_pool(clips, num_sources, f"training mixtures ({split} split)")
    drawn: dict[str, MixSpec] = {}
    rows = []
    for step in range(steps):
        for index in range(batch_size):
            g = step * batch_size + index
            epoch, k = divmod(g, per_epoch)
            key = train_mixture_key(epoch, k, distinct_epochs)
            spec = drawn.get(key)
            if spec is None:
                content_epoch = epoch % distinct_epochs if distinct_epochs else epoch
                gen = rng(seed, "train-mixture", content_epoch, k)
                spec = drawn[key] = draw_mixture(groups, gen, num_sources, crop, False, (float(lo), float(hi)))
            row: dict[str, object] = {"step": step, "index": index, "mixture_id": key, "epoch": epoch}
            for j in range(num_sources):
                row[f"clip_{j}"] = spec.clips[j]
                row[f"label_{j}"] = spec.labels[j]
                row[f"start_{j}"] = spec.starts[j]
                row[f"frames_{j}"] = ",".join(str(f) for f in spec.frames[j])
                row[f"gain_{j}"] = spec.gains[j]
            rows.append(row)
    return pd.DataFrame(rows)


def specs_from_train_table(table: pd.DataFrame, num_sources: int) -> list[MixSpec]:
    """MixSpecs of a training-mixture manifest (:func:`make_train_mixtures`), gains included, in row order."""
    missing = [f"gain_{j}" for j in range(num_sources) if f"gain_{j}" not in table.columns]
    if missing:
        raise ValueError(f"training mixture table lacks column(s) {missing}")
    specs = specs_from_table(table, num_sources)
    gains = [tuple(float(r[f"gain_{j}"]) for j in range(num_sources)) for r in table.to_dict("records")]
    return [MixSpec(s.clips, s.labels, s.starts, s.frames, g) for s, g in zip(specs, gains)]
