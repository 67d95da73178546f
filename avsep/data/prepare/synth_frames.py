"""Pictures of the synthetic clips: each object drawn as a sprite drifting over a textured background.

A class's :class:`avsep.data.prepare.instruments.Appearance` (shape, pattern, colours) becomes an
anti-aliased :class:`Sprite`; :func:`plan_layout` gives every object instance of a clip its size and
seeded per-frame motion; :func:`render_frames` composites the frames and :func:`layout_boxes` gives the
ground-truth boxes. The sound is made by :mod:`avsep.data.prepare.synth_audio`;
:mod:`avsep.data.prepare.synth` writes the clips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from avsep.core.seeding import derive_seed, rng
from avsep.data.prepare.instruments import Appearance, get_instrument

if TYPE_CHECKING:
    from avsep.data.prepare.synth import ClipPlan, SynthConfig

_ASPECT = {"tall_rect": (0.55, 1.0), "wide_rect": (1.0, 0.55), "tall_ellipse": (0.6, 1.0), "wide_ellipse": (1.0, 0.6)}
_SUPERSAMPLE = 4
#: Background styles (:attr:`avsep.data.prepare.synth.SynthConfig.background`).
BACKGROUNDS = ("muted", "varied")


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


def make_background(size: int, gen: np.random.Generator, style: str = "muted") -> np.ndarray:
    """A muted, low-saturation background: gradient, soft blobs and fine grain; (size, size, 3) float32.

    ``style="varied"`` draws from wider ranges (brightness 70-190, colour cast +-35, gradient +-60, blobs
    +-20) that contain the muted ones.
    """
    varied = style == "varied"
    if varied:
        base = gen.uniform(70.0, 190.0) + gen.uniform(-35.0, 35.0, size=3)
    else:
        base = gen.uniform(100.0, 150.0) + gen.uniform(-10.0, 10.0, size=3)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    ang = gen.uniform(0, 2 * np.pi)
    amp = 60.0 if varied else 30.0
    grad = (np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5)) * gen.uniform(-amp, amp)
    blob = 20.0 if varied else 10.0
    coarse = gen.uniform(-blob, blob, size=(5, 5))
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
            if cfg.free_position:
                cx0 = gen.uniform(0.2, 0.8)
            else:
                cx0 = centres[(plan.index + zone_offset) % 3] + gen.uniform(-0.04, 0.04)
        else:
            lo, hi = 0.6 / n_inst, 0.8 / n_inst
            cx0 = (k + 0.5) / n_inst + gen.uniform(-0.03, 0.03)
        if cfg.size_range is not None:
            lo, hi = cfg.size_range
        sprite = make_sprite(spec.appearance, int(round(gen.uniform(lo, hi) * S)), jitter_rgb)
        left, top = _track(cfg, sprite, cx0, gen, y_spread=0.2 if cfg.free_position and n_inst == 1 else 0.12)
        layouts.append(Layout(sprite, left, top))
    return layouts


def _track(cfg: SynthConfig, sprite: Sprite, cx0: float, gen: np.random.Generator,
           y_spread: float = 0.12) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame integer top-left of the sprite: slow sinusoidal drift plus a pixel of jitter, kept inside.

    The centre starts ``y_spread`` (fraction of the frame) at most above or below the middle."""
    S, T = cfg.frame_size, cfg.n_frames
    w, h = sprite.size
    t = np.arange(T) / cfg.video_fps
    cy0 = 0.5 + gen.uniform(-y_spread, y_spread)
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
    bg = make_background(S, rng(plan.seed, "background"), cfg.background)
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
