"""``avsep separate VIDEO``: the whole command (the CLI in :mod:`avsep.cli` only parses and calls it).

1. the checkpoint (:func:`avsep.separate.model.load_model`) says the rate, the window, the channels and the frame
   rate; the output directory must be new or empty (or ``force``);
2. the video is extracted as the extract stage does (:func:`avsep.data.prepare.decode.extract_clip`: one ffmpeg
   call, the audio resampled to the checkpoint's rate, mono or 2 channels, frames at its frame rate) into a
   temporary directory; a stereo file under a mono model is downmixed, and said so;
3. the objects (:mod:`avsep.separate.objects`) and their visual queries;
4. window by window (:mod:`avsep.separate.windows`): read, separate, overlap-add, write
   (:class:`avsep.separate.output.Outputs`), with a progress bar;
5. ``summary.png``.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import soundfile as sf
from PIL import Image

from avsep.core.progress import progress
from avsep.separate import SeparateError
from avsep.separate.model import HFRA, LoadedModel, load_model
from avsep.separate.objects import SoundingObject, boxed_objects, crop, detected_objects, image_objects, query_frames
from avsep.separate.output import Outputs, write_summary
from avsep.separate.windows import OverlapAdd, WindowPlan, read_windows


@dataclass
class SeparationResult:
    out_dir: Path
    objects: list[SoundingObject]
    stems: list[Path]
    residual: Path
    summary: Path
    sample_rate: int
    channels: int
    n_samples: int
    notes: list[str] = field(default_factory=list)


def default_detector(ckpt: Path, meta: dict[str, Any]) -> Path | None:
    """The detector the DAG trained for the checkpoint's dataset: ``models/<dataset>/detector/weights.pt`` in the
    ``models/`` folder the checkpoint lies in (None when there is none)."""
    parts = ckpt.resolve().parts
    if "models" not in parts or not meta.get("dataset"):
        return None
    root = Path(*parts[: len(parts) - 1 - parts[::-1].index("models")])
    cand = root / str(meta["dataset"]) / "detector" / "weights.pt"
    return cand if cand.is_file() else None


def check_out_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SeparateError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SeparateError(f"{out}: output directory exists and is not empty (use --force to write into it)")


def _extract(video: Path, model: LoadedModel, work: Path, log: TextIO) -> tuple[Path, list[Path], list[str]]:
    from avsep.data.prepare.decode import ExtractConfig, ExtractError, extract_clip
    from avsep.data.prepare.media import MediaError, probe
    from avsep.data.prepare.readers import list_frames

    if not video.is_file():
        raise SeparateError(f"{video}: no such file")
    notes = []
    try:
        info = probe(video)
    except MediaError as e:
        raise SeparateError(str(e)) from None
    if model.channels == 1 and (info.channels or 1) > 1:
        notes.append(f"{video.name}: {info.channels}-channel audio separated as its mono downmix "
                     f"(the {model.meta.get('model', '')} model is monaural)")
    cfg = ExtractConfig(sample_rate=model.frontend.sample_rate, channels=model.channels, fps=model.fps, min_samples=1)
    wav, frames_dir = work / "audio.wav", work / "frames"
    try:
        extract_clip(video, wav, frames_dir, cfg)
    except ExtractError as e:
        reason = e.reason
        if model.channels == 2 and "mono audio" in reason:
            reason += f" by the binaural model {model.meta.get('model', '')}"
        raise SeparateError(f"{video}: {reason}") from None
    for n in notes:
        print(n, file=log, flush=True)
    return wav, list_frames(frames_dir), notes


def _queries(model: LoadedModel, objects: Sequence[SoundingObject], frames: Sequence[Path]) -> Any:
    out = []
    for o in objects:
        if model.family == HFRA:
            if o.image is not None:
                with Image.open(o.image) as im:
                    crops = [im.convert("RGB")]
            else:
                k = int(model.config["visual"].get("n_frames", 1))
                crops = []
                for i in query_frames(len(frames), o.frame, k):
                    with Image.open(frames[i]) as im:
                        crops.append(crop(im.convert("RGB"), o.box))
            out.append(model.hfra_query(crops))
        else:
            if o.box is None:
                raise SeparateError(f"{o.image}: a LAVSS model is guided by the object's position in the frame; "
                                    "give it with --box x1,y1,x2,y2, not --query-image")
            with Image.open(frames[o.frame]) as im:
                out.append(model.lavss_query(im.convert("RGB"), o.box))
    return model.visual_batch(out)


def separate_video(
    video: str | Path, ckpt: str | Path, out_dir: str | Path, device: str = "cpu", boxes: Sequence[str] = (),
    query_images: Sequence[str | Path] = (), detector: str | Path | None = None, force: bool = False,
    max_objects: int = 2, threshold: float | None = 0.5, log: TextIO | None = None,
) -> SeparationResult:
    """Separate ``video`` with the checkpoint ``ckpt`` into ``out_dir`` (see the module docstring); raises
    :class:`SeparateError` for bad input."""
    log = log or sys.stderr
    video, ckpt, out = Path(video), Path(ckpt), Path(out_dir)
    check_out_dir(out, force)
    model = load_model(ckpt, device, threshold)
    fe = model.frontend
    with tempfile.TemporaryDirectory(prefix="avsep-separate-") as td:
        wav, frames, notes = _extract(video, model, Path(td), log)
        with sf.SoundFile(wav) as f:
            n_samples, channels = int(f.frames), int(f.channels)
        with Image.open(frames[len(frames) // 2]) as im:
            width, height = im.size
        objects = boxed_objects(boxes, width, height, len(frames))
        objects += image_objects(query_images, len(objects) + 1)
        if not objects:
            det = detector or default_detector(ckpt, model.meta)
            if det is None:
                raise SeparateError(f"{ckpt}: no detector for its dataset {model.meta.get('dataset')!r} beside it "
                                    "(models/<dataset>/detector/weights.pt): pass --detector WEIGHTS, or the objects "
                                    "with --box x1,y1,x2,y2")
            objects = detected_objects(frames, det, model.labels, max_objects, device, video)
        if not objects:
            raise SeparateError(f"{video}: no sounding object found; give the objects with --box x1,y1,x2,y2")
        ref = objects[0].frame if objects[0].box is not None else len(frames) // 2
        with Image.open(frames[ref]) as im:
            summary_frame = im.convert("RGB")
        visual = _queries(model, objects, frames)
        print(f"separate {video.name}: {len(objects)} object(s) "
              + ", ".join(f"{o.index} {o.label} ({o.source})" for o in objects)
              + f" with {model.description}, {n_samples / fe.sample_rate:.1f} s at {fe.sample_rate} Hz", file=log,
              flush=True)
        plan = WindowPlan(n_samples, fe.clip_samples)
        ola = OverlapAdd(plan)
        out.mkdir(parents=True, exist_ok=True)
        with sf.SoundFile(wav) as f, Outputs(out, objects, fe.sample_rate, channels, n_samples, fe.n_fft) as outputs:
            def read(start: int, n: int) -> np.ndarray:
                f.seek(start)
                return f.read(n, dtype="float32", always_2d=True).T

            bar = progress(total=plan.n_windows, desc=f"separate {video.name}", unit="window")
            pos = 0
            for k, window in read_windows(plan, read):
                stems = ola.add(k, model.separate_window(window, visual))
                n = stems.shape[-1]
                if n:
                    outputs.write(read(pos, n), stems)
                    pos += n
                bar.update(1)
            bar.close()
            if pos != n_samples:
                raise RuntimeError(f"overlap-add wrote {pos} of {n_samples} samples")
            write_summary(out / "summary.png", summary_frame, objects, outputs,
                          f"{video.name}: {model.description}")
    result = SeparationResult(out, list(objects), outputs.paths[:-1], outputs.paths[-1], out / "summary.png",
                              fe.sample_rate, channels, n_samples, notes)
    return result
