"""A synthetic video of two sounding objects with known sources, to try ``avsep separate`` on (tests, README).

The embedded renderer (:mod:`avsep.data.prepare.synth`) draws one class per clip. :func:`render_duet` renders two
clips with its own functions (the same phrases, sprites and binaural model as the datasets), one object on the
left and one on the right, and muxes them into one mp4: mono clips side by side (a frame twice as wide),
binaural clips as the left half of the first clip's frame beside the right half of the second's, so each object's
position still matches the azimuth it is heard from. The sources are returned as rendered (before AAC).

``python -m avsep.separate.demo OUT.mp4 [--classes tuba xylophone] [--binaural] [--seconds 8]``
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avsep.core.seeding import derive_seed


@dataclass
class Duet:
    video: Path
    sources: np.ndarray  # (2, C, n) float32 at sample_rate, as mixed into the video (equal RMS)
    sample_rate: int
    labels: tuple[str, str]
    boxes: list[tuple[float, float, float, float]]  # normalised box of each object over the whole clip
    size: tuple[int, int]  # frame width, height in pixels


def render_duet(out: str | Path, classes: Sequence[str] = ("tuba", "xylophone"), binaural: bool = False,
                seconds: float = 8.0, seed: int = 0, frame_size: int = 64, sample_rate: int = 22050,
                fps: int = 8) -> Duet:
    """Render ``classes[0]`` on the left and ``classes[1]`` on the right into the mp4 ``out`` (see the module
    docstring); the two may be the same class (two instances, different phrases)."""
    from avsep.data.prepare import spatial
    from avsep.data.prepare.synth import ClipPlan, SynthConfig, encode_clip
    from avsep.data.prepare.synth_audio import render_clip_audio
    from avsep.data.prepare.synth_frames import layout_boxes, plan_layout, render_frames

    if len(classes) != 2:
        raise ValueError(f"a duet has two classes, got {list(classes)}")
    cfg = SynthConfig(name="duet", classes=tuple(dict.fromkeys(classes)), clips_per_class={"test": 3},
                      clip_seconds=seconds, sample_rate=sample_rate, video_fps=fps, frame_size=frame_size,
                      binaural=binaural, seed=seed)
    frames, audio, boxes = [], [], []
    for side, label in enumerate(classes):
        zone = derive_seed(cfg.seed, label, "test") % 3  # the renderer's zone offset (synth_frames.plan_layout)
        index = (2 * side - zone) % 3  # zone 0 is the left one, zone 2 the right one
        plan = ClipPlan(f"duet-{label}-{side}", label, "test", index, derive_seed(cfg.seed, cfg.name, label, "test", index, side))
        layouts = plan_layout(cfg, plan)
        b = layout_boxes(cfg, plan, layouts)
        az = [spatial.position_to_azimuth(x) for x in b.groupby("instance")["cx"].mean().to_numpy()]
        a, _ = render_clip_audio(cfg, plan, az)
        frames.append(render_frames(cfg, plan, layouts))
        audio.append(a)
        boxes.append((float(b["x1"].min()), float(b["y1"].min()), float(b["x2"].max()), float(b["y2"].max())))
    s = frame_size
    if binaural:
        video = np.concatenate([frames[0][:, :, : s // 2], frames[1][:, :, s // 2:]], axis=2)
    else:
        video = np.concatenate(frames, axis=2)
        boxes = [(x1 / 2 + side / 2, y1, x2 / 2 + side / 2, y2) for side, (x1, y1, x2, y2) in enumerate(boxes)]
    sources = np.stack(audio)
    sources /= np.sqrt((sources ** 2).mean(axis=(1, 2), keepdims=True))  # the two at the same loudness
    mix = sources.sum(axis=0)
    scale = min(1.0, 0.9 / float(np.abs(mix).max()))
    sources = (sources * scale).astype(np.float32)
    out = Path(out)
    encode_clip(video, sources.sum(axis=0), sample_rate, fps, out)
    return Duet(out, sources, sample_rate, (classes[0], classes[1]), boxes, (video.shape[2], video.shape[1]))


def box_args(duet: Duet) -> list[str]:
    """``--box`` values (pixels) of the duet's two objects, labelled."""
    w, h = duet.size
    return [f"{x1 * w:.0f},{y1 * h:.0f},{x2 * w:.0f},{y2 * h:.0f}:{lab}"
            for (x1, y1, x2, y2), lab in zip(duet.boxes, duet.labels)]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m avsep.separate.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="the mp4 to write")
    ap.add_argument("--classes", nargs=2, default=["tuba", "xylophone"])
    ap.add_argument("--binaural", action="store_true")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    d = render_duet(args.out, args.classes, args.binaural, args.seconds, args.seed)
    print(f"wrote {d.video}: {d.labels[0]} left, {d.labels[1]} right; boxes: {' '.join('--box ' + b for b in box_args(d))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
