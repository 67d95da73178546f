"""The encoder pre-training set: synthetic clips of every class, disjoint from every table's test clips.

HFRA's CLIP and CLAP are pre-trained on web data that never contains MUSIC's or VGGSound's test videos. The
demo's stand-in is ``synth-pretrain``: clips of all classes of ``synth-music``, ``synth-music21`` and
``synth-sounds`` (the union of :data:`~avsep.data.prepare.instruments.DATASET_CLASSES`), rendered by the same
renderer with more variation (object sizes and positions anywhere in the frame, varied backgrounds, pitch
ranges shifted by up to a few semitones) and from their own seeds:

- the dataset name ``synth-pretrain`` is part of every clip id and of every clip's seed
  (:func:`~avsep.data.prepare.synth.plan_clips` derives ``derive_seed(base, name, label, split, index)``);
- the base seed itself is derived from the project seed and the name (:func:`pretrain_seed`).

:func:`check_disjoint` proves the point for a given set of table datasets: no clip id and no
``(seed, class)`` or ``(seed, class, index)`` rendering of the pre-training set is one of a table's test clips.
Its splits are ``train`` (what the encoders learn from) and ``heldout`` (their zero-shot check in
``pretrain_log.csv``).

No table, mixture list or cache reads the set, so it skips the mp4 that a table dataset's clips go through
(encoding and decoding it were 90 % of the set's cost): :func:`generate_pretrain` renders each clip straight
into the extract stage's layout (:func:`render_pretrain_clip`: a mono 16-bit wav at the front-end rate, JPEG
frames sampled as ffmpeg's ``fps`` filter samples them, an extract-style ``manifest.parquet``), which the
encoders' pre-training reads as it would an extracted dataset.
"""

from __future__ import annotations

import functools
import math
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from avsep.audio.resample import resample_exact
from avsep.core.io import STATUS_OK, write_json, write_parquet
from avsep.core.seeding import derive_seed
from avsep.data.prepare.instruments import DATASET_CLASSES, DRUM_BANK, get_instrument
from avsep.data.prepare.synth import BOX_COLUMNS, ClipPlan, SynthConfig, plan_clips, render_pool

PRETRAIN_NAME = "synth-pretrain"
#: Every class of the embedded datasets, in registry order (synth-fairplay's are among synth-music21's).
PRETRAIN_CLASSES: tuple[str, ...] = tuple(dict.fromkeys(c for names in DATASET_CLASSES.values() for c in names))
PRETRAIN_SPLITS = ("train", "heldout")


def pretrain_seed(seed: int, name: str = PRETRAIN_NAME) -> int:
    """The base seed of the pre-training set: its own derivation from the project seed."""
    return derive_seed(seed, "encoder-pretraining", name)


def pretrain_config(
    seed: int,
    train: int = 16,
    heldout: int = 2,
    clip_seconds: float = 4.0,
    name: str = PRETRAIN_NAME,
    classes: Iterable[str] = PRETRAIN_CLASSES,
    synth: Mapping[str, Any] | None = None,
    size_range: tuple[float, float] = (0.22, 0.5),
    free_position: bool = True,
    background: str = "varied",
    pitch_shift: int = 5,
) -> SynthConfig:
    """The :class:`SynthConfig` of the pre-training set (``synth`` is the params' ``synth:`` section: sound
    font, render rate, video fps and frame size are shared with the table datasets)."""
    s = dict(synth or {})
    kw: dict[str, Any] = {}
    if "soundfont" in s:
        kw["soundfont"] = str(s["soundfont"])
    if "render_rate" in s:
        kw["sample_rate"] = int(s["render_rate"])
    if "video_fps" in s:
        kw["video_fps"] = int(s["video_fps"])
    if "frame_size" in s:
        kw["frame_size"] = int(s["frame_size"])
    return SynthConfig(
        name=name, classes=tuple(classes), clips_per_class={"train": int(train), "heldout": int(heldout)},
        clip_seconds=float(clip_seconds), seed=pretrain_seed(seed, name), size_range=tuple(size_range),  # type: ignore[arg-type]
        free_position=free_position, background=background, pitch_shift=int(pitch_shift), **kw,
    )


def table_dataset_configs(raw: Mapping[str, Any]) -> list[SynthConfig]:
    """The :class:`SynthConfig` of every synthetic dataset of a params dict, as rule ``synth`` renders it
    (:func:`avsep.stages.data.synth`)."""
    s = raw["synth"]
    out = []
    for name, d in raw["datasets"].items():
        if d.get("source") != "synth":
            continue
        out.append(SynthConfig(
            name=name, classes=tuple(DATASET_CLASSES[d["classes"]]), clips_per_class=dict(d["clips_per_class"]),
            clip_seconds=float(s["clip_seconds"]), sample_rate=int(s["render_rate"]), video_fps=int(s["video_fps"]),
            frame_size=int(s["frame_size"]), binaural=bool(d.get("binaural", False)), seed=int(raw["seed"]),
            soundfont=str(s["soundfont"]),
        ))
    return out


def check_disjoint(pretrain: SynthConfig, tables: Iterable[SynthConfig], splits: Iterable[str] = ("test",)) -> dict[str, int]:
    """Raise ``ValueError`` if a clip of ``pretrain`` is one of the ``splits`` clips of a table dataset.

    Compared: clip ids, ``(seed, class)`` (a clip is a pure function of its seed and class, whatever its
    index) and ``(seed, class, index)``. Returns the counts compared (``pretrain``, ``test``).
    """
    splits = set(splits)
    test = [pl for cfg in tables for pl in plan_clips(cfg) if pl.split in splits]
    return check_disjoint_plans(plan_clips(pretrain), test)


def check_disjoint_plans(mine: Sequence[ClipPlan], test: Sequence[ClipPlan]) -> dict[str, int]:
    """:func:`check_disjoint` on clip plans."""
    ids = {pl.id for pl in test}
    renders = {(pl.seed, pl.label) for pl in test}
    indexed = {(pl.seed, pl.label, pl.index) for pl in test}
    for pl in mine:
        if pl.id in ids:
            raise ValueError(f"pre-training clip {pl.id} has the id of a table dataset's test clip")
        if (pl.seed, pl.label) in renders or (pl.seed, pl.label, pl.index) in indexed:
            raise ValueError(f"pre-training clip {pl.id} renders the same (seed {pl.seed}, class {pl.label}) as a "
                             "table dataset's test clip")
    return {"pretrain": len(mine), "test": len(test)}


#: Columns of the pre-training manifest: those of an extract manifest of a rendered dataset (rule ``extract``),
#: less the video path (there is no video: see :func:`render_pretrain_clip`).
PRETRAIN_COLUMNS = (
    "id", "status", "reason", "label", "split", "position_x", "position_y", "azimuth", "azimuth_deg", "box_w",
    "box_h", "dataset", "index", "kind", "program", "bank", "percussion", "binaural", "fps", "frame_size",
    "instances", "peak", "seed", "audio", "frames", "n_samples", "n_frames", "duration", "sample_rate", "channels",
    "width", "height",
)
#: JPEG quality of the frames (Pillow's scale; the extract stage's ffmpeg ``-q:v 2`` is as fine).
JPEG_QUALITY = 95


def frame_times(n_video_frames: int, video_fps: float, fps: float) -> np.ndarray:
    """Indices of the video frames that ffmpeg's ``fps=<fps>`` filter keeps (the nearest frame to each output
    time ``k / fps``), as the extract stage samples a clip's frames."""
    n_out = max(1, math.floor(n_video_frames * fps / video_fps + 0.5))
    idx = np.floor(np.arange(n_out) * (video_fps / fps) + 0.5).astype(np.int64)
    return np.minimum(idx, n_video_frames - 1)


def render_pretrain_clip(cfg: SynthConfig, plan: ClipPlan, out_dir: Path, sample_rate: int, fps: float,
                         min_samples: int = 0) -> tuple[dict[str, Any], pd.DataFrame]:
    """Render one clip straight into the extract stage's layout: ``audio/{id}.wav`` (mono PCM 16-bit at
    ``sample_rate``) and ``frames/{id}/000001.jpg, ...`` (``fps`` frames per second); return its manifest row
    and boxes.

    A table dataset's clip goes renderer -> H.264/AAC mp4 -> ffmpeg decode (resample, frame sampling, JPEG);
    the pre-training set, which no table, mixture list or cache reads, skips the mp4 (two ffmpeg runs per
    clip, 90 % of rendering it) and does the same steps itself: polyphase resampling from the render rate,
    the frames ffmpeg's ``fps`` filter would keep, JPEG of the same quality. Same function of the plan, so the
    same bytes on every run.
    """
    import soundfile as sf
    from PIL import Image

    from avsep.data.prepare import spatial
    from avsep.data.prepare.synth_audio import render_clip_audio
    from avsep.data.prepare.synth_frames import layout_boxes, plan_layout, render_frames

    if cfg.binaural:
        raise ValueError("the pre-training set is mono")
    spec = get_instrument(plan.label)
    layouts = plan_layout(cfg, plan)
    boxes = layout_boxes(cfg, plan, layouts)
    inst_x = boxes.groupby("instance")["cx"].mean().to_numpy()
    audio, peak = render_clip_audio(cfg, plan, [spatial.position_to_azimuth(x) for x in inst_x])
    wave = resample_exact(audio[0], cfg.sample_rate, sample_rate)
    pcm = np.round(np.clip(wave, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    if len(pcm) < min_samples:
        raise ValueError(f"{plan.id}: {len(pcm)} samples < {min_samples} (encoders.pretrain_data.clip_seconds too short)")
    video = render_frames(cfg, plan, layouts)
    keep = frame_times(len(video), cfg.video_fps, fps)
    wav, frames = f"audio/{plan.id}.wav", f"frames/{plan.id}"
    sf.write(out_dir / wav, pcm, sample_rate, subtype="PCM_16")
    (out_dir / frames).mkdir(parents=True, exist_ok=True)
    for k, f in enumerate(keep):
        Image.fromarray(video[f]).save(out_dir / frames / f"{k + 1:06d}.jpg", quality=JPEG_QUALITY)
    pos_x = float(boxes["cx"].mean())
    az = spatial.position_to_azimuth(pos_x)
    row: dict[str, Any] = {
        "id": plan.id, "status": STATUS_OK, "reason": "", "label": plan.label, "split": plan.split,
        "position_x": pos_x, "position_y": float(boxes["cy"].mean()), "azimuth": az, "azimuth_deg": math.degrees(az),
        "box_w": float((boxes["x2"] - boxes["x1"]).mean()), "box_h": float((boxes["y2"] - boxes["y1"]).mean()),
        "dataset": cfg.name, "index": plan.index, "kind": spec.kind, "program": spec.program,
        "bank": DRUM_BANK if spec.percussion else spec.bank, "percussion": spec.percussion, "binaural": False,
        "fps": cfg.video_fps, "frame_size": cfg.frame_size, "instances": cfg.instances_per_clip, "peak": peak,
        "seed": plan.seed, "audio": wav, "frames": frames, "n_samples": len(pcm), "n_frames": len(keep),
        "duration": len(pcm) / sample_rate, "sample_rate": sample_rate, "channels": 1,
        "width": cfg.frame_size, "height": cfg.frame_size,
    }
    return row, boxes


def generate_pretrain(cfg: SynthConfig, out_dir: str | Path, tables: Iterable[SynthConfig], sample_rate: int,
                      fps: float, min_samples: int = 0, workers: int = 1, progress: bool = True) -> pd.DataFrame:
    """Check :func:`check_disjoint` against ``tables``, then render every clip (:func:`render_pretrain_clip`)
    into ``out_dir``: ``audio/``, ``frames/``, ``boxes.parquet`` and, last, ``manifest.parquet`` (the columns of
    an extract manifest, :data:`PRETRAIN_COLUMNS`, sorted by id). Earlier ``audio/`` and ``frames/`` are removed
    first. The files do not depend on ``workers``."""
    from avsep.core.progress import progress as tqdm

    check_disjoint(cfg, tables)
    out_dir = Path(out_dir)
    for sub in ("audio", "frames"):
        shutil.rmtree(out_dir / sub, ignore_errors=True)
        (out_dir / sub).mkdir(parents=True)
    plans = plan_clips(cfg)
    rows, boxes = [], []
    bar = tqdm(total=len(plans), desc=f"synth {cfg.name}", unit="clip", disable=not progress)
    work = functools.partial(render_pretrain_clip, cfg, out_dir=out_dir, sample_rate=int(sample_rate), fps=float(fps),
                             min_samples=int(min_samples))
    with render_pool(workers) as pool:
        for row, bx in pool.map(work, plans, **({"chunksize": 8} if workers > 1 else {})):
            rows.append(row)
            boxes.append(bx)
            bar.update(1)
    bar.close()
    manifest = pd.DataFrame(rows, columns=list(PRETRAIN_COLUMNS)).sort_values("id", kind="stable").reset_index(drop=True)
    for col in ("n_samples", "n_frames", "sample_rate", "channels", "width", "height"):
        manifest[col] = manifest[col].astype("Int64")
    write_json({"sample_rate": int(sample_rate), "channels": 1, "fps": float(fps), "jpeg_quality": JPEG_QUALITY,
                "render_rate": cfg.sample_rate, "video_fps": cfg.video_fps, "frame_size": cfg.frame_size},
               out_dir / "extract_config.json")
    write_parquet(pd.concat(boxes, ignore_index=True)[list(BOX_COLUMNS)], out_dir / "boxes.parquet")
    write_parquet(manifest, out_dir / "manifest.parquet")
    return manifest
