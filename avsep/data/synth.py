"""Embedded synthetic audio-visual datasets: real mp4 clips of one sounding object per class.

Each clip is an H.264 + AAC mp4 that enters the pipeline where a downloaded YouTube video would. The audio
is a seeded random phrase rendered with a General MIDI SoundFont (``tinysoundfont``); the video shows the
class's object (:mod:`avsep.data.instruments` gives its colour, shape and pattern) drifting slightly over
a textured background, and the ground-truth box of every object in every frame is recorded for the
detector. With ``binaural=True`` the mono source is rendered binaurally (:mod:`avsep.data.spatial`) from
the azimuth that matches the object's horizontal position.

Everything is a pure function of the :class:`SynthConfig`: the same config yields byte-identical audio,
identical boxes and (with the bit-exact ffmpeg flags used here) byte-identical mp4 files.

Outputs of :func:`generate_dataset` under ``out_dir``::

    videos/{id}.mp4     one clip per row of the manifest
    boxes.parquet       id, instance, frame, time, label, x1, y1, x2, y2, cx, cy (normalised to [0, 1])
    manifest.parquet    id, status, reason, label, split, path, duration, position_x, azimuth, ...
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from avsep.data import spatial
from avsep.data.instruments import DATASET_CLASSES, DRUM_BANK, DRUM_CHANNEL, Appearance, InstrumentSpec, get_instrument
from avsep.io import STATUS_OK, atomic_path, write_parquet
from avsep.media import MediaError, ffmpeg_exe
from avsep.seeding import derive_seed, rng

DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")

#: Every 1 s window (hop 0.25 s) of a normalised clip must have at least this RMS (about -40 dBFS).
MIN_WINDOW_RMS = 0.01
#: Attempts (fresh phrases) before giving up on a clip that keeps failing the activity check.
MAX_RENDER_ATTEMPTS = 12

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
        classes: class names from :data:`avsep.data.instruments.INSTRUMENTS`.
        clips_per_class: clips per class for each split, e.g. ``{"train": 4, "test": 2}``.
        clip_seconds: clip length; ``clip_seconds * video_fps`` frames are drawn.
        sample_rate: audio render (and mp4) sample rate.
        video_fps: frame rate of the mp4.
        frame_size: width = height of the frames in pixels (even, for yuv420p).
        binaural: render the audio binaurally from the object's position (stereo AAC) instead of mono.
        instances_per_clip: objects of the clip's class shown (and heard) at once, side by side.
        seed: base seed; each clip derives its own from it.
        soundfont: General MIDI SoundFont (sf2) used to render the audio.
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

    @property
    def n_frames(self) -> int:
        """Frames per clip."""
        return max(1, int(round(self.clip_seconds * self.video_fps)))

    @property
    def duration(self) -> float:
        """Exact clip duration in seconds (a whole number of frames)."""
        return self.n_frames / self.video_fps

    @property
    def n_samples(self) -> int:
        """Audio samples per clip."""
        return int(round(self.duration * self.sample_rate))


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
# phrases
# ---------------------------------------------------------------------------------------------------

SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "major_pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
}


@dataclass(frozen=True)
class Note:
    """A note of a phrase (seconds, MIDI key, MIDI velocity)."""

    start: float
    end: float
    key: int
    velocity: int


def scale_pitches(lo: int, hi: int, root: int, scale: tuple[int, ...]) -> list[int]:
    """MIDI pitches in ``[lo, hi]`` that belong to ``scale`` on ``root`` (pitch class 0-11)."""
    return [p for p in range(lo, hi + 1) if (p - root) % 12 in scale]


def make_phrase(spec: InstrumentSpec, seconds: float, gen: np.random.Generator) -> list[Note]:
    """A random phrase filling ``seconds`` in the style of ``spec`` (melodic, percussive or effect)."""
    st = spec.style
    if spec.percussion:
        pitches = list(spec.drum_notes)
    else:
        scale = SCALES[sorted(SCALES)[int(gen.integers(len(SCALES)))]]
        pitches = scale_pitches(*spec.pitch_range, root=int(gen.integers(12)), scale=scale) or [
            (spec.pitch_range[0] + spec.pitch_range[1]) // 2
        ]
    n = len(pitches)
    pos = int(gen.integers(n // 4, max(n // 4 + 1, (3 * n) // 4)))
    notes: list[Note] = []
    t = float(gen.uniform(0.0, 0.05))
    while t < seconds:
        ioi = float(gen.uniform(*st.ioi_seconds))
        gate = float(gen.uniform(*st.gate))
        vel = int(gen.integers(st.velocity[0], st.velocity[1] + 1))
        if spec.percussion:
            pos = int(gen.integers(n))
        else:
            pos = _step(pos, n, st.max_step, allow_repeat=st.gate[1] <= 1.0, gen=gen)
        keys = [pitches[pos]]
        if st.chord_prob > 0 and gen.random() < st.chord_prob:
            extra = pos + int(gen.choice([2, 4])) if not spec.percussion else int(gen.integers(n))
            if 0 <= extra < n and pitches[extra] != keys[0]:
                keys.append(pitches[extra])
        for k in keys:
            notes.append(Note(t, t + ioi * gate, k, vel))
        t += ioi
        if st.rest_prob > 0 and gen.random() < st.rest_prob:
            t += float(gen.uniform(*st.rest_seconds))
    return notes


def _step(pos: int, n: int, max_step: int, allow_repeat: bool, gen: np.random.Generator) -> int:
    """Random-walk step on scale degrees, favouring small steps and reflecting at the range ends."""
    if n <= 1:
        return 0
    steps = np.arange(-max_step, max_step + 1)
    if not allow_repeat:
        steps = steps[steps != 0]
    weights = 1.0 / (1.0 + np.abs(steps))
    s = int(gen.choice(steps, p=weights / weights.sum()))
    new = pos + s
    if new < 0 or new >= n:
        new = pos - s
    new = min(max(new, 0), n - 1)
    if new == pos and not allow_repeat:
        new = pos + 1 if pos + 1 < n else pos - 1
    return new


# ---------------------------------------------------------------------------------------------------
# audio
# ---------------------------------------------------------------------------------------------------

_LOCAL = threading.local()


def _synth(soundfont: str, sample_rate: int) -> tuple[object, int]:
    """A per-thread ``tinysoundfont.Synth`` with ``soundfont`` loaded (loading takes ~0.3 s)."""
    import tinysoundfont

    cache: dict[tuple[str, int], tuple[object, int]] = getattr(_LOCAL, "synths", None) or {}
    _LOCAL.synths = cache
    key = (soundfont, sample_rate)
    if key not in cache:
        if not Path(soundfont).exists():
            raise FileNotFoundError(
                f"SoundFont {soundfont} not found (install the Debian package fluid-soundfont-gm "
                "or set SynthConfig.soundfont)"
            )
        s = tinysoundfont.Synth(samplerate=sample_rate)
        cache[key] = (s, s.sfload(soundfont))
    return cache[key]


def render_notes(spec: InstrumentSpec, notes: list[Note], n_samples: int, sample_rate: int,
                 soundfont: str = DEFAULT_SOUNDFONT) -> np.ndarray:
    """Render ``notes`` with the GM sound of ``spec``; mono float32 of ``n_samples`` (mean of L and R).

    The synthesizer is reused between clips; all voices are silenced and flushed first, which makes the
    output independent of what was rendered before (checked by the tests).
    """
    synth, sfid = _synth(soundfont, sample_rate)
    s = synth  # type: ignore[assignment]
    s.sounds_off()  # type: ignore[attr-defined]
    s.generate_simple(sample_rate)  # type: ignore[attr-defined]  # let released voices die out
    chan = DRUM_CHANNEL if spec.percussion else 0
    _select_program(s, sfid, chan, spec)
    events = _note_events(notes, n_samples, sample_rate)
    buf = memoryview(bytearray(n_samples * 2 * 4))
    pos = 0
    for at, on, key, vel in events:
        if at > pos:
            s.generate_simple(at - pos, buffer=buf[pos * 8 : at * 8])  # type: ignore[attr-defined]
            pos = at
        if on:
            s.noteon(chan, key, vel)  # type: ignore[attr-defined]
        else:
            s.noteoff(chan, key)  # type: ignore[attr-defined]
    if pos < n_samples:
        s.generate_simple(n_samples - pos, buffer=buf[pos * 8 :])  # type: ignore[attr-defined]
    s.sounds_off()  # type: ignore[attr-defined]
    stereo = np.frombuffer(buf, dtype=np.float32).reshape(-1, 2)
    return stereo.mean(axis=1, dtype=np.float64).astype(np.float32)


def _select_program(s: object, sfid: int, chan: int, spec: InstrumentSpec) -> None:
    """Select the class's preset, falling back to bank 0 when the SoundFont lacks a variation bank."""
    if spec.percussion:
        s.program_select(chan, sfid, DRUM_BANK, 0, is_drums=True)  # type: ignore[attr-defined]
        return
    if spec.bank and s.sfpreset_name(sfid, spec.bank, spec.program) is not None:  # type: ignore[attr-defined]
        s.program_select(chan, sfid, spec.bank, spec.program)  # type: ignore[attr-defined]
    else:
        s.program_select(chan, sfid, 0, spec.program)  # type: ignore[attr-defined]


def _note_events(notes: list[Note], n_samples: int, sample_rate: int) -> list[tuple[int, bool, int, int]]:
    """Sample-accurate (sample, is_on, key, velocity) events inside the clip; note-offs sort first."""
    ev = []
    for nt in notes:
        on = int(round(nt.start * sample_rate))
        off = int(round(nt.end * sample_rate))
        if on < n_samples:
            ev.append((on, True, nt.key, nt.velocity))
            if off < n_samples:
                ev.append((max(off, on + 1), False, nt.key, 0))
    ev.sort(key=lambda e: (e[0], e[1]))
    return ev


def window_rms(audio: np.ndarray, sample_rate: int, window_s: float = 1.0, hop_s: float = 0.25) -> np.ndarray:
    """RMS of every ``window_s`` window (hop ``hop_s``) of mono ``(n,)`` or multichannel ``(c, n)`` audio."""
    x = np.asarray(audio, dtype=np.float64)
    power = x**2 if x.ndim == 1 else (x**2).mean(axis=0)
    win = max(1, int(window_s * sample_rate))
    hop = max(1, int(hop_s * sample_rate))
    if power.shape[0] <= win:
        return np.array([math.sqrt(power.mean())]) if power.size else np.zeros(1)
    c = np.concatenate([[0.0], np.cumsum(power)])
    starts = np.arange(0, power.shape[0] - win + 1, hop)
    return np.sqrt((c[starts + win] - c[starts]) / win)


def render_clip_audio(cfg: SynthConfig, plan: ClipPlan, azimuths: list[float]) -> tuple[np.ndarray, float]:
    """The clip's audio, ``(channels, n)`` float32, normalised to a seeded peak in [0.5, 0.9].

    One phrase per instance (mono, or binaural at that instance's azimuth), summed. Phrases are redrawn
    until every 1 s window is active (:data:`MIN_WINDOW_RMS`). Returns the audio and its peak.
    """
    spec = get_instrument(plan.label)
    target = float(rng(plan.seed, "peak").uniform(0.5, 0.9))
    for attempt in range(MAX_RENDER_ATTEMPTS):
        mix = np.zeros((2 if cfg.binaural else 1, cfg.n_samples), dtype=np.float64)
        for k, az in enumerate(azimuths):
            notes = make_phrase(spec, cfg.duration, rng(plan.seed, "phrase", k, attempt))
            mono = render_notes(spec, notes, cfg.n_samples, cfg.sample_rate, cfg.soundfont)
            mix += spatial.spatialize(mono, cfg.sample_rate, az) if cfg.binaural else mono[None, :]
        peak = float(np.abs(mix).max())
        if peak <= 0:
            continue
        out = (mix * (target / peak)).astype(np.float32)
        if window_rms(out, cfg.sample_rate).min() >= MIN_WINDOW_RMS:
            return out, float(np.abs(out).max())
    raise RuntimeError(f"{plan.id}: could not render an active clip in {MAX_RENDER_ATTEMPTS} attempts")


# ---------------------------------------------------------------------------------------------------
# video
# ---------------------------------------------------------------------------------------------------

_ASPECT = {"tall_rect": (0.55, 1.0), "wide_rect": (1.0, 0.55), "tall_ellipse": (0.6, 1.0), "wide_ellipse": (1.0, 0.6)}
_SUPERSAMPLE = 4


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean inside-test of ``shape`` on coordinates ``u`` (right) and ``v`` (down) in [-1, 1]."""
    r = np.hypot(u, v)
    if shape in ("circle", "tall_ellipse", "wide_ellipse"):
        return r <= 1.0
    if shape in ("square", "tall_rect", "wide_rect"):
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
    if shape == "ring":
        return (r <= 1.0) & (r >= 0.5)
    if shape == "cross":
        return ((np.abs(u) <= 0.34) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.34) & (np.abs(u) <= 1.0))
    if shape == "triangle":
        return (v <= 1.0) & (np.abs(u) <= (v + 1.0) / 2.0)
    if shape == "inv_triangle":
        return (v >= -1.0) & (np.abs(u) <= (1.0 - v) / 2.0)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape in ("pentagon", "hexagon", "star"):
        return _polygon_mask(u, v, _polygon(shape))
    raise ValueError(f"unknown shape {shape!r}")


def _polygon(shape: str) -> np.ndarray:
    """Vertices (u, v) of a regular pentagon/hexagon or a five-pointed star, pointing up, filling [-1, 1]."""
    if shape == "star":
        ang = -np.pi / 2 + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
    else:
        n = 5 if shape == "pentagon" else 6
        ang = -np.pi / 2 + np.arange(n) * 2 * np.pi / n + (np.pi / 6 if n == 6 else 0.0)
        rad = np.ones(n)
    pts = np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return (pts - (lo + hi) / 2) / ((hi - lo) / 2)


def _polygon_mask(u: np.ndarray, v: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test, vectorised over the grid."""
    inside = np.zeros(u.shape, dtype=bool)
    n = len(verts)
    for i in range(n):
        (x0, y0), (x1, y1) = verts[i], verts[(i + 1) % n]
        if y0 == y1:
            continue
        cond = (v >= min(y0, y1)) & (v < max(y0, y1))
        xcross = x0 + (v - y0) * (x1 - x0) / (y1 - y0)
        inside ^= cond & (u <= xcross)
    return inside


def pattern_mask(pattern: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Where the accent colour goes, on the same coordinates as :func:`shape_mask`."""
    if pattern == "solid":
        return np.zeros(u.shape, dtype=bool)
    if pattern == "stripes_h":
        return ((v + 1.0) * 2.5) % 1.0 < 0.3
    if pattern == "stripes_v":
        return ((u + 1.0) * 2.5) % 1.0 < 0.3
    if pattern == "diagonal":
        return ((u + v + 2.0) * 2.0) % 1.0 < 0.3
    if pattern == "checker":
        return ((np.floor((u + 1.0) * 2.0) + np.floor((v + 1.0) * 2.0)) % 2) == 1
    if pattern == "dots":
        gu = ((u + 1.0) * 2.0) % 1.0 - 0.5
        gv = ((v + 1.0) * 2.0) % 1.0 - 0.5
        return np.hypot(gu, gv) < 0.2
    if pattern == "bullseye":
        r = np.hypot(u, v)
        return (r >= 0.35) & (r <= 0.6)
    raise ValueError(f"unknown pattern {pattern!r}")


@dataclass(frozen=True)
class Sprite:
    """A pre-rendered object: premultiplied colour and alpha, and its tight box inside the sprite."""

    rgb: np.ndarray  # (h, w, 3) float32, already multiplied by alpha
    alpha: np.ndarray  # (h, w, 1) float32
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of alpha > 0.5

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.alpha.shape[1], self.alpha.shape[0]


def make_sprite(app: Appearance, longest_px: int, color_jitter: np.ndarray | None = None) -> Sprite:
    """Draw ``app`` with its longer side ``longest_px`` pixels, anti-aliased by supersampling."""
    aw, ah = _ASPECT.get(app.shape, (1.0, 1.0))
    w, h = max(4, int(round(longest_px * aw))), max(4, int(round(longest_px * ah)))
    ss = _SUPERSAMPLE
    # Pixel-centre coordinates on a supersampled grid spanning [-1, 1] over the sprite.
    uu = (np.arange(w * ss) + 0.5) / (w * ss) * 2.0 - 1.0
    vv = (np.arange(h * ss) + 0.5) / (h * ss) * 2.0 - 1.0
    u, v = np.meshgrid(uu, vv)
    inside = shape_mask(app.shape, u, v)
    accent = pattern_mask(app.pattern, u, v) & inside
    color = np.asarray(app.color, dtype=np.float32)
    if color_jitter is not None:
        color = np.clip(color + color_jitter, 0, 255)
    acc = np.asarray(app.accent, dtype=np.float32)
    rgb = np.where(accent[..., None], acc, color) * inside[..., None]
    alpha = inside.astype(np.float32).reshape(h, ss, w, ss).mean(axis=(1, 3))
    rgb = rgb.reshape(h, ss, w, ss, 3).mean(axis=(1, 3)).astype(np.float32)
    rows = np.flatnonzero(alpha.max(axis=1) > 0.5)
    cols = np.flatnonzero(alpha.max(axis=0) > 0.5)
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    return Sprite(rgb=rgb, alpha=alpha[..., None], box=box)


def make_background(size: int, gen: np.random.Generator) -> np.ndarray:
    """A muted, low-saturation background: gradient, soft blobs and fine grain; (size, size, 3) float32."""
    base = gen.uniform(100.0, 150.0) + gen.uniform(-10.0, 10.0, size=3)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    ang = gen.uniform(0, 2 * np.pi)
    grad = (np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5)) * gen.uniform(-30.0, 30.0)
    coarse = gen.uniform(-10.0, 10.0, size=(5, 5))
    idx = np.linspace(0, 4, size)
    blobs = np.array([np.interp(idx, np.arange(5), row) for row in coarse])  # (5, size)
    blobs = np.array([np.interp(idx, np.arange(5), col) for col in blobs.T]).T  # (size, size)
    grain = gen.uniform(-3.0, 3.0, size=(size, size, 1))
    bg = base[None, None, :] + (grad + blobs)[..., None] + grain
    return np.clip(bg, 0.0, 255.0).astype(np.float32)


@dataclass(frozen=True)
class Layout:
    """Where one object instance is: sprite and the top-left pixel of the sprite in every frame."""

    sprite: Sprite
    left: np.ndarray  # (n_frames,) int
    top: np.ndarray  # (n_frames,) int


def plan_layout(cfg: SynthConfig, plan: ClipPlan) -> list[Layout]:
    """Size, position and motion of each object instance of the clip (seeded).

    Single-object clips are spread over three horizontal zones (left, centre, right) by clip index, so a
    class has clips at clearly different positions (needed for same-class binaural mixtures). Several
    instances get one lane each.
    """
    spec = get_instrument(plan.label)
    gen = rng(plan.seed, "layout")
    S, n_inst = cfg.frame_size, cfg.instances_per_clip
    zone_offset = derive_seed(cfg.seed, plan.label, plan.split) % 3
    jitter_rgb = gen.uniform(-6.0, 6.0, size=3).astype(np.float32)
    layouts = []
    for k in range(n_inst):
        if n_inst == 1:
            lo, hi = (0.26, 0.34) if cfg.binaural else (0.3, 0.45)
            centres = (0.2, 0.5, 0.8) if cfg.binaural else (0.27, 0.5, 0.73)
            cx0 = centres[(plan.index + zone_offset) % 3] + gen.uniform(-0.04, 0.04)
        else:
            lo, hi = 0.6 / n_inst, 0.8 / n_inst
            cx0 = (k + 0.5) / n_inst + gen.uniform(-0.03, 0.03)
        sprite = make_sprite(spec.appearance, int(round(gen.uniform(lo, hi) * S)), jitter_rgb)
        left, top = _track(cfg, sprite, cx0, gen)
        layouts.append(Layout(sprite, left, top))
    return layouts


def _track(cfg: SynthConfig, sprite: Sprite, cx0: float, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame integer top-left of the sprite: slow sinusoidal drift plus a pixel of jitter, kept inside."""
    S, T = cfg.frame_size, cfg.n_frames
    w, h = sprite.size
    t = np.arange(T) / cfg.video_fps
    cy0 = 0.5 + gen.uniform(-0.12, 0.12)
    ax, ay = gen.uniform(0.01, 0.035), gen.uniform(0.01, 0.03)
    fx, fy = gen.uniform(0.1, 0.4), gen.uniform(0.1, 0.5)
    px, py = gen.uniform(0, 2 * np.pi, size=2)
    cx = (cx0 + ax * np.sin(2 * np.pi * fx * t + px)) * S + gen.normal(0.0, 0.35, size=T)
    cy = (cy0 + ay * np.sin(2 * np.pi * fy * t + py)) * S + gen.normal(0.0, 0.35, size=T)
    left = np.clip(np.round(cx - w / 2), 0, S - w).astype(np.int64)
    top = np.clip(np.round(cy - h / 2), 0, S - h).astype(np.int64)
    return left, top


def render_frames(cfg: SynthConfig, plan: ClipPlan, layouts: list[Layout]) -> np.ndarray:
    """All frames of the clip, ``(n_frames, S, S, 3)`` uint8."""
    S = cfg.frame_size
    bg = make_background(S, rng(plan.seed, "background"))
    frames = np.empty((cfg.n_frames, S, S, 3), dtype=np.uint8)
    for f in range(cfg.n_frames):
        img = bg.copy()
        for lay in layouts:
            w, h = lay.sprite.size
            x, y = int(lay.left[f]), int(lay.top[f])
            region = img[y : y + h, x : x + w]
            region *= 1.0 - lay.sprite.alpha
            region += lay.sprite.rgb
        frames[f] = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return frames


def layout_boxes(cfg: SynthConfig, plan: ClipPlan, layouts: list[Layout]) -> pd.DataFrame:
    """Ground-truth boxes (normalised) of every instance in every frame."""
    S, T = cfg.frame_size, cfg.n_frames
    parts = []
    for k, lay in enumerate(layouts):
        bx0, by0, bx1, by1 = lay.sprite.box
        x1 = (lay.left + bx0) / S
        y1 = (lay.top + by0) / S
        x2 = (lay.left + bx1) / S
        y2 = (lay.top + by1) / S
        parts.append(pd.DataFrame({
            "id": plan.id, "instance": k, "frame": np.arange(T, dtype=np.int64),
            "time": np.arange(T) / cfg.video_fps, "label": plan.label,
            "x1": x1, "y1": y1, "x2": x2, "y2": y2, "cx": (x1 + x2) / 2, "cy": (y1 + y2) / 2,
        }))
    return pd.concat(parts, ignore_index=True)


# ---------------------------------------------------------------------------------------------------
# encoding
# ---------------------------------------------------------------------------------------------------

#: Flags that make ffmpeg's output byte-stable (no version strings, single-threaded x264).
BITEXACT = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1"]


def encode_clip(frames: np.ndarray, audio: np.ndarray, sample_rate: int, fps: int, out_path: Path) -> None:
    """Mux ``frames`` (T, H, W, 3 uint8) and ``audio`` ((channels, n) float) into an H.264/AAC mp4.

    Frames are piped to ffmpeg as raw RGB; the audio goes through a temporary float wav. The file is
    written atomically. Raises :class:`avsep.media.MediaError` if ffmpeg fails.
    """
    T, H, W, _ = frames.shape
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
            proc = subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), capture_output=True)
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


def generate_dataset(cfg: SynthConfig, out_dir: Path, progress: bool = True) -> pd.DataFrame:
    """Render every clip of ``cfg`` under ``out_dir``; write and return the manifest.

    Writes ``videos/{id}.mp4``, ``boxes.parquet`` and (last, so its presence means the set is complete)
    ``manifest.parquet``. Every file is written atomically.
    """
    from ..progress import progress as tqdm

    out_dir = Path(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    plans = plan_clips(cfg)
    rows, boxes = [], []
    for plan in tqdm(plans, desc=f"synth {cfg.name}", unit="clip", disable=not progress):
        row, bx = render_clip(cfg, plan, out_dir)
        rows.append(row)
        boxes.append(bx)
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    box_df = pd.concat(boxes, ignore_index=True) if boxes else pd.DataFrame(columns=list(BOX_COLUMNS))
    write_parquet(box_df[list(BOX_COLUMNS)], out_dir / "boxes.parquet")
    write_parquet(manifest, out_dir / "manifest.parquet")
    return manifest
