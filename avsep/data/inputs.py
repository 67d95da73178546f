"""Per-source model inputs of a list of mixtures: frames, cached CLIP embeddings, cached CLAP targets.

Training and evaluation build the visual input of a batch of :class:`MixSpec` through one callable
(:class:`FrameInputs` for the Sound-of-Pixels ResNet-18, :class:`EmbeddingInputs` for cached CLIP image
embeddings), so the two model families share one code path. :class:`ClapTargets` looks up the cached CLAP
embedding of each training mixture for HFRA's alignment loss.

Embedding caches are an ``(N, D)`` float32 ``.npy`` array with an index parquet naming, per row, the clip
(``clip``) and the 0-based frame (``frame``) it embeds (CLIP), or the mixture key (``key``) (CLAP). A cache
may sample frames sparsely (e.g. 1 fps of 8): a frame is served by the nearest cached frame of its clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd
import torch

from avsep.core.weights import weights_label
from avsep.data.mixtures import MixSpec
from avsep.data.store import ClipStore, load_frames
from avsep.encoders.cache import cache_weights_label

if TYPE_CHECKING:
    from avsep.config.params import ModelVariant


class VisualInputs(Protocol):
    def __call__(self, specs: Sequence[MixSpec]) -> torch.Tensor: ...


class FrameInputs:
    """Frames (B, N, K, 3, S, S) of each source (the Sound-of-Pixels visual input)."""

    def __init__(self, store: ClipStore, frame_size: int) -> None:
        self.store = store
        self.frame_size = frame_size

    def __call__(self, specs: Sequence[MixSpec]) -> torch.Tensor:
        return load_frames(self.store, list(specs), self.frame_size)


def _load_array(npy: Path, index: Path, key_cols: tuple[str, ...]) -> tuple[np.ndarray, pd.DataFrame]:
    arr = np.load(npy, allow_pickle=False)
    idx = pd.read_parquet(index)
    missing = [c for c in (*key_cols, "row") if c not in idx.columns]
    if missing:
        raise ValueError(f"{index}: index lacks column(s) {missing}")
    if arr.ndim != 2 or len(idx) == 0 or int(idx["row"].max()) >= arr.shape[0]:
        raise ValueError(f"{npy}: array of shape {arr.shape} does not match its index {index} ({len(idx)} rows)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{npy}: contains NaN or inf")
    return arr.astype(np.float32, copy=False), idx


class EmbeddingInputs:
    """One cached embedding (B, N, D) per source: the frame at the centre of the source's frame list.

    HFRA encodes a single frame per clip; the test mixtures and training mixtures list ``n_frames`` frame
    indices evenly inside each crop, whose middle one is the crop centre.
    """

    def __init__(self, caches: Sequence[tuple[str | Path, str | Path]]) -> None:
        arrays, frames = [], {}
        offset = 0
        for npy, index in caches:
            arr, idx = _load_array(Path(npy), Path(index), ("clip", "frame"))
            for clip, g in idx.groupby("clip", sort=False):
                order = np.argsort(g["frame"].to_numpy())
                frames[str(clip)] = (g["frame"].to_numpy()[order], g["row"].to_numpy()[order] + offset)
            arrays.append(arr)
            offset += arr.shape[0]
        self.array = np.concatenate(arrays)
        self.frames = frames
        self.dim = int(self.array.shape[1])

    def row(self, clip: str, frame: int) -> int:
        try:
            fr, rows = self.frames[clip]
        except KeyError:
            raise KeyError(f"clip {clip!r} has no cached embedding") from None
        return int(rows[int(np.argmin(np.abs(fr - frame)))])  # nearest cached frame; ties -> earlier

    def __call__(self, specs: Sequence[MixSpec]) -> torch.Tensor:
        rows = [[self.row(c, fr[len(fr) // 2]) for c, fr in zip(sp.clips, sp.frames)] for sp in specs]
        return torch.from_numpy(self.array[np.asarray(rows)])


class ClapTargets:
    """Cached CLAP embeddings of training mixtures, looked up by mixture key."""

    def __init__(self, npy: str | Path, index: str | Path) -> None:
        self.array, idx = _load_array(Path(npy), Path(index), ("key",))
        self.rows = dict(zip(idx["key"].astype(str), idx["row"].astype(int)))
        self.dim = int(self.array.shape[1])

    def __call__(self, keys: Sequence[str]) -> torch.Tensor:
        try:
            rows = [self.rows[k] for k in keys]
        except KeyError as e:
            raise KeyError(f"training mixture {e.args[0]!r} has no cached CLAP embedding") from None
        return torch.from_numpy(self.array[np.asarray(rows)])


class TableSampler:
    """Training mixtures read from the seeded training-mixture manifest (one row per step and index).

    The manifest (``make_train_mixtures``) fixes every training mixture in advance, so the CLAP
    embedding of each mixture can be cached before training; ``keys`` names those cache entries.
    """

    def __init__(self, table: pd.DataFrame, num_sources: int, where: str = "training mixtures") -> None:
        need = ["step", "index", "mixture_id"] + [f"{c}_{j}" for j in range(num_sources) for c in ("clip", "label", "start", "frames", "gain")]
        missing = [c for c in need if c not in table.columns]
        if missing:
            raise ValueError(f"{where}: missing column(s) {missing}")
        t = table.sort_values(["step", "index"]).reset_index(drop=True)
        self.batch_size = int(t["index"].max()) + 1
        self.steps = int(t["step"].max()) + 1
        if len(t) != self.steps * self.batch_size:
            raise ValueError(f"{where}: {len(t)} rows, expected steps x batch = {self.steps} x {self.batch_size}")
        self.specs = [
            MixSpec(
                clips=tuple(str(r[f"clip_{j}"]) for j in range(num_sources)),
                labels=tuple(str(r[f"label_{j}"]) for j in range(num_sources)),
                starts=tuple(int(r[f"start_{j}"]) for j in range(num_sources)),
                frames=tuple(tuple(int(x) for x in str(r[f"frames_{j}"]).split(",")) for j in range(num_sources)),
                gains=tuple(float(r[f"gain_{j}"]) for j in range(num_sources)),
            )
            for r in t.to_dict("records")
        ]
        key_col = "clap_key" if "clap_key" in t.columns else "mixture_id"
        self._keys = [str(k) for k in t[key_col]]
        self.content = [str(k) for k in t["mixture_id"]]  # every draw's content key, in (step, index) order
        self.where = where

    def _rows(self, step: int, batch_size: int, rank_offset: int) -> range:
        if step >= self.steps or rank_offset + batch_size > self.batch_size:
            raise IndexError(
                f"{self.where}: step {step}, items [{rank_offset}, {rank_offset + batch_size}) outside the "
                f"manifest ({self.steps} steps x {self.batch_size}); regenerate it for these train params"
            )
        base = step * self.batch_size + rank_offset
        return range(base, base + batch_size)

    def batch(self, step: int, batch_size: int, rank_offset: int = 0) -> list[MixSpec]:
        return [self.specs[i] for i in self._rows(step, batch_size, rank_offset)]

    def keys(self, step: int, batch_size: int, rank_offset: int = 0) -> list[str]:
        return [self._keys[i] for i in self._rows(step, batch_size, rank_offset)]

    def content_keys(self, step: int, batch_size: int, rank_offset: int = 0) -> list[str]:
        """The mixtures' content keys (``mixture_id``: equal keys, identical mixtures)."""
        return [self.content[i] for i in self._rows(step, batch_size, rank_offset)]


def visual_weights_label(spec: str) -> str:
    """The label of a visual net's weights (``model_defaults.visual_weights``): ``random-init``, a file's, or
    a torchvision enum name as given."""
    if spec != "random" and not spec.startswith("ResNet18_Weights.") and not Path(spec).exists():
        raise FileNotFoundError(f"visual weights file {spec} (model_defaults.visual_weights) does not exist")
    return weights_label(spec)


def visual_inputs(
    v: ModelVariant, store: ClipStore, clip_caches: list[tuple[str, str]] | None
) -> tuple[VisualInputs, str]:
    """The visual input of a variant and the label of the weights it comes from."""
    if v.uses_embeddings:
        if not clip_caches:
            raise ValueError(f"model {v.name} uses CLIP embeddings but no CLIP cache was given")
        return EmbeddingInputs(clip_caches), cache_weights_label(clip_caches[0][0])
    return FrameInputs(store, v.separator.visual.frame_size), visual_weights_label(v.separator.visual.weights)
