"""Embedded synthetic audio-visual datasets: real mp4 clips of one sounding object per class.

Each clip is an H.264 + AAC mp4 that enters the pipeline where a downloaded YouTube video would. The audio
is a seeded random phrase rendered with a General MIDI SoundFont (``tinysoundfont``); the video shows the
class's object (:mod:`avsep.data.prepare.instruments` gives its colour, shape and pattern) drifting slightly over
a textured background, and the ground-truth box of every object in every frame is recorded for the
detector. With ``binaural=True`` the mono source is rendered binaurally (:mod:`avsep.data.prepare.spatial`) from
the azimuth that matches the object's horizontal position.

Everything is a pure function of the :class:`SynthConfig`: the same config yields byte-identical audio,
identical boxes and (with the bit-exact ffmpeg flags used here) byte-identical mp4 files. This module holds
the config, the clip plan, the mp4 encoding and the dataset stage; the sound is rendered by
:mod:`avsep.data.prepare.synth_audio` and the frames by :mod:`avsep.data.prepare.synth_frames`.

Outputs of :func:`generate_dataset` under ``out_dir``::

    videos/{id}.mp4     one clip per row of the manifest
    boxes.parquet       id, instance, frame, time, label, x1, y1, x2, y2, cx, cy (normalised to [0, 1])
    manifest.parquet    id, status, reason, label, split, path, duration, position_x, azimuth, ...
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import math
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from avsep.core.io import STATUS_OK, atomic_path, write_parquet
from avsep.core.seeding import derive_seed
from avsep.data.prepare import spatial
from avsep.data.prepare.instruments import DATASET_CLASSES, DRUM_BANK, get_instrument
from avsep.data.prepare.media import MediaError, ffmpeg_exe
from avsep.data.prepare.synth_audio import DEFAULT_SOUNDFONT, render_clip_audio
from avsep.data.prepare.synth_frames import BACKGROUNDS, layout_boxes, plan_layout, render_frames

_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")

MANIFEST_COLUMNS = (
    "id", "status", "reason", "label", "split", "path", "duration", "position_x", "position_y", "azimuth",
    "azimuth_deg", "box_w", "box_h", "dataset", "index", "kind", "program", "bank", "percussion", "binaural",
    "channels", "sample_rate", "fps", "frame_size", "n_frames", "instances", "peak", "seed",
)
BOX_COLUMNS = ("id", "instance", "frame", "time", "label", "x1", "y1", "x2", "y2", "cx", "cy")


# ---------------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthConfig:
    """What to render.

    Attributes:
        name: dataset name, the prefix of every clip id (``[A-Za-z0-9_-]`` only).
        classes: class names from :data:`avsep.data.prepare.instruments.INSTRUMENTS`.
        clips_per_class: clips per class for each split, e.g. ``{"train": 4, "test": 2}``.
        clip_seconds: clip length; ``clip_seconds * video_fps`` frames are drawn.
        sample_rate: audio render (and mp4) sample rate.
        video_fps: frame rate of the mp4.
        frame_size: width = height of the frames in pixels (even, for yuv420p).
        binaural: render the audio binaurally from the object's position (stereo AAC) instead of mono.
        instances_per_clip: objects of the clip's class shown (and heard) at once, side by side.
        seed: base seed; each clip derives its own from it.
        soundfont: General MIDI SoundFont (sf2) used to render the audio.
        size_range: optional ``(lo, hi)`` range of an object's longer side, as a fraction of the frame;
            None keeps the defaults (0.3-0.45, binaural 0.26-0.34).
        free_position: draw single objects anywhere (centre x in 0.2-0.8, y in 0.3-0.7) instead of in
            the three horizontal zones.
        background: ``"muted"`` (the default low-contrast backgrounds) or ``"varied"`` (wider brightness,
            colour cast and gradient; contains the muted range).
        pitch_shift: melodic phrases of a clip move their class's pitch range by a seeded whole number of
            semitones in ``[-pitch_shift, pitch_shift]`` (0: never).

    The last four knobs add variation (the encoder pre-training set uses them); at their defaults every clip
    is byte-identical to a config without them.
    """

    name: str
    classes: tuple[str, ...]
    clips_per_class: dict[str, int] = field(default_factory=lambda: {"train": 4, "test": 2})
    clip_seconds: float = 8.0
    sample_rate: int = 22050
    video_fps: int = 16
    frame_size: int = 128
    binaural: bool = False
    instances_per_clip: int = 1
    seed: int = 0
    soundfont: str = DEFAULT_SOUNDFONT
    size_range: tuple[float, float] | None = None
    free_position: bool = False
    background: str = "muted"
    pitch_shift: int = 0

    def __post_init__(self) -> None:
        if not _SAFE.match(self.name):
            raise ValueError(f"dataset name {self.name!r} must match [A-Za-z0-9_-]+")
        if not self.classes:
            raise ValueError("SynthConfig.classes is empty")
        for c in self.classes:
            get_instrument(c)
        for split, n in self.clips_per_class.items():
            if not _SAFE.match(split) or int(n) < 0:
                raise ValueError(f"bad split {split!r} -> {n!r} in clips_per_class")
        if self.frame_size < 32 or self.frame_size % 2:
            raise ValueError(f"frame_size must be even and >= 32, got {self.frame_size}")
        if self.clip_seconds <= 0 or self.video_fps <= 0 or self.sample_rate < 8000:
            raise ValueError("clip_seconds, video_fps must be positive and sample_rate >= 8000")
        if not 1 <= self.instances_per_clip <= 3:
            raise ValueError("instances_per_clip must be 1, 2 or 3")
        if self.size_range is not None:
            lo, hi = self.size_range
            if not 0.1 <= lo <= hi <= 0.6:
                raise ValueError(f"size_range must be (lo, hi) with 0.1 <= lo <= hi <= 0.6, got {self.size_range}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background must be one of {BACKGROUNDS}, got {self.background!r}")
        if not 0 <= int(self.pitch_shift) <= 12:
            raise ValueError(f"pitch_shift must be 0-12 semitones, got {self.pitch_shift}")

    @property
    def n_frames(self) -> int:
        """Frames per clip."""
        return max(1, round(self.clip_seconds * self.video_fps))

    @property
    def duration(self) -> float:
        """Exact clip duration in seconds (a whole number of frames)."""
        return self.n_frames / self.video_fps

    @property
    def n_samples(self) -> int:
        """Audio samples per clip."""
        return round(self.duration * self.sample_rate)


def preset_config(dataset: str, clips_per_class: dict[str, int] | None = None, seed: int = 0,
                  **overrides: object) -> SynthConfig:
    """A :class:`SynthConfig` for one of :data:`DATASET_CLASSES` (``synth-fairplay`` is binaural)."""
    if dataset not in DATASET_CLASSES:
        raise KeyError(f"unknown synthetic dataset {dataset!r}; known: {sorted(DATASET_CLASSES)}")
    kw: dict[str, object] = {"binaural": dataset == "synth-fairplay"}
    if clips_per_class is not None:
        kw["clips_per_class"] = dict(clips_per_class)
    kw.update(overrides)
    return SynthConfig(name=dataset, classes=DATASET_CLASSES[dataset], seed=seed, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ClipPlan:
    """One clip to render: identity and seed."""

    id: str
    label: str
    split: str
    index: int
    seed: int


def plan_clips(cfg: SynthConfig) -> list[ClipPlan]:
    """All clips of ``cfg`` in a fixed order (class, then split, then index)."""
    plans = []
    for label in cfg.classes:
        for split, n in cfg.clips_per_class.items():
            for i in range(int(n)):
                cid = f"{cfg.name}-{label}-{split}-{i:03d}"
                plans.append(ClipPlan(cid, label, split, i, derive_seed(cfg.seed, cfg.name, label, split, i)))
    return plans


# ---------------------------------------------------------------------------------------------------
# encoding
# ---------------------------------------------------------------------------------------------------

#: Flags that make ffmpeg's output byte-stable (no version strings, single-threaded x264).
BITEXACT = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1"]


def encode_clip(frames: np.ndarray, audio: np.ndarray, sample_rate: int, fps: int, out_path: Path) -> None:
    """Mux ``frames`` (T, H, W, 3 uint8) and ``audio`` ((channels, n) float) into an H.264/AAC mp4.

    Frames are piped to ffmpeg as raw RGB; the audio goes through a temporary float wav. The file is
    written atomically. Raises :class:`avsep.data.prepare.media.MediaError` if ffmpeg fails.
    """
    _, H, W, _ = frames.shape
    channels = audio.shape[0]
    with tempfile.TemporaryDirectory(prefix="avsep-synth-") as td:
        wav = Path(td) / "audio.wav"
        sf.write(wav, np.ascontiguousarray(audio.T), sample_rate, subtype="FLOAT")
        with atomic_path(out_path) as tmp:
            cmd = [
                ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}", "-r", str(fps), "-i", "pipe:0",
                "-i", str(wav),
                "-map", "0:v:0", "-map", "1:a:0",
                "-c:v", "libx264", "-preset", "fast", "-crf", "18", "-pix_fmt", "yuv420p", "-threads", "1",
                "-g", str(2 * fps),
                "-c:a", "aac", "-b:a", f"{64 * channels}k", "-ar", str(sample_rate), "-ac", str(channels),
                *BITEXACT, "-movflags", "+faststart", "-f", "mp4", str(tmp),
            ]
            proc = subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), capture_output=True, check=False)
            if proc.returncode != 0:
                err = proc.stderr.decode(errors="replace").strip().splitlines()
                raise MediaError(f"{out_path}: ffmpeg encode failed: {err[-1] if err else proc.returncode}")


# ---------------------------------------------------------------------------------------------------
# dataset
# ---------------------------------------------------------------------------------------------------


def render_clip(cfg: SynthConfig, plan: ClipPlan, out_dir: Path) -> tuple[dict[str, object], pd.DataFrame]:
    """Render and encode one clip to ``out_dir/videos/{id}.mp4``; return its manifest row and boxes."""
    spec = get_instrument(plan.label)
    layouts = plan_layout(cfg, plan)
    boxes = layout_boxes(cfg, plan, layouts)
    inst_x = boxes.groupby("instance")["cx"].mean().to_numpy()
    azimuths = [spatial.position_to_azimuth(x) for x in inst_x]
    audio, peak = render_clip_audio(cfg, plan, azimuths)
    frames = render_frames(cfg, plan, layouts)
    rel = f"videos/{plan.id}.mp4"
    encode_clip(frames, audio, cfg.sample_rate, cfg.video_fps, out_dir / rel)
    pos_x = float(boxes["cx"].mean())
    az = spatial.position_to_azimuth(pos_x)
    row: dict[str, object] = {
        "id": plan.id, "status": STATUS_OK, "reason": "", "label": plan.label, "split": plan.split,
        "path": rel, "duration": cfg.duration, "position_x": pos_x, "position_y": float(boxes["cy"].mean()),
        "azimuth": az, "azimuth_deg": math.degrees(az),
        "box_w": float((boxes["x2"] - boxes["x1"]).mean()), "box_h": float((boxes["y2"] - boxes["y1"]).mean()),
        "dataset": cfg.name, "index": plan.index, "kind": spec.kind, "program": spec.program,
        "bank": DRUM_BANK if spec.percussion else spec.bank, "percussion": spec.percussion,
        "binaural": cfg.binaural, "channels": int(audio.shape[0]), "sample_rate": cfg.sample_rate,
        "fps": cfg.video_fps, "frame_size": cfg.frame_size, "n_frames": cfg.n_frames,
        "instances": cfg.instances_per_clip, "peak": peak, "seed": plan.seed,
    }
    return row, boxes


def generate_dataset(cfg: SynthConfig, out_dir: Path, progress: bool = True, workers: int = 1) -> pd.DataFrame:
    """Render every clip of ``cfg`` under ``out_dir``; write and return the manifest.

    Writes ``videos/{id}.mp4``, ``boxes.parquet`` and (last, so its presence means the set is complete)
    ``manifest.parquet``. Every file is written atomically. ``workers`` > 1 renders clips in that many
    processes; every clip is seeded by its own plan, so the files are the same bytes for any ``workers``.
    """
    from avsep.core.progress import progress as tqdm

    out_dir = Path(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    plans = plan_clips(cfg)
    rows, boxes = [], []
    bar = tqdm(total=len(plans), desc=f"synth {cfg.name}", unit="clip", disable=not progress)
    with render_pool(workers) as pool:
        for row, bx in pool.map(functools.partial(render_clip, cfg, out_dir=out_dir), plans):
            rows.append(row)
            boxes.append(bx)
            bar.update(1)
    bar.close()
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    box_df = pd.concat(boxes, ignore_index=True) if boxes else pd.DataFrame(columns=list(BOX_COLUMNS))
    write_parquet(box_df[list(BOX_COLUMNS)], out_dir / "boxes.parquet")
    write_parquet(manifest, out_dir / "manifest.parquet")
    return manifest


@contextlib.contextmanager
def render_pool(workers: int) -> Iterator[Any]:
    """``map`` in plan order: in this process, or in ``workers`` forked processes."""
    if workers <= 1:
        yield builtins
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
        yield pool
