"""LAVSS end to end: binaural mixtures with boxes, monaural pre-training, training, evaluation per ear, tables.

Data (:class:`BoxSource`, :func:`make_mixture_list`, :class:`LAVSSSampler`)
    A LAVSS mixture is two clips of a binaural dataset, summed per ear. Each source carries one frame and
    the box of its object in that frame. Boxes come from ``lavss.boxes``:

    * ``detected`` (the real path): the detection stage's ``data/<dataset>/detect/boxes.parquet`` (per
      frame) and ``objects.parquet`` (per clip its top object). The box of a source frame is the
      top-scoring box of the clip's object (IoU >= 0.3 with the clip's top box) in the detected frame
      nearest in time; a clip whose frames near that time have no such box uses its top box. Clips whose
      top object was not detected are left out of every mixture (and counted in the logs).
    * ``ground_truth``: the renderer's boxes (``data/<dataset>/raw/boxes.parquet``; synthetic datasets
      only). Never used unless asked for; tables say which boxes made them.

    Test lists are seeded manifests: ``different`` (two different instruments, centre crops, tables 1, 3
    and 4) and ``same_type`` (two clips of the **same** instrument whose boxes are at least
    ``same_type_min_dx`` of the frame width apart, table 2). Training mixtures are a pure function of
    (seed, step, index): a fraction ``train_same_type`` of them are same-type pairs at different
    positions, the rest different instruments; random crops, gains and one random frame per source. With
    ``train.mirror`` a mixture is mirrored left-right (ears swapped, frames and boxes flipped,
    :func:`mirror_batch`) with that probability.

Model input (:func:`audio_features`)
    Per ear: ``log(warp(|X_e|) + 1e-10)`` and, with IPD, ``warp(cos IPD)`` (paper eq. 4) and optionally
    ``warp(sin IPD)`` with ``IPD = angle(X_L) - angle(X_R)``: cos IPD is even in the azimuth, so it tells
    how far from the centre a time-frequency bin comes from but not from which side; sin IPD carries the
    side (Wang & Wang 2019, the paper's ref. [64], feed both).

Training (:func:`train_lavss`)
    Loss of eq. 8 (:func:`avsep.binaural.lavss_loss`, alpha 0.5, beta 0.25) on sigmoid masks in the warped
    domain against the eq. 7 masks (per ear, the source that dominates the bin), plus the time-domain L1
    of ISTFT(mask x mixture) with the mixture phase. Adam (betas 0.9/0.999, weight decay 1e-4), seeded,
    deterministic on CPU, a resume state every ``checkpoint_every`` steps.

Evaluation (:func:`evaluate_lavss`)
    BSS Eval (no permutation) per ear on binarised masks (``mask_threshold``), SDR/SIR/SAR of the left and
    right ear and their average; ``mix-gt`` scores the ear's mixture as every source's estimate.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import checkpoint
from .binaural import ipd as phase_difference
from .binaural import lavss_gt_masks, lavss_loss_terms
from .config import ConfigError, Params
from .data.mixtures import (
    Crop,
    MixSpec,
    make_test_mixtures,
    specs_from_table,
    usable_clips,
)
from .data.store import ClipStore, load_audio
from .frontend import FrontendConfig, istft, stft, unwarp, warp
from .io import atomic_path, read_manifest, write_csv, write_json, write_parquet
from .metrics import aggregate, evaluate_mixture
from .mixing import mix_sources
from .models.lavss import LAVSSConfig, LAVSSNet, transfer_pretrained
from .progress import progress
from .seeding import rng, seed_everything
from .train import load_resume_state, optimizer_step, plain, resume_state, write_log

LOG_EPS = 1e-10
MIX_GT = "mix_gt"  # the method name of the mixture-as-estimate row
BOX_KINDS = ("detected", "ground_truth")
MIXTURE_KINDS = ("different", "same_type")
EARS = ("left", "right")
SAME_OBJECT_IOU = 0.3

# ==========================================================================================================
# Configuration (params.yaml `lavss:`)
# ==========================================================================================================

#: Keys of a variant entry that are not architecture (LAVSSConfig) fields.
VARIANT_KEYS = ("label", "pretrain", "finetune")


@dataclass(frozen=True)
class LAVSSTrainConfig:
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-4
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    checkpoint_every: int = 100
    log_every: int = 10
    alpha: float = 0.5  # eq. 8 weight of the L2 mask term
    beta: float = 0.25  # eq. 8 weight of the time-domain term
    weighting: str = "none"  # none (eq. 8 as written) | magnitude (bins weighted by the mixture magnitude)
    mirror: float = 0.0  # probability that a training mixture is mirrored (ears swapped, frame flipped)
    seed: int = 0
    threads: int = 1


@dataclass(frozen=True)
class Variant:
    """One row of the LAVSS tables: an architecture, how it is initialised and trained."""

    name: str
    label: str
    arch: LAVSSConfig
    pretrain: str | None = None  # name of a lavss.pretrain entry, or None (random init)
    finetune: bool = True  # False: the pre-trained mono model as is (the paper's `*` rows)


@dataclass(frozen=True)
class LAVSSParams:
    """Typed view of ``params.yaml: lavss``."""

    dataset: str
    pretrain_dataset: str
    boxes: str
    test_mixtures: int
    same_type_mixtures: int
    same_type_min_dx: float
    train_same_type: float
    pretrain: dict[str, LAVSSConfig]
    variants: dict[str, Variant]
    train: LAVSSTrainConfig
    pretrain_train: LAVSSTrainConfig
    batch_size_eval: int
    mask_threshold: float | None
    tables: dict[str, list[str]]
    figure_methods: list[str]
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    fps: float = 8.0
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def crop(self) -> Crop:
        """Crop geometry: the LAVSS clip length, one frame per source."""
        return Crop(self.frontend.clip_samples, self.frontend.sample_rate, self.fps, 1)

    def variant(self, name: str) -> Variant:
        try:
            return self.variants[name]
        except KeyError:
            raise ConfigError(f"params.yaml: lavss.models.{name} is not defined (known: {sorted(self.variants)})") from None

    def label(self, name: str) -> str:
        return "mix-gt" if name == MIX_GT else self.variant(name).label


def _train_config(t: dict[str, Any], seed: int, threads: int) -> LAVSSTrainConfig:
    return LAVSSTrainConfig(
        steps=int(t["steps"]), batch_size=int(t["batch_size"]), lr=float(t["lr"]),
        lr_milestones=tuple(int(s) for s in t.get("lr_milestones", [])), lr_gamma=float(t.get("lr_gamma", 0.1)),
        weight_decay=float(t.get("weight_decay", 1e-4)), grad_clip=float(t.get("grad_clip", 5.0)),
        checkpoint_every=int(t["checkpoint_every"]), log_every=int(t["log_every"]),
        alpha=float(t.get("alpha", 0.5)), beta=float(t.get("beta", 0.25)), weighting=str(t.get("weighting", "none")),
        mirror=float(t.get("mirror", 0.0)), seed=seed, threads=threads,
    )


def _arch(defaults: dict[str, Any], entry: dict[str, Any], where: str) -> LAVSSConfig:
    d = {**defaults, **{k: v for k, v in entry.items() if k not in VARIANT_KEYS}}
    try:
        return LAVSSConfig(**{**d, "ipd_features": tuple(d.get("ipd_features", ("cos",)))})
    except (TypeError, ValueError) as e:
        raise ConfigError(f"params.yaml: {where}: {e}") from None


def _check_sizes(arch: LAVSSConfig, fe: FrontendConfig, where: str) -> None:
    """The spectrogram (``warp_bins`` x frames) must halve ``num_downs`` times."""
    step = 2**arch.num_downs
    if fe.warp_bins % step or fe.n_frames % step:
        raise ConfigError(
            f"params.yaml: {where}: a U-Net of num_downs={arch.num_downs} needs spectrogram sides that are multiples of "
            f"{step}, but lavss.audio gives {fe.warp_bins} rows x {fe.n_frames} frames (clip_samples // hop + 1)"
        )


def lavss_params(p: Params) -> LAVSSParams:
    """Parse and cross-check ``params.yaml: lavss`` (the schema has checked the types)."""
    raw = p.raw.get("lavss")
    if raw is None:
        raise ConfigError("params.yaml: the lavss section is missing")
    check_lavss(p.raw)
    defaults = raw["defaults"]
    pre = {name: _arch(defaults, {**e, "position": False, "ipd": False}, f"lavss.pretrain.models.{name}")
           for name, e in raw["pretrain"]["models"].items()}  # mono: no IPD, no position
    for name, arch in pre.items():
        _check_sizes(arch, replace(p.frontend, **raw.get("audio", {})), f"lavss.pretrain.models.{name}")
    variants = {}
    for name, e in raw["models"].items():
        arch = _arch(defaults, e, f"lavss.models.{name}")
        variants[name] = Variant(name=name, label=e["label"], arch=arch, pretrain=e.get("pretrain"),
                                 finetune=bool(e.get("finetune", True)))
        _check_sizes(arch, replace(p.frontend, **raw.get("audio", {})), f"lavss.models.{name}")
        if not variants[name].finetune and arch != pre[e["pretrain"]]:
            raise ConfigError(f"params.yaml: lavss.models.{name} is a `*` row (the pre-trained model as is) but its "
                              f"architecture differs from lavss.pretrain.models.{e['pretrain']}")
    return LAVSSParams(
        dataset=raw["dataset"], pretrain_dataset=raw["pretrain_dataset"], boxes=raw["boxes"],
        test_mixtures=int(raw["test_mixtures"]), same_type_mixtures=int(raw["same_type_mixtures"]),
        same_type_min_dx=float(raw["same_type_min_dx"]), train_same_type=float(raw["train_same_type"]),
        pretrain=pre, variants=variants,
        train=_train_config(raw["train"], p.seed, p.threads),
        pretrain_train=_train_config({**raw["train"], **raw["pretrain"]["train"]}, p.seed, p.threads),
        batch_size_eval=int(raw["evaluate"]["batch_size"]), mask_threshold=raw["evaluate"]["mask_threshold"],
        tables={k: list(v) for k, v in raw["tables"].items()}, figure_methods=list(raw["figures"]["methods"]),
        frontend=replace(p.frontend, **raw.get("audio", {})), fps=p.fps, raw=raw,
    )


def check_lavss(params: dict[str, Any]) -> None:
    """Cross-references of ``lavss:`` that the schema cannot express; raises :class:`ConfigError` naming the key."""
    raw = params.get("lavss")
    if raw is None:
        return
    ds = params["datasets"]
    for key in ("dataset", "pretrain_dataset"):
        if raw[key] not in ds:
            raise ConfigError(f"params.yaml: lavss.{key} names unknown dataset {raw[key]!r}")
    if not ds[raw["dataset"]]["binaural"]:
        raise ConfigError(f"params.yaml: lavss.dataset {raw['dataset']!r} is not binaural")
    if raw["boxes"] == "ground_truth":
        for key in ("dataset", "pretrain_dataset"):
            if ds[raw[key]]["source"] != "synth":
                raise ConfigError(f"params.yaml: lavss.boxes=ground_truth needs synthetic datasets; lavss.{key} "
                                  f"{raw[key]!r} has no ground-truth boxes (use lavss.boxes=detected)")
    elif raw["boxes"] == "detected":
        missing = [raw[k] for k in ("dataset", "pretrain_dataset") if raw[k] not in params.get("detect", {}).get("datasets", [])]
        if missing:
            raise ConfigError(f"params.yaml: lavss.boxes=detected needs detection on {missing}: add them to detect.datasets")
    pre = raw["pretrain"]["models"]
    for name, e in raw["models"].items():
        pn = e.get("pretrain")
        if pn is not None and pn not in pre:
            raise ConfigError(f"params.yaml: lavss.models.{name}.pretrain names unknown lavss.pretrain.models entry {pn!r}")
        if not e.get("finetune", True):
            if pn is None:
                raise ConfigError(f"params.yaml: lavss.models.{name}: finetune=false (a `*` row) needs a pretrain model")
            arch = {**raw["defaults"], **e}
            if arch.get("ipd") or arch.get("position"):
                raise ConfigError(f"params.yaml: lavss.models.{name}: a `*` row is the mono pre-trained model: set ipd and "
                                  "position to false")
    for tname, methods in raw["tables"].items():
        for m in methods:
            if m != MIX_GT and m not in raw["models"]:
                raise ConfigError(f"params.yaml: lavss.tables.{tname} names unknown lavss model {m!r} "
                                  f"(known: {sorted(raw['models'])} and {MIX_GT})")
    for m in raw["figures"]["methods"]:
        if m != MIX_GT and m not in raw["models"]:
            raise ConfigError(f"params.yaml: lavss.figures.methods names unknown lavss model {m!r}")
    for key in ("train", "pretrain"):
        t = {**raw["train"], **(raw["pretrain"]["train"] if key == "pretrain" else {})}
        for s in t.get("lr_milestones", []):
            if s >= t["steps"]:
                raise ConfigError(f"params.yaml: lavss.{key}.train lr_milestones has {s}, not below its steps={t['steps']}")


# ==========================================================================================================
# Audio features
# ==========================================================================================================


def audio_features(
    mixture: torch.Tensor, cfg: FrontendConfig, ipd: bool, ipd_features: Sequence[str] = ("cos",)
) -> tuple[torch.Tensor, torch.Tensor]:
    """Network input of a mixture ``(B, E, L)`` (E = 2 ears, or 1 for mono) -> (``(B, E, C_in, W, T)``, STFT).

    Channel 0 is ``log(warp(|X_e|) + 1e-10)``; with ``ipd`` (binaural only) the next channels are
    ``warp(cos IPD)`` / ``warp(sin IPD)`` in the order of ``ipd_features``, identical for both ears. The
    complex STFT ``(B, E, F, T)`` is returned for the masking.
    """
    if mixture.dim() != 3:
        raise ValueError(f"mixture must be (B, ears, L), got {tuple(mixture.shape)}")
    spec = stft(mixture, cfg)
    b, e = spec.shape[:2]
    log_mag = torch.log(warp(spec.abs(), cfg) + LOG_EPS)  # (B, E, W, T)
    chans = [log_mag]
    if ipd:
        if e != 2:
            raise ValueError(f"IPD needs two ears, the mixture has {e} channel(s)")
        phase = phase_difference(spec[:, 0], spec[:, 1])  # (B, F, T)
        fn = {"cos": torch.cos, "sin": torch.sin}
        for name in ipd_features:
            ch = warp(fn[name](phase).unsqueeze(1), cfg)  # (B, 1, W, T)
            chans.append(ch.expand(b, e, *ch.shape[-2:]))
    return torch.stack(chans, dim=2), spec


# ==========================================================================================================
# Boxes
# ==========================================================================================================


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box ``a`` (4,) with boxes ``b`` (n, 4)."""
    lt = np.maximum(a[:2], b[:, :2])
    rb = np.minimum(a[2:], b[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=1)
    area = lambda x: np.clip(x[..., 2] - x[..., 0], 0, None) * np.clip(x[..., 3] - x[..., 1], 0, None)
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


class BoxSource:
    """The box of a clip's object in any of its extracted frames, and the clip's horizontal position.

    ``tracks[clip] = (times (n,), boxes (n, 4), scores (n,))``; :meth:`box` takes the best-scoring box of the
    nearest time; ``positions[clip]`` is the object's median horizontal centre in [0, 1].
    """

    def __init__(self, kind: str, tracks: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                 positions: dict[str, float], fps: float, source: str, excluded: dict[str, str] | None = None) -> None:
        self.kind = kind
        self.tracks = tracks
        self.positions = positions
        self.fps = fps
        self.source = source
        self.excluded = dict(excluded or {})

    @property
    def label(self) -> str:
        return "detected boxes" if self.kind == "detected" else "ground-truth boxes"

    def box(self, clip: str, frame: int) -> np.ndarray:
        """(x1, y1, x2, y2) in [0, 1] of ``clip``'s object in extracted frame ``frame`` (0-based)."""
        try:
            times, boxes, scores = self.tracks[clip]
        except KeyError:
            why = self.excluded.get(clip, "not in the box source")
            raise KeyError(f"clip {clip!r} has no {self.label} ({why}; {self.source})") from None
        t = frame / self.fps
        dt = np.abs(times - t)
        near = np.flatnonzero(dt <= dt.min() + 1e-9)
        return boxes[near[np.argmax(scores[near])]]

    def boxes(self, specs: Sequence[MixSpec]) -> torch.Tensor:
        """(B, N, 4) float32 boxes of the (single) frame of every source of ``specs``."""
        out = np.array([[self.box(c, fr[len(fr) // 2]) for c, fr in zip(sp.clips, sp.frames)] for sp in specs])
        return torch.from_numpy(out.astype(np.float32))

    @staticmethod
    def ground_truth(raw_boxes: str | Path, fps: float) -> BoxSource:
        """The renderer's boxes (``raw/boxes.parquet``: id, instance, time, x1..y2, cx); instance 0 of each clip."""
        df = pd.read_parquet(raw_boxes)
        need = ["id", "instance", "time", "x1", "y1", "x2", "y2", "cx"]
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise ValueError(f"{raw_boxes}: ground-truth boxes lack column(s) {missing}")
        df = df[df["instance"] == 0]
        tracks, pos = {}, {}
        for clip, g in df.groupby("id", sort=True):
            g = g.sort_values("time")
            xy = g[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
            tracks[str(clip)] = (g["time"].to_numpy(np.float64), xy, np.ones(len(g)))
            pos[str(clip)] = float(np.median(g["cx"]))
        return BoxSource("ground_truth", tracks, pos, fps, str(raw_boxes))

    @staticmethod
    def detected(objects: str | Path, boxes: str | Path, fps: float) -> BoxSource:
        """Boxes of the detection stage (``detect/objects.parquet`` + ``detect/boxes.parquet``)."""
        obj = pd.read_parquet(objects)
        need = ["clip", "rank", "status", "reason", "x1", "y1", "x2", "y2", "median_cx"]
        missing = [c for c in need if c not in obj.columns]
        if missing:
            raise ValueError(f"{objects}: detected objects lack column(s) {missing}")
        bx = pd.read_parquet(boxes)
        missing = [c for c in ("clip", "time", "score", "x1", "y1", "x2", "y2") if c not in bx.columns]
        if missing:
            raise ValueError(f"{boxes}: detected boxes lack column(s) {missing}")
        if "instrument" in bx.columns:
            bx = bx[bx["instrument"].astype(bool)]
        per_clip = {str(c): g for c, g in bx.groupby("clip", sort=False)}
        tracks, pos, excluded = {}, {}, {}
        for _, r in obj[obj["rank"] == 1].iterrows():
            clip = str(r["clip"])
            if r["status"] != "ok":
                excluded[clip] = f"detection failed: {r['reason']}"
                continue
            top = np.array([r["x1"], r["y1"], r["x2"], r["y2"]], dtype=np.float64)
            g = per_clip.get(clip)
            times, xy, sc = np.zeros(0), np.zeros((0, 4)), np.zeros(0)
            if g is not None and len(g):
                xy = g[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
                keep = _box_iou(top, xy) >= SAME_OBJECT_IOU
                times, xy, sc = g["time"].to_numpy(np.float64)[keep], xy[keep], g["score"].to_numpy(np.float64)[keep]
            if len(times) == 0:  # only the top box itself is known
                times, xy, sc = np.zeros(1), top[None], np.ones(1)
            order = np.argsort(times, kind="stable")
            tracks[clip] = (times[order], xy[order], sc[order])
            pos[clip] = float(r["median_cx"]) if np.isfinite(r["median_cx"]) else float((top[0] + top[2]) / 2)
        return BoxSource("detected", tracks, pos, fps, f"{objects} + {boxes}", excluded)


def box_inputs(kind: str, dataset: str) -> list[str]:
    """The files the boxes of ``dataset`` are read from (Snakemake inputs, in :func:`load_boxes` order)."""
    if kind == "detected":
        return [f"data/{dataset}/detect/objects.parquet", f"data/{dataset}/detect/boxes.parquet"]
    if kind == "ground_truth":  # the renderer writes boxes.parquet beside its manifest (the rule's output)
        return [f"data/{dataset}/raw/manifest.parquet"]
    raise ValueError(f"unknown box source {kind!r}; expected one of {BOX_KINDS}")


def load_boxes(kind: str, files: Sequence[str | Path], fps: float) -> BoxSource:
    """The boxes of kind ``kind`` from ``files`` (:func:`box_inputs`)."""
    paths = [Path(f) for f in files]
    if kind == "ground_truth":
        paths = [paths[0].parent / "boxes.parquet" if paths[0].name == "manifest.parquet" else paths[0]]
    for f in paths:
        if not f.exists():
            raise FileNotFoundError(f"{f}: {kind} boxes are missing (lavss.boxes={kind})")
    if kind == "detected":
        return BoxSource.detected(paths[0], paths[1], fps)
    if kind == "ground_truth":
        return BoxSource.ground_truth(paths[0], fps)
    raise ValueError(f"unknown box source {kind!r}; expected one of {BOX_KINDS}")


def box_source(kind: str, dataset: str, fps: float, root: str | Path = ".") -> BoxSource:
    """The configured boxes of ``dataset`` from their standard paths under ``root``."""
    return load_boxes(kind, [Path(root) / f for f in box_inputs(kind, dataset)], fps)


# ==========================================================================================================
# Mixtures
# ==========================================================================================================


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

    def batch(self, step: int, batch_size: int) -> list[MixSpec]:
        return [self.item(step, i) for i in range(batch_size)]

    def mirror_flags(self, step: int, batch_size: int, p: float) -> torch.Tensor:
        """Which mixtures of the batch at ``step`` are mirrored (each with probability ``p``; a pure function of
        (seed, step, index), like the mixtures themselves)."""
        return torch.tensor([bool(rng("lavss-mirror", self.seed, step, i).random() < p) for i in range(batch_size)])


# ==========================================================================================================
# Batches
# ==========================================================================================================


@dataclass
class Batch:
    sources: torch.Tensor  # (B, N, E, L) after gains, clipping and / N
    mixture: torch.Tensor  # (B, E, L)
    images: torch.Tensor  # (B, N, 3, S, S)
    boxes: torch.Tensor  # (B, N, 4)


@dataclass
class LAVSSData:
    store: ClipStore
    boxes: BoxSource
    frontend: FrontendConfig
    image_size: int

    def batch(self, specs: Sequence[MixSpec]) -> Batch:
        audio, gains = load_audio(self.store, list(specs), self.frontend.clip_samples)  # (B, N, E, L)
        sources, mixture = mix_sources(audio, gains)
        images = np.stack([
            np.stack([self.store.frame(c, fr[len(fr) // 2], self.image_size) for c, fr in zip(sp.clips, sp.frames)])
            for sp in specs
        ])
        return Batch(sources, mixture, torch.from_numpy(images), self.boxes.boxes(specs))


def mirror_batch(batch: Batch, flags: torch.Tensor) -> Batch:
    """The batch with the mixtures where ``flags`` is true mirrored left-right (a new Batch; inputs untouched).

    Mirroring swaps the ears of the mixture and of every source, flips each source's frame horizontally and
    maps its box ``(x1, y1, x2, y2)`` to ``(1 - x2, y1, 1 - x1, y2)``: the scene as seen and heard from the
    mirrored side. The binaural renderer is left-right symmetric (:func:`avsep.data.spatial.spatialize` at
    ``-azimuth`` gives the swapped ears), so a mirrored synthetic mixture is exactly one the renderer could
    have made with the objects at the mirrored positions. It doubles the positions a small training set
    shows, and a clip's sound can no longer tell its side by itself: only position and the interaural cues
    do. A mono batch (one ear) only has its frames and boxes flipped.
    """
    f = flags.to(torch.bool)
    if f.shape != (batch.mixture.shape[0],):
        raise ValueError(f"mirror flags {tuple(f.shape)} do not match the batch of {batch.mixture.shape[0]} mixtures")
    if not bool(f.any()):
        return batch
    boxes = batch.boxes.clone()
    boxes[f, :, 0] = 1.0 - batch.boxes[f, :, 2]
    boxes[f, :, 2] = 1.0 - batch.boxes[f, :, 0]

    def where(x: torch.Tensor, dim: int) -> torch.Tensor:
        return torch.where(f.view(-1, *([1] * (x.dim() - 1))), x.flip(dim), x)

    return Batch(sources=where(batch.sources, 2), mixture=where(batch.mixture, 1), images=where(batch.images, -1),
                 boxes=boxes)


def predict_masks(model: LAVSSNet, batch: Batch, frontend: FrontendConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Sigmoid masks ``(B, N, E, W, T)`` (warped domain) and the mixture STFT ``(B, E, F, T)``."""
    cfg = model.cfg
    feats, spec = audio_features(batch.mixture, frontend, cfg.ipd, cfg.ipd_features)
    return torch.sigmoid(model(feats, batch.images, batch.boxes)), spec


def masked_waves(masks_warped: torch.Tensor, spec: torch.Tensor, frontend: FrontendConfig,
                 threshold: float | None = None) -> torch.Tensor:
    """Waveforms ``(B, N, E, L)`` = ISTFT(unwarp(mask) x mixture STFT), with the mixture phase."""
    b, n, e, w, t = masks_warped.shape
    lin = unwarp(masks_warped.reshape(b * n * e, 1, w, t), frontend).view(b, n, e, -1, t)
    if threshold is not None:
        lin = (lin > threshold).to(lin.dtype)
    return istft(lin * spec.unsqueeze(1), frontend, length=frontend.clip_samples)


def gt_masks(src_mags: torch.Tensor) -> torch.Tensor:
    """Eq. 7 masks of ``(B, N, ...)`` source magnitudes: :func:`avsep.binaural.lavss_gt_masks` (``dominant``),
    computed for two sources as ``[|X_0| >= |X_1|]`` and its complement (the same values, without an argmax)."""
    if src_mags.shape[1] != 2:
        return lavss_gt_masks(src_mags, source_dim=1)
    first = (src_mags[:, 0] >= src_mags[:, 1]).to(src_mags.dtype)
    return torch.stack([first, 1.0 - first], dim=1)


def loss_terms(model: LAVSSNet, batch: Batch, frontend: FrontendConfig, weighting: str = "none") -> dict[str, torch.Tensor]:
    """The three terms of eq. 8 for one batch.

    ``weighting="none"``: :func:`avsep.binaural.lavss_loss_terms` (every time-frequency bin counts the same).
    ``weighting="magnitude"``: each bin's mask error is weighted by ``clamp(log1p(|X_mix|), 1e-3, 10)`` of its
    ear (the Sound-of-Pixels weighting), i.e. ``sum w |d| / sum w`` and ``sqrt(sum w d^2 / sum w)`` per
    (source, ear): in near-silent bins the eq. 7 label is decided by noise and cannot be learnt.
    """
    masks, spec = predict_masks(model, batch, frontend)
    b, n, e = batch.sources.shape[:3]
    src_w = warp(stft(batch.sources, frontend).abs().reshape(b * n * e, 1, spec.shape[-2], spec.shape[-1]), frontend)
    gt = gt_masks(src_w.view(b, n, e, *src_w.shape[-2:]))
    est = masked_waves(masks, spec, frontend)
    terms = lavss_loss_terms(masks, gt, est, batch.sources)
    if weighting == "none":
        return terms
    if weighting != "magnitude":
        raise ValueError(f"unknown mask weighting {weighting!r} (none | magnitude)")
    mix_w = warp(spec.abs().reshape(b * e, 1, spec.shape[-2], spec.shape[-1]), frontend).view(b, 1, e, -1, spec.shape[-1])
    w = torch.clamp(torch.log1p(mix_w), 1e-3, 10.0)
    d = masks - gt
    total = w.sum(dim=(-2, -1))  # (B, 1, E)
    l1 = (w * d.abs()).sum(dim=(-2, -1)) / total
    l2 = torch.sqrt((w * d.pow(2)).sum(dim=(-2, -1)) / total + 1e-12)
    return {"l1": l1.sum(dim=(1, 2)).mean(), "l2": l2.sum(dim=(1, 2)).mean(), "time": terms["time"]}


# ==========================================================================================================
# Training
# ==========================================================================================================


def build_model(arch: LAVSSConfig, init: tuple[dict[str, torch.Tensor], LAVSSConfig] | None = None) -> tuple[LAVSSNet, list[str]]:
    """A model of ``arch``; with ``init`` (pre-trained mono state and config) its weights are transferred."""
    model = LAVSSNet(arch)
    parts: list[str] = []
    if init is not None:
        parts = transfer_pretrained(model, init[0], init[1])
    return model, parts


def train_lavss(
    arch: LAVSSConfig, cfg: LAVSSTrainConfig, sampler: LAVSSSampler, data: LAVSSData, out_dir: str | Path,
    meta: dict[str, Any], init_checkpoint: str | Path | None = None, stop_after: int | None = None,
) -> Path:
    """Train and write ``out_dir/checkpoint.pt`` and ``out_dir/train_log.csv`` (resumable from ``state.pt``).

    ``init_checkpoint``: a mono pre-trained LAVSS checkpoint whose weights start the model
    (:func:`avsep.models.lavss.transfer_pretrained`). ``stop_after`` stops after that many steps (tests).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed, cfg.threads)
    init = None
    if init_checkpoint is not None:
        ck = load_lavss_checkpoint(init_checkpoint)
        init = (ck["model"], LAVSSConfig.from_dict(ck["config"]))
    model, transferred = build_model(arch, init)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.lr_milestones), gamma=cfg.lr_gamma)
    state_path, log_path = out / "state.pt", out / "train_log.csv"
    start, rows = 0, []
    if state_path.exists():
        start, rows = load_resume_state(state_path, model, opt, sched)
    model.train()
    bar = progress(total=cfg.steps, initial=start, desc=f"train {meta.get('model', '')}", unit="step")
    t0 = time.time()
    sums: dict[str, float] = {}
    for step in range(start, cfg.steps):
        batch = data.batch(sampler.batch(step, cfg.batch_size))
        if cfg.mirror > 0:
            batch = mirror_batch(batch, sampler.mirror_flags(step, cfg.batch_size, cfg.mirror))
        terms = loss_terms(model, batch, data.frontend, cfg.weighting)
        loss = terms["l1"] + cfg.alpha * terms["l2"] + cfg.beta * terms["time"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"LAVSS training loss became {loss.item()} at step {step} ({meta.get('model')})")
        optimizer_step(loss, model, opt, sched, cfg.grad_clip)
        for k, v in (("loss", loss.item()), *((k, t.item()) for k, t in terms.items())):
            sums[k] = sums.get(k, 0.0) + v
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            cnt = (done - 1) % cfg.log_every + 1
            rows.append({"step": done, **{k: v / cnt for k, v in sums.items()}, "lr": opt.param_groups[0]["lr"],
                         "seconds": round(time.time() - t0, 2)})
            bar.set_postfix(loss=f"{sums['loss'] / cnt:.4f}")
            sums = {}
        bar.update(1)
        if done % cfg.checkpoint_every == 0 and done < cfg.steps:
            checkpoint.save(state_path, resume_state(model, opt, sched, done, rows))
        if stop_after is not None and done >= stop_after:
            bar.close()
            return state_path
    bar.close()
    write_log(rows, log_path, ("loss", "l1", "l2", "time"))
    final = out / "checkpoint.pt"
    checkpoint.save(final, {
        "model": {k: v.cpu() for k, v in model.state_dict().items()},
        "config": arch.to_dict(),
        "meta": plain({**meta, "train": asdict(cfg), "transferred": transferred,
                        "final_loss": rows[-1]["loss"] if rows else math.nan}),
    })
    state_path.unlink(missing_ok=True)
    return final


def load_lavss_checkpoint(path: str | Path) -> dict[str, Any]:
    ck = checkpoint.load(path)
    for key in ("model", "config", "meta"):
        if key not in ck:
            raise RuntimeError(f"checkpoint {path} lacks {key!r}: is it a LAVSS checkpoint?")
    return ck


def load_lavss(path: str | Path) -> tuple[LAVSSNet, dict[str, Any]]:
    """A trained LAVSS model (eval mode) and its metadata."""
    ck = load_lavss_checkpoint(path)
    model = LAVSSNet(LAVSSConfig.from_dict(ck["config"]))
    model.load_state_dict(ck["model"])
    model.eval()
    return model, ck["meta"]


# ==========================================================================================================
# Evaluation
# ==========================================================================================================


@torch.no_grad()
def separate_batch(model: LAVSSNet | None, batch: Batch, frontend: FrontendConfig,
                   threshold: float | None) -> torch.Tensor:
    """Estimates ``(B, N, E, L)``; ``model=None`` is mix-gt (every source's estimate is the ear's mixture)."""
    n = batch.sources.shape[1]
    if model is None:
        return batch.mixture.unsqueeze(1).expand(-1, n, -1, -1).clone()
    model.eval()
    masks, spec = predict_masks(model, batch, frontend)
    return masked_waves(masks, spec, frontend, threshold)


def evaluate_lavss(
    model: LAVSSNet | None, data: LAVSSData, table: pd.DataFrame, batch_size: int,
    threshold: float | None, desc: str = "evaluate",
) -> pd.DataFrame:
    """One row per mixture: SDR / SIR / SAR of each ear (means over the two sources) and their ear average.

    A mixture is ``skipped`` when either ear is (silent reference or estimate, the HFRA protocol).
    """
    specs = specs_from_table(table, 2)
    ids = list(table["mixture_id"])
    rows: list[dict[str, object]] = []
    bar = progress(total=len(specs), desc=desc, unit="mix")
    for i in range(0, len(specs), batch_size):
        chunk = specs[i:i + batch_size]
        batch = data.batch(chunk)
        est = separate_batch(model, batch, data.frontend, threshold)
        for j, spec in enumerate(chunk):
            mid = ids[i + j]
            row: dict[str, object] = {"mixture_id": mid, "clips": ",".join(spec.clips), "labels": ",".join(spec.labels)}
            e = est[j].double().numpy()
            if not np.all(np.isfinite(e)):
                raise FloatingPointError(f"mixture {mid} (clips {', '.join(spec.clips)}): the estimate contains NaN or inf")
            per_ear = []
            for k, ear in enumerate(EARS[: e.shape[1]]):
                res = evaluate_mixture(batch.sources[j, :, k].double().numpy(), e[:, k])
                per_ear.append(res)
                for m in ("sdr", "sir", "sar"):
                    row[f"{m}_{ear}"] = np.nan if res is None else res[m]
            if any(r is None for r in per_ear):
                row.update(status="skipped", sdr=np.nan, sir=np.nan, sar=np.nan)
            else:
                row.update(status="scored", **{m: float(np.mean([r[m] for r in per_ear])) for m in ("sdr", "sir", "sar")})
            rows.append(row)
        bar.update(len(chunk))
    bar.close()
    return pd.DataFrame(rows)


def summarize_ears(per_mixture: pd.DataFrame) -> dict[str, Any]:
    """Means over scored mixtures of each ear's SDR / SIR / SAR and of the ear average, with the counts."""
    scored = per_mixture[per_mixture["status"] == "scored"]
    out: dict[str, Any] = dict(aggregate([None if r["status"] == "skipped" else r for _, r in per_mixture.iterrows()]))
    for ear in EARS:
        for m in ("sdr", "sir", "sar"):
            col = f"{m}_{ear}"
            out[col] = float(scored[col].mean()) if len(scored) and col in scored else math.nan
    return out


# ==========================================================================================================
# Stages (called by the Snakemake scripts in workflow_scripts/lavss_*.py)
# ==========================================================================================================


def _data(p: Params, lp: LAVSSParams, dataset: str, manifest: str | Path, box_files: Sequence[str]) -> LAVSSData:
    store = ClipStore(manifest, lp.frontend.sample_rate, p.dataset(dataset).channels)
    boxes = load_boxes(lp.boxes, box_files, lp.fps)
    image_size = next(iter(lp.variants.values())).arch.image_size if lp.variants else 224
    return LAVSSData(store, boxes, lp.frontend, image_size)


def stage_mixtures(p: Params, manifest: str | Path, box_files: Sequence[str], out: dict[str, str | Path]) -> dict[str, pd.DataFrame]:
    """The seeded test lists (``different``, ``same_type``) of ``lavss.dataset``."""
    lp = lavss_params(p)
    boxes = load_boxes(lp.boxes, box_files, lp.fps)
    m = read_manifest(manifest)
    sizes = {"different": lp.test_mixtures, "same_type": lp.same_type_mixtures}
    tables = {}
    for kind in MIXTURE_KINDS:
        t = make_mixture_list(m, boxes, kind, sizes[kind], p.seed, lp.crop, lp.same_type_min_dx)
        write_parquet(t, out[kind])
        tables[kind] = t
    n_ok = len(eligible_clips(m, "test", boxes, lp.frontend.clip_samples))
    print(f"lavss mixtures {lp.dataset}: {len(tables['different'])} different-instrument and {len(tables['same_type'])} "
          f"same-type mixtures from {n_ok} test clips with {boxes.label} (clips without boxes: {len(boxes.excluded)})",
          flush=True)
    return tables


def _sampler(p: Params, lp: LAVSSParams, data: LAVSSData, manifest: str | Path, same_type: float, where: str) -> LAVSSSampler:
    clips = eligible_clips(read_manifest(manifest), "train", data.boxes, lp.frontend.clip_samples)
    lo, hi = p.mixing["gain_range"]
    return LAVSSSampler(clips, p.seed, lp.crop, (float(lo), float(hi)), same_type, lp.same_type_min_dx, where)


def stage_pretrain(p: Params, name: str, manifest: str | Path, box_files: Sequence[str], out_ckpt: str | Path,
                   threads: int | None = None) -> Path:
    """Monaural pre-training (paper 3.4) of ``lavss.pretrain.models.<name>`` on ``lavss.pretrain_dataset``."""
    lp = lavss_params(p)
    cfg = lp.pretrain_train if threads is None else replace(lp.pretrain_train, threads=int(threads))
    arch = lp.pretrain[name]
    data = _data(p, lp, lp.pretrain_dataset, manifest, box_files)
    sampler = _sampler(p, lp, data, manifest, 0.0, f"LAVSS pre-training on {lp.pretrain_dataset}")
    meta = {"model": f"pretrain_{name}", "label": f"mono pre-training {name}", "dataset": lp.pretrain_dataset,
            "boxes": data.boxes.label, "weights": "random-init"}
    return _finish(train_lavss(arch, cfg, sampler, data, Path(out_ckpt).parent, meta), out_ckpt)


def stage_train(p: Params, variant: str, manifest: str | Path, box_files: Sequence[str], out_ckpt: str | Path,
                init_ckpt: str | Path | None = None, threads: int | None = None) -> Path:
    """Train one LAVSS-table variant on the binaural ``lavss.dataset`` (from its pre-trained model if any)."""
    lp = lavss_params(p)
    cfg = lp.train if threads is None else replace(lp.train, threads=int(threads))
    v = lp.variant(variant)
    if not v.finetune:
        raise ValueError(f"lavss.models.{variant} is a `*` row (finetune=false): it is not trained")
    if (v.pretrain is None) != (init_ckpt is None):
        raise ValueError(f"lavss.models.{variant}: pretrain={v.pretrain!r} but init checkpoint {init_ckpt!r}")
    data = _data(p, lp, lp.dataset, manifest, box_files)
    sampler = _sampler(p, lp, data, manifest, lp.train_same_type, f"LAVSS training on {lp.dataset}")
    meta = {"model": variant, "label": v.label, "dataset": lp.dataset, "boxes": data.boxes.label,
            "weights": _weights(lp, v)}
    return _finish(train_lavss(v.arch, cfg, sampler, data, Path(out_ckpt).parent, meta, init_ckpt), out_ckpt)


def _finish(final: Path, expected: str | Path) -> Path:
    if final != Path(expected):
        raise RuntimeError(f"training wrote {final}, expected {expected}")
    return final


def _weights(lp: LAVSSParams, v: Variant) -> str:
    if v.pretrain is None:
        return "random-init"
    star = "" if v.finetune else ", not fine-tuned (*)"
    return f"mono pre-trained on {lp.pretrain_dataset} ({v.pretrain}){star}"


def stage_evaluate(p: Params, method: str, kind: str, manifest: str | Path, box_files: Sequence[str],
                   mixtures: str | Path, ckpt: str | Path | None, out_parquet: str | Path, out_json: str | Path) -> dict:
    """Score ``method`` (a ``lavss.models`` entry or ``mix_gt``) on a test list, per ear."""
    lp = lavss_params(p)
    data = _data(p, lp, lp.dataset, manifest, box_files)
    model = None
    if method == MIX_GT:
        weights, label = "none (mixture as estimate)", "mix-gt"
    else:
        v = lp.variant(method)
        if ckpt is None:
            raise ValueError(f"lavss.models.{method} needs a checkpoint to be scored")
        model, _ = load_lavss(ckpt)
        weights, label = _weights(lp, v), v.label
    per_mix = evaluate_lavss(model, data, pd.read_parquet(mixtures), lp.batch_size_eval, lp.mask_threshold,
                             desc=f"evaluate {method} ({kind})")
    write_parquet(per_mix, out_parquet)
    summary = {**summarize_ears(per_mix), "method": method, "label": label, "kind": kind, "dataset": lp.dataset,
               "boxes": data.boxes.label, "weights": weights, "mask_threshold": lp.mask_threshold}
    write_json(summary, out_json)
    print(f"evaluate {lp.dataset}/{method} ({kind}): SDR {summary['sdr']:.2f} (L {summary['sdr_left']:.2f}, "
          f"R {summary['sdr_right']:.2f}) SIR {summary['sir']:.2f} (scored {summary['n_scored']}, "
          f"skipped {summary['n_skipped']})", flush=True)
    return summary


# ==========================================================================================================
# Tables
# ==========================================================================================================

# The paper's numbers (FAIR-Play): (SDR L, SIR L, SDR R, SIR R).
PAPER_TABLE1 = {"SoP": (3.98, 7.03, 3.96, 6.99), "2.5D-sep": (4.44, 8.20, 4.47, 8.26),
                "LAVSS": (5.89, 10.08, 5.93, 10.30)}
PAPER_TABLE2_INSTRUMENTS = ("cello", "drum", "guitar", "harp", "piano", "trumpet")
PAPER_TABLE2 = {
    "SoP": (-2.12, -1.88, -2.69, -1.77, -2.35, -1.78),
    "2.5D-sep": (-0.93, 0.86, -2.00, -1.49, 0.35, -2.55),
    "mix-gt": (0.58, 0.25, 0.67, 0.47, 1.17, 1.51),
    "LAVSS": (1.53, 2.67, 3.72, 1.83, 3.13, 3.12),
}
#: Table 3 rows by (backbone, position, IPD, pre-training: none | finetune | frozen).
PAPER_TABLE3 = {
    ("sop", False, False, "none"): (3.34, 6.45, 3.29, 6.42),
    ("sop", True, False, "none"): (4.00, 7.31, 4.02, 7.27),
    ("sop", True, True, "none"): (4.32, 7.90, 4.38, 7.86),
    ("sop", False, False, "frozen"): (4.22, 7.84, 4.23, 7.88),
    ("sop", False, False, "finetune"): (4.79, 8.36, 4.82, 8.39),
    ("sop", False, True, "finetune"): (5.14, 8.57, 5.15, 8.55),
    ("sop", True, True, "finetune"): (5.32, 8.71, 5.36, 8.73),
    ("sep25d", False, False, "none"): (3.85, 7.24, 3.73, 7.44),
    ("sep25d", True, False, "none"): (4.90, 8.38, 4.82, 8.48),
    ("sep25d", True, True, "none"): (5.27, 9.27, 5.25, 9.28),
    ("sep25d", False, False, "frozen"): (4.67, 8.02, 4.70, 8.03),
    ("sep25d", False, False, "finetune"): (5.03, 8.56, 5.08, 8.59),
    ("sep25d", False, True, "finetune"): (5.53, 9.14, 5.59, 9.18),
    ("sep25d", True, True, "finetune"): (5.89, 10.08, 5.93, 10.30),
}
PAPER_TABLE4 = {"full": (5.89, 10.08, 5.93, 10.30), "w/o VP atten.": (5.27, 9.34, 5.16, 9.37),
                "w/o AVP atten.": (5.04, 8.63, 5.05, 8.65), "w/o multi.": (4.90, 8.38, 4.82, 8.48),
                "Tile-Concat": (4.83, 8.41, 4.81, 8.38)}
PAPER_DATASET = "FAIR-Play"
EAR_COLUMNS = ["SDR_left", "SIR_left", "SDR_right", "SIR_right", "SDR", "SIR"]


def paper_method(lp: LAVSSParams, method: str) -> str | None:
    """Which paper row (tables 1-2) a method reproduces: SoP / 2.5D-sep (whole frame, per ear), LAVSS, mix-gt."""
    if method == MIX_GT:
        return "mix-gt"
    v = lp.variant(method)
    a = v.arch
    if a.visual == "frame" and not a.ipd:
        if a.backbone == "sop" and not a.bottleneck_fusion:
            return "SoP"
        return "2.5D-sep" if a.backbone == "sep25d" and a.tile_concat else None
    if a.visual == "crop" and a.position and a.ipd and module_ablation(a) == "full" and v.pretrain and v.finetune:
        return "LAVSS"
    return None


def module_ablation(a: LAVSSConfig) -> str | None:
    """The table 4 row an architecture is (None without bottleneck fusion or with several modules removed)."""
    if not a.bottleneck_fusion:
        return None
    if a.tile_concat:
        return "Tile-Concat"
    off = [name for name, on in (("w/o VP atten.", a.vp_attention), ("w/o AVP atten.", a.avp_attention),
                                 ("w/o multi.", a.multi_scale)) if not on]
    return "full" if not off else (off[0] if len(off) == 1 else None)


def _pretrain_kind(v: Variant) -> str:
    return "none" if v.pretrain is None else ("finetune" if v.finetune else "frozen")


def _ear_row(s: dict[str, Any]) -> dict[str, Any]:
    if s["n_scored"] == 0:
        raise ValueError(f"{s['method']} ({s['kind']}): no test mixture was scored ({s['n_skipped']} skipped); refusing "
                         "to write a table row")
    return {"SDR_left": s["sdr_left"], "SIR_left": s["sir_left"], "SDR_right": s["sdr_right"],
            "SIR_right": s["sir_right"], "SDR": s["sdr"], "SIR": s["sir"]}


def _provenance(s: dict[str, Any]) -> dict[str, Any]:
    return {"dataset": s["dataset"], "boxes": s["boxes"], "weights": s["weights"], "n_mixtures": s["n_scored"],
            "n_skipped": s["n_skipped"]}


def _paper_cols(vals: tuple[float, ...] | None) -> dict[str, float]:
    v = vals or (math.nan,) * 4
    return {"paper_SDR_left": v[0], "paper_SIR_left": v[1], "paper_SDR_right": v[2], "paper_SIR_right": v[3],
            "paper_SDR": (v[0] + v[2]) / 2, "paper_SIR": (v[1] + v[3]) / 2}


def _read(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def table1(lp: LAVSSParams, methods: list[str], summaries: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 1: SDR / SIR of the left and right ear and their average, different-instrument mixtures."""
    rows, vs = [], []
    for m, f in zip(methods, summaries):
        s = _read(f)
        row = {"method": lp.label(m), **_ear_row(s), **_provenance(s)}
        rows.append(row)
        key = paper_method(lp, m)
        vs.append({**{k: row[k] for k in ("method", *EAR_COLUMNS)}, "paper_method": key or "",
                   **_paper_cols(PAPER_TABLE1.get(key or "")), "dataset": s["dataset"], "boxes": s["boxes"],
                   "paper_dataset": PAPER_DATASET})
    return pd.DataFrame(rows), pd.DataFrame(vs)


def _instrument_key(label: str) -> str:
    return "guitar" if "guitar" in label else label


def table2(lp: LAVSSParams, methods: list[str], summaries: list[str], per_mixture: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 2: same-instrument mixtures, SDR averaged over both ears, per instrument (columns) and overall."""
    rows, vs = [], []
    for m, f, pm in zip(methods, summaries, per_mixture):
        s = _read(f)
        _ear_row(s)
        d = pd.read_parquet(pm)
        d = d[d["status"] == "scored"]
        inst = d["labels"].str.split(",").str[0]
        per = d.groupby(inst)["sdr"].mean()
        row: dict[str, Any] = {"method": lp.label(m), **{lab: float(per[lab]) for lab in sorted(per.index)},
                               "average": s["sdr"], "SDR_left": s["sdr_left"], "SDR_right": s["sdr_right"],
                               **_provenance(s)}
        rows.append(row)
        key = paper_method(lp, m)
        paper = dict(zip(PAPER_TABLE2_INSTRUMENTS, PAPER_TABLE2.get(key or "", (math.nan,) * 6)))
        v: dict[str, Any] = {"method": row["method"], "paper_method": key or ""}
        for lab in sorted(per.index):
            v[lab] = row[lab]
            v[f"paper_{lab}"] = paper.get(_instrument_key(lab), math.nan)
        v["average"] = s["sdr"]
        v["paper_average"] = float(np.mean(list(paper.values()))) if key in PAPER_TABLE2 else math.nan
        vs.append({**v, "dataset": s["dataset"], "boxes": s["boxes"], "paper_dataset": PAPER_DATASET})
    instruments = sorted({k for r in rows for k in r} - {"method", "average", "SDR_left", "SDR_right", "dataset", "boxes",
                                                         "weights", "n_mixtures", "n_skipped"})
    cols = ["method", *instruments, "average", "SDR_left", "SDR_right", "dataset", "boxes", "weights", "n_mixtures",
            "n_skipped"]
    for v in vs:  # the paper's value of every instrument column, also where a method scored no such mixture
        paper = dict(zip(PAPER_TABLE2_INSTRUMENTS, PAPER_TABLE2.get(v["paper_method"], (math.nan,) * 6)))
        for lab in instruments:
            v[f"paper_{lab}"] = paper.get(_instrument_key(lab), math.nan)
    vs_cols = ["method", "paper_method", *[c for i in instruments for c in (i, f"paper_{i}")], "average", "paper_average",
               "dataset", "boxes", "paper_dataset"]
    return pd.DataFrame(rows, columns=cols), pd.DataFrame(vs, columns=vs_cols)


def _flags(v: Variant) -> dict[str, Any]:
    pre = {"none": "no", "finetune": "yes", "frozen": "yes*"}[_pretrain_kind(v)]
    return {"backbone": {"sop": "SoP", "sep25d": "2.5D-sep"}[v.arch.backbone], "position": v.arch.position,
            "ipd": v.arch.ipd, "ipd_features": "+".join(v.arch.ipd_features) if v.arch.ipd else "",
            "pretrain": pre}


def table3(lp: LAVSSParams, methods: list[str], summaries: list[str], same_type: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 3: backbone x (position, IPD, mono pre-training); plus the SDR on same-instrument mixtures."""
    rows, vs = [], []
    for m, f, st in zip(methods, summaries, same_type):
        v, s, s2 = lp.variant(m), _read(f), _read(st)
        row = {"method": v.label, **_flags(v), **_ear_row(s), "SDR_same_type": _ear_row(s2)["SDR"], **_provenance(s)}
        rows.append(row)
        key = (v.arch.backbone, v.arch.position, v.arch.ipd, _pretrain_kind(v))
        vs.append({**{k: row[k] for k in ("method", "backbone", "position", "ipd", "ipd_features", "pretrain", *EAR_COLUMNS)},
                   **_paper_cols(PAPER_TABLE3.get(key)), "dataset": s["dataset"], "boxes": s["boxes"],
                   "paper_dataset": PAPER_DATASET})
    return pd.DataFrame(rows), pd.DataFrame(vs)


def table4(lp: LAVSSParams, methods: list[str], summaries: list[str], same_type: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 4: module ablation (full, w/o VP attention, w/o AVP attention, w/o multi-scale, Tile-Concat)."""
    rows, vs = [], []
    for m, f, st in zip(methods, summaries, same_type):
        v, s, s2 = lp.variant(m), _read(f), _read(st)
        arch = module_ablation(v.arch)
        row = {"method": v.label, "architecture": arch or "", **_ear_row(s), "SDR_same_type": _ear_row(s2)["SDR"],
               **_provenance(s)}
        rows.append(row)
        vs.append({**{k: row[k] for k in ("method", "architecture", *EAR_COLUMNS)},
                   **_paper_cols(PAPER_TABLE4.get(arch or "")), "dataset": s["dataset"], "boxes": s["boxes"],
                   "paper_dataset": PAPER_DATASET})
    return pd.DataFrame(rows), pd.DataFrame(vs)


def stage_table(p: Params, name: str, summaries: list[str], out_csv: str | Path, out_vs_paper: str | Path,
                per_mixture: list[str] | None = None, same_type: list[str] | None = None) -> pd.DataFrame:
    """Write ``results/<name>.csv`` and ``<name>_vs_paper.csv`` (name: lavss_table1 .. lavss_table4)."""
    lp = lavss_params(p)
    methods = lp.tables[name]
    if name == "lavss_table1":
        df, vs = table1(lp, methods, summaries)
    elif name == "lavss_table2":
        df, vs = table2(lp, methods, summaries, per_mixture or [])
    elif name == "lavss_table3":
        df, vs = table3(lp, methods, summaries, same_type or [])
    elif name == "lavss_table4":
        df, vs = table4(lp, methods, summaries, same_type or [])
    else:
        raise ValueError(f"unknown LAVSS table {name!r}")
    write_csv(df, out_csv)
    write_csv(vs, out_vs_paper)
    print(f"{name}: " + ", ".join(f"{r['method']} {r.get('SDR', r.get('average')):.2f}" for _, r in df.iterrows()),
          flush=True)
    return df


# ==========================================================================================================
# Figures
# ==========================================================================================================


def stage_figure(p: Params, kind: str, manifest: str | Path, box_files: Sequence[str], mixtures: str | Path,
                 methods: list[str], ckpts: list[str | None], out_png: str | Path) -> None:
    """Spectrograms of the first mixture of a test list: per (source, ear) the mixture, the truth and each estimate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lp = lavss_params(p)
    data = _data(p, lp, lp.dataset, manifest, box_files)
    table = pd.read_parquet(mixtures).head(1)
    spec = specs_from_table(table, 2)
    batch = data.batch(spec)
    ests = {}
    for m, ck in zip(methods, ckpts):
        model = None if ck is None else load_lavss(ck)[0]
        ests[lp.label(m)] = separate_batch(model, batch, lp.frontend, lp.mask_threshold)[0]

    def logspec(x: torch.Tensor) -> np.ndarray:
        return np.log10(stft(x.float()[None], lp.frontend)[0].abs().numpy() + 1e-4)

    cols = 2 + len(ests)
    fig, axes = plt.subplots(4, cols, figsize=(2.1 * cols, 7.2), squeeze=False)
    for n in range(2):
        for e, ear in enumerate(EARS):
            r = 2 * n + e
            cx = float(table[f"cx_{n}"].iloc[0])
            panels = [(f"mixture ({ear})", batch.mixture[0, e]),
                      (f"truth: {spec[0].labels[n]} x={cx:.2f} ({ear})", batch.sources[0, n, e])]
            panels += [(name, est[n, e]) for name, est in ests.items()]
            for c, (title, wav) in enumerate(panels):
                ax = axes[r, c]
                ax.imshow(logspec(wav), origin="lower", aspect="auto", cmap="magma")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0 or c == 1:
                    ax.set_title(title, fontsize=6)
    what = "two different instruments" if kind == "different" else "two instances of the same instrument"
    fig.suptitle(f"{lp.dataset} ({data.boxes.label}): {what}, mixture {table['mixture_id'].iloc[0]}", fontsize=8)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


# ==========================================================================================================
# Snakemake wiring (rules/lavss.smk): the files each LAVSS job reads, from the raw config dict
# ==========================================================================================================


def rule_checkpoint(config: dict[str, Any], method: str) -> str:
    """The checkpoint ``method`` is scored with: its own, or for a `*` row its mono pre-trained model."""
    lv = config["lavss"]
    e = lv["models"][method]
    if not e.get("finetune", True):
        return f"models/{lv['pretrain_dataset']}/lavss_pretrain/{e['pretrain']}/checkpoint.pt"
    return f"models/{lv['dataset']}/lavss/{method}/checkpoint.pt"


def rule_train_inputs(config: dict[str, Any], variant: str) -> dict[str, Any]:
    """Inputs of a training job: the clips, the boxes and (if it starts from one) the pre-trained model."""
    lv = config["lavss"]
    ins: dict[str, Any] = {"manifest": f"data/{lv['dataset']}/extract/manifest.parquet",
                           "boxes": box_inputs(lv["boxes"], lv["dataset"])}
    pre = lv["models"][variant].get("pretrain")
    if pre is not None:
        ins["init"] = f"models/{lv['pretrain_dataset']}/lavss_pretrain/{pre}/checkpoint.pt"
    return ins


def rule_eval_inputs(config: dict[str, Any], method: str) -> dict[str, str]:
    """The checkpoint input of an evaluation job (none for mix-gt)."""
    return {} if method == MIX_GT else {"checkpoint": rule_checkpoint(config, method)}


def rule_eval_files(config: dict[str, Any], kind: str, methods: Sequence[str], ext: str = "json") -> list[str]:
    return [f"results/lavss_eval/{config['lavss']['dataset']}/{kind}/{m}.{ext}" for m in methods]


def rule_table_inputs(config: dict[str, Any], table: str) -> dict[str, list[str]]:
    """Inputs of a table job: evaluation summaries (and per-mixture scores for table 2, same-type summaries
    for tables 3 and 4)."""
    methods = config["lavss"]["tables"][table]
    if table == "lavss_table2":
        return {"summaries": rule_eval_files(config, "same_type", methods),
                "per_mixture": rule_eval_files(config, "same_type", methods, "parquet")}
    ins = {"summaries": rule_eval_files(config, "different", methods)}
    if table in ("lavss_table3", "lavss_table4"):
        ins["same_type"] = rule_eval_files(config, "same_type", methods)
    return ins
