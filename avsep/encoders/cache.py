"""Embedding caches: CLIP image embeddings of frames and CLAP audio embeddings of training mixtures.

Training never runs CLIP or CLAP: these stages embed once and write, per cache, an ``(N, 512)`` float32
``.npy`` array, an index parquet (one row per array row, column ``row``) and a JSON beside the array
(same stem) recording the encoder, the weights label, the rates and the row count. Index tables carry the
weights label in a ``weights`` column as well.

- ``data/{dataset}/embed/clip_{split}.*``: every ok clip of the split, frames sampled at ``clip.fps``
  from the extracted ``audio.fps`` frames; index columns ``clip, label, split, frame`` (0-based index of
  the extracted frame, file ``frames/{clip}/{frame+1:06d}.jpg``), ``time`` (seconds), ``row``.
- ``data/{dataset}/train_mixtures.parquet``: the seeded training-mixture manifest
  (:func:`avsep.data.mixtures.make_train_mixtures`).
- ``data/{dataset}/embed/clap_mixtures.*``: one row per distinct training mixture (``key`` =
  ``mixture_id``, the content key); the waveform embedded is exactly the mixture training builds
  (:func:`mixture_waves`: ``load_audio`` + ``mix_sources`` on the first channel).
- ``data/{dataset}/embed/clap_clips.*``: every ok clip long enough to crop, each embedded on its centre
  crop of ``audio.clip_samples`` samples (the crop the test mixtures use), so a clip embedding and a
  mixture embedding see the same duration.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from avsep.audio.mixing import mix_sources
from avsep.core.io import atomic_path, read_manifest, write_json, write_parquet
from avsep.core.progress import progress
from avsep.data.mixtures import MixSpec, specs_from_train_table, usable_clips
from avsep.data.store import ClipStore, load_audio, read_clips

CLIP_COLUMNS = ("clip", "label", "split", "frame", "time", "row")


# --------------------------------------------------------------------------------------------------
# Writing a cache
# --------------------------------------------------------------------------------------------------


def write_cache(array: np.ndarray, index: pd.DataFrame, meta: dict[str, Any], npy: str | Path, parquet: str | Path) -> None:
    """Write array, index and ``<npy stem>.json`` atomically; the index gets ``row`` and ``weights``."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != len(index):
        raise ValueError(f"{npy}: array of shape {array.shape} does not match its index ({len(index)} rows)")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{npy}: embeddings contain NaN or inf")
    index = index.reset_index(drop=True).copy()
    index["row"] = np.arange(len(index), dtype=np.int64)
    index["weights"] = meta["weights"]
    write_parquet(index, parquet)
    with atomic_path(npy) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
    write_json({**meta, "rows": int(array.shape[0]), "dim": int(array.shape[1])}, Path(npy).with_suffix(".json"))


# --------------------------------------------------------------------------------------------------
# CLIP
# --------------------------------------------------------------------------------------------------


def clip_frame_table(manifest: pd.DataFrame, split: str, extract_fps: float, clip_fps: float) -> pd.DataFrame:
    """The frames to embed: per ok clip of ``split`` (sorted by id), times 0, 1/clip_fps, 2/clip_fps, ...

    Each time maps to the nearest extracted frame (``round(t * extract_fps)``, within the clip's frames);
    ``time`` is that frame's time. ``clip_fps`` must not exceed ``extract_fps``.
    """
    if not 0 < clip_fps <= extract_fps:
        raise ValueError(f"clip.fps={clip_fps} must be in (0, audio.fps={extract_fps}] (frames are extracted at audio.fps)")
    m = manifest[(manifest["status"] == "ok") & (manifest["split"] == split)].sort_values("id")
    rows = []
    for r in m.to_dict("records"):
        n = int(r["n_frames"])
        duration = n / extract_fps
        frames: list[int] = []
        i = 0
        while i / clip_fps < duration:
            f = min(round(i / clip_fps * extract_fps), n - 1)
            if not frames or f != frames[-1]:
                frames.append(f)
            i += 1
        for f in frames:
            rows.append({"clip": str(r["id"]), "label": str(r["label"]), "split": split, "frame": f, "time": f / extract_fps})
    return pd.DataFrame(rows, columns=list(CLIP_COLUMNS[:-1]))


def build_clip_cache(
    manifest_path: str | Path,
    split: str,
    encoder: Any,
    extract_fps: float,
    clip_fps: float,
    batch_size: int,
    npy: str | Path,
    parquet: str | Path,
    meta: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Embed the frames of :func:`clip_frame_table` with a :class:`~avsep.encoders.clip.ClipEncoder`."""
    manifest_path = Path(manifest_path)
    m = read_manifest(manifest_path)
    table = clip_frame_table(m, split, extract_fps, clip_fps)
    if table.empty:
        raise ValueError(f"{manifest_path}: no ok clip in split {split!r} to embed")
    folders = dict(zip(m["id"].astype(str), m["frames"].astype(str)))
    root = manifest_path.parent
    out = []
    bar = progress(total=len(table), desc=f"clip {split}", unit="frame")
    for i in range(0, len(table), batch_size):
        images = []
        for r in table.iloc[i : i + batch_size].to_dict("records"):
            path = root / folders[r["clip"]] / f"{r['frame'] + 1:06d}.jpg"
            try:
                with Image.open(path) as im:
                    images.append(im.convert("RGB"))
            except OSError as e:
                raise OSError(f"{path}: cannot read frame {r['frame']} of clip {r['clip']}: {e}") from e
        out.append(encoder.embed_images(images, batch_size=batch_size))
        bar.update(len(images))
    bar.close()
    info = {
        "encoder": encoder.encoder,
        "weights": encoder.weights,
        "normalized": True,
        "split": split,
        "frame_rate": float(clip_fps),
        "extract_fps": float(extract_fps),
        "preprocess": {k: list(v) if isinstance(v, tuple) else v for k, v in encoder.preprocess_cfg.items()},
        "clips": int(table["clip"].nunique()),
        **(meta or {}),
    }
    write_cache(np.concatenate(out), table, info, npy, parquet)
    return table


# --------------------------------------------------------------------------------------------------
# Training mixtures and CLAP
# --------------------------------------------------------------------------------------------------


def mixture_waves(store: ClipStore, specs: Sequence[MixSpec], clip_samples: int) -> np.ndarray:
    """(B, L) float32 mixtures exactly as training builds them: ``load_audio`` then ``mix_sources``.

    Training mixes the first channel (mono datasets have one), so this does too.
    """
    audio, gains = load_audio(store, list(specs), clip_samples)
    _, mixture = mix_sources(audio[:, :, 0], gains)
    return mixture.numpy()


def distinct_mixtures(table: pd.DataFrame, num_sources: int) -> tuple[list[str], list[MixSpec]]:
    """One (key, spec) per distinct ``mixture_id`` of a training-mixture table, in first-use order.

    Raises if two rows share a key but differ in content (the manifest is corrupt or hand-edited).
    """
    specs = specs_from_train_table(table, num_sources)
    seen: dict[str, MixSpec] = {}
    for key, spec in zip(table["mixture_id"].astype(str), specs):
        if seen.setdefault(key, spec) != spec:
            raise ValueError(f"training mixtures: rows with mixture_id {key!r} differ in content")
    return list(seen), list(seen.values())


def _clap_meta(encoder: Any, sample_rate: int, clip_samples: int, what: str) -> dict[str, Any]:
    from avsep.encoders.clap import CLAP_RATE

    return {
        "encoder": encoder.encoder,
        "weights": encoder.weights,
        "normalized": True,
        "what": what,
        "sample_rate": int(sample_rate),
        "encoder_sample_rate": CLAP_RATE,
        "clip_samples": int(clip_samples),
        "truncation": encoder.truncation,
        "padding": "repeatpad",
    }


def build_clap_caches(
    manifest_path: str | Path,
    train_mixtures: pd.DataFrame,
    encoder: Any,
    sample_rate: int,
    clip_samples: int,
    channels: int,
    num_sources: int,
    batch_size: int,
    out: dict[str, str | Path],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """CLAP embeddings of every distinct training mixture and of every usable clip's centre crop.

    ``out`` names the paths ``mixtures_npy, mixtures_idx, clips_npy, clips_idx``.
    """
    store = ClipStore(manifest_path, sample_rate, channels)
    keys, specs = distinct_mixtures(train_mixtures, num_sources)
    mix_rows = []
    for key, sp in zip(keys, specs):
        row: dict[str, object] = {"key": key}
        for j in range(num_sources):
            row[f"clip_{j}"], row[f"start_{j}"], row[f"gain_{j}"] = sp.clips[j], sp.starts[j], sp.gains[j]
        mix_rows.append(row)
    m = read_clips(manifest_path, sample_rate)
    clips = pd.concat([usable_clips(m, s, clip_samples) for s in sorted(m["split"].astype(str).unique())])
    clip_table = pd.DataFrame(
        {
            "clip": clips["id"].astype(str).to_numpy(),
            "label": clips["label"].astype(str).to_numpy(),
            "split": clips["split"].astype(str).to_numpy(),
            "start": ((clips["n_samples"].astype(int) - clip_samples) // 2).to_numpy(),
        }
    )
    bar = progress(total=len(specs) + len(clip_table), desc="clap", unit="clip")
    mix_emb = []
    for i in range(0, len(specs), batch_size):
        waves = mixture_waves(store, specs[i : i + batch_size], clip_samples)
        mix_emb.append(encoder.embed(list(waves), sample_rate, batch_size=batch_size))
        bar.update(len(waves))
    clip_emb = []
    for i in range(0, len(clip_table), batch_size):
        part = clip_table.iloc[i : i + batch_size]
        waves = [store.audio(c, int(s), clip_samples)[0] for c, s in zip(part["clip"], part["start"])]
        clip_emb.append(encoder.embed(waves, sample_rate, batch_size=batch_size))
        bar.update(len(waves))
    bar.close()
    mix_idx = pd.DataFrame(mix_rows)
    write_cache(np.concatenate(mix_emb), mix_idx, _clap_meta(encoder, sample_rate, clip_samples, "training mixtures"),
                out["mixtures_npy"], out["mixtures_idx"])
    write_cache(np.concatenate(clip_emb), clip_table, _clap_meta(encoder, sample_rate, clip_samples, "clip centre crops"),
                out["clips_npy"], out["clips_idx"])
    return mix_idx, clip_table


def cache_weights_label(npy: str | Path) -> str:
    """``CLIP <weights>`` from the metadata JSON written beside an embedding cache."""
    meta = cache_meta(npy)
    return f"{meta.get('encoder', 'CLIP')} {meta.get('weights', 'unknown')}"


def cache_meta(npy: str | Path) -> dict:
    path = Path(npy).with_suffix(".json")
    if not path.exists():
        raise FileNotFoundError(f"{path}: metadata of the embedding cache {npy} is missing")
    return json.loads(path.read_text())
