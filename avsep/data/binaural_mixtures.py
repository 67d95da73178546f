"""LAVSS mixture lists: the clip pool, eligible clips, different-instrument and same-type test lists, the sampler.

The clip pool (:func:`clip_pool`, ``data/<dataset>/lavss/clips.parquet``) says which label and split LAVSS gives
each clip of ``lavss.dataset``: ``lavss.labels`` ``metadata`` (the dataset's labels) or ``detected`` (the
detection stage's label, solo clips only: :func:`avsep.detection.objects.label_clips`), and ``lavss.split``
``dataset`` (the dataset's own split) or ``seeded`` (:func:`seeded_split`, the paper's 728/103/208).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from avsep.config.lavss import LABEL_SOURCES, MIXTURE_KINDS, SPLIT_SOURCES
from avsep.core.io import STATUS_FAILED, STATUS_OK
from avsep.core.seeding import rng
from avsep.data.boxes import BoxSource
from avsep.data.mixtures import Crop, MixSpec, make_test_mixtures, specs_from_table, usable_clips

#: Columns of the LAVSS clip pool (``data/<dataset>/lavss/clips.parquet``): one row per clip of the manifest.
POOL_COLUMNS = ("id", "status", "reason", "label", "split", "kind", "metadata_label", "dataset_split")
#: The splits :func:`seeded_split` assigns, in the order of its counts.
SEEDED_SPLITS = ("train", "val", "test")
#: The LAVSS paper's FAIR-Play solo split (section 4.1): train / val / test clips of its 1,039 solo clips.
PAPER_SPLIT = (728, 103, 208)


def scaled_counts(counts: Sequence[int], n: int) -> tuple[int, ...]:
    """``counts`` scaled to sum to ``n`` (largest remainders; ties to the earlier split): the paper's 728/103/208
    for 1,039 clips, 32/4/9 for 45."""
    counts = [int(c) for c in counts]
    total = sum(counts)
    if total <= 0:
        raise ValueError(f"split counts {counts} must sum to more than 0")
    exact = [c * n / total for c in counts]
    out = [int(np.floor(e)) for e in exact]
    for i in sorted(range(len(counts)), key=lambda i: (-(exact[i] - out[i]), i))[: n - sum(out)]:
        out[i] += 1
    return tuple(out)


def seeded_split(ids: Sequence[str], seed: int, counts: Sequence[int] = PAPER_SPLIT) -> dict[str, str]:
    """A random train / val / test split of ``ids`` in the proportions of ``counts`` (:func:`scaled_counts`).

    A pure function of the set of ids and ``seed`` (the ids are sorted, then permuted by a generator seeded with
    ``seed``): the paper's random 728/103/208 split of FAIR-Play's solo clips (LAVSS 4.1). It is not stratified:
    on a small pool an instrument may get no test clip (the test lists then draw from the others).
    """
    ordered = sorted({str(i) for i in ids})
    sizes = scaled_counts(counts, len(ordered))
    perm = rng("lavss-split", seed).permutation(len(ordered))
    names = np.repeat(np.array(SEEDED_SPLITS[: len(sizes)]), sizes)
    return {ordered[int(j)]: str(names[k]) for k, j in enumerate(perm)}


def clip_pool(
    manifest: pd.DataFrame, labels: str = "metadata", split: str = "dataset", detected: pd.DataFrame | None = None,
    seed: int = 0, counts: Sequence[int] = PAPER_SPLIT,
) -> pd.DataFrame:
    """The label and split LAVSS gives each clip of the manifest (:data:`POOL_COLUMNS`); ``ok`` rows are used.

    ``labels``: ``metadata`` keeps the manifest's label (and every clip, as before the pool existed);
    ``detected`` takes the label of the clip's detection (``detected``: :func:`avsep.detection.objects.label_clips`)
    and keeps solo clips only: a duet, a clip whose detection failed or that has no detection result is
    ``failed`` with the reason. ``split``: ``dataset`` keeps the manifest's split; ``seeded`` splits the ``ok``
    clips by :func:`seeded_split` (``seed``, ``counts``). The other clips keep their dataset split.
    """
    m = manifest.reset_index(drop=True)
    pool = pd.DataFrame({
        "id": m["id"].astype(str), "status": m["status"].astype(str),
        "reason": [f"extract failed: {r}" if s != STATUS_OK else ""
                   for s, r in zip(m["status"], m["reason"] if "reason" in m.columns else [""] * len(m))],
        "label": m["label"], "split": m["split"], "kind": "", "metadata_label": m["label"], "dataset_split": m["split"],
    })
    pool.loc[pool["status"] != STATUS_OK, "status"] = STATUS_FAILED
    if labels == "detected":
        if detected is None:
            raise ValueError("lavss.labels=detected: the pool needs the clips' detection result")
        det = detected.assign(clip=detected["clip"].astype(str)).set_index("clip")
        for i, cid in enumerate(pool["id"]):
            if cid not in det.index:
                why, ok, kind, lab = "no detection result for the clip", False, "", None
            else:
                d = det.loc[cid]
                kind, lab = str(d["kind"]), d["label"]
                ok = d["status"] == STATUS_OK and kind == "solo"
                why = (f"duet ({d['labels']}): listed in duets.parquet" if d["status"] == STATUS_OK
                       else f"detection: {d['reason']}")
            pool.loc[i, ["kind", "label"]] = [kind, lab]
            if pool.at[i, "status"] == STATUS_OK and not ok:
                pool.loc[i, ["status", "reason"]] = [STATUS_FAILED, why]
    elif labels == "metadata":  # a label naming two instruments (a MUSIC duet, "flute violin") is a duet
        pool["kind"] = ["duet" if len(str(lab).split()) > 1 else "solo" for lab in pool["label"]]
    else:
        raise ValueError(f"unknown lavss.labels {labels!r}; expected one of {LABEL_SOURCES}")
    if split == "seeded":
        ok = pool["status"] == STATUS_OK
        assigned = seeded_split(pool.loc[ok, "id"], seed, counts)
        pool.loc[ok, "split"] = pool.loc[ok, "id"].map(assigned)
    elif split != "dataset":
        raise ValueError(f"unknown lavss.split {split!r}; expected one of {SPLIT_SOURCES}")
    return pool[list(POOL_COLUMNS)]


#: Columns of the duet list (``data/<dataset>/lavss/duets.parquet``): one row per object of a duet clip.
DUET_COLUMNS = (
    "clip", "dataset_split", "labels", "rank", "side", "label", "class", "score", "frame", "x1", "y1", "x2", "y2",
    "median_cx", "median_cy", "frames_seen", "frames_two", "two_fraction",
)  # fmt: skip


def duet_list(manifest: pd.DataFrame, detected: pd.DataFrame | None, objects: pd.DataFrame | None) -> pd.DataFrame:
    """The duet clips (``kind == "duet"`` in ``detected``) that extracted fine, with their two objects.

    ``objects`` are the labelled objects of :func:`avsep.detection.objects.label_clips`: per object its label,
    class, score, best box (frame, x1..y2, normalised) and median centre over the frames it was seen in;
    ``side`` is ``left`` for the object with the smaller median centre. Real duets have no per-source ground
    truth: the list is for separating them and showing the result, not for scoring (:data:`DUET_COLUMNS`).
    Without a detection result (``lavss.labels: metadata``) the list is empty.
    """
    if detected is None or objects is None or detected.empty:
        return pd.DataFrame({c: [] for c in DUET_COLUMNS})
    ok = set(manifest.loc[manifest["status"] == STATUS_OK, "id"].astype(str))
    split = dict(zip(manifest["id"].astype(str), manifest["split"]))
    d = detected[(detected["status"] == STATUS_OK) & (detected["kind"] == "duet")]
    d = d[d["clip"].astype(str).isin(ok)].set_index("clip")
    o = objects[objects["clip"].astype(str).isin(d.index) & objects["rank"].isin([1, 2])].copy()
    if o.empty:
        return pd.DataFrame({c: [] for c in DUET_COLUMNS})
    o["clip"] = o["clip"].astype(str)
    o["dataset_split"] = o["clip"].map(split)
    for c in ("labels", "frames_two", "two_fraction"):
        o[c] = o["clip"].map(d[c])
    left = o.loc[o.groupby("clip")["median_cx"].idxmin(), ["clip", "rank"]]
    is_left = set(zip(left["clip"], left["rank"]))
    o["side"] = ["left" if (c, r) in is_left else "right" for c, r in zip(o["clip"], o["rank"])]
    return o.sort_values(["clip", "rank"])[list(DUET_COLUMNS)].reset_index(drop=True)


def eligible_clips(manifest: pd.DataFrame, split: str, boxes: BoxSource, clip_samples: int,
                   pool: pd.DataFrame | None = None) -> pd.DataFrame:
    """Usable clips of ``split`` (ok, long enough) that have boxes, with their position ``cx``.

    With a ``pool`` (:func:`clip_pool`) only its ``ok`` clips are used, with the pool's label and split."""
    if pool is not None:
        use = pool[pool["status"] == STATUS_OK].assign(id=lambda d: d["id"].astype(str)).set_index("id")
        manifest = manifest[manifest["id"].astype(str).isin(use.index)].copy()
        ids = manifest["id"].astype(str)
        manifest["label"] = use.loc[ids, "label"].to_numpy()
        manifest["split"] = use.loc[ids, "split"].to_numpy()
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
    split: str = "test", pool: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The seeded test list of ``kind`` (``different`` | ``same_type``): two sources per mixture, one frame each.

    ``different``: :func:`avsep.data.mixtures.make_test_mixtures` on the clips that have boxes (centre
    crops). ``same_type``: mixture ``i`` is of label ``i mod L`` (labels in sorted order, so every
    instrument gets the same share); a random pair of its clips at least ``min_dx`` apart, a random
    order and random crops (the few pairs of a small test split then still give distinct mixtures).
    With a ``pool`` (:func:`clip_pool`) its ``ok`` clips are used with its labels and splits.
    """
    if crop.n_frames != 1:
        raise ValueError("LAVSS mixtures use one frame per source (crop.n_frames = 1)")
    clips = eligible_clips(manifest, split, boxes, crop.clip_samples, pool)
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
