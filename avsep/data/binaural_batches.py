"""LAVSS batches: binaural mixtures with each source's frame, box and crop, and left-right mirroring."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from avsep.audio.frontend import FrontendConfig
from avsep.audio.mixing import mix_sources
from avsep.data.boxes import BoxSource, load_boxes
from avsep.data.mixtures import MixSpec
from avsep.data.store import ClipStore, load_audio

if TYPE_CHECKING:
    from avsep.config.params import Params


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
    pool: pd.DataFrame | None = None  # the LAVSS clip pool (label and split per clip; lavss/clips.parquet) if any

    def batch(self, specs: Sequence[MixSpec]) -> Batch:
        audio, gains = load_audio(self.store, list(specs), self.frontend.clip_samples)  # (B, N, E, L)
        sources, mixture = mix_sources(audio, gains)
        images = np.stack([
            np.stack([self.store.frame(c, fr[len(fr) // 2], self.image_size) for c, fr in zip(sp.clips, sp.frames)])
            for sp in specs
        ])
        return Batch(sources, mixture, torch.from_numpy(images), self.boxes.boxes(specs))


def lavss_data(p: Params, dataset: str, manifest: str | Path, box_files: Sequence[str | Path],
               pool: str | Path | None = None) -> LAVSSData:
    """The clips of ``dataset`` (its extract manifest) with their boxes, at the LAVSS front-end and image size;
    with ``pool`` (``data/<dataset>/lavss/clips.parquet``) the label and split LAVSS gives each clip."""
    lp = p.lavss
    store = ClipStore(manifest, lp.frontend.sample_rate, p.dataset(dataset).channels)
    boxes = load_boxes(lp.boxes, box_files, lp.fps)
    image_size = next(iter(lp.variants.values())).arch.image_size if lp.variants else 224
    return LAVSSData(store, boxes, lp.frontend, image_size, None if pool is None else pd.read_parquet(pool))


def mirror_batch(batch: Batch, flags: torch.Tensor) -> Batch:
    """The batch with the mixtures where ``flags`` is true mirrored left-right (a new Batch; inputs untouched).

    Mirroring swaps the ears of the mixture and of every source, flips each source's frame horizontally and
    maps its box ``(x1, y1, x2, y2)`` to ``(1 - x2, y1, 1 - x1, y2)``: the scene as seen and heard from the
    mirrored side. The binaural renderer is left-right symmetric (:func:`avsep.data.prepare.spatial.spatialize` at
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
