"""The data stages (rules/data.smk): render synthetic clips, fetch metadata, clip tables, download, extract."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from avsep.config.params import Params
from avsep.core.io import status_counts


def synth(p: Params, dataset: str, out_manifest: str | Path, workers: int = 1) -> pd.DataFrame:
    """Render an embedded synthetic dataset as real mp4 files (where downloads would land), in ``workers``
    processes (the rule's threads: the files do not depend on it)."""
    from avsep.data.prepare.instruments import DATASET_CLASSES
    from avsep.data.prepare.synth import SynthConfig, generate_dataset

    d = p.dataset(dataset)
    s = p.synth
    cfg = SynthConfig(
        name=dataset,
        classes=tuple(DATASET_CLASSES[d.classes]),
        clips_per_class=dict(d.clips_per_class),
        clip_seconds=float(s["clip_seconds"]),
        sample_rate=int(s["render_rate"]),
        video_fps=int(s["video_fps"]),
        frame_size=int(s["frame_size"]),
        binaural=d.binaural,
        seed=p.seed,
        soundfont=str(s["soundfont"]),
    )
    out_dir = Path(out_manifest).parent
    df = generate_dataset(cfg, out_dir, progress=True, workers=workers)
    print(f"synth {dataset}: {status_counts(df)}", flush=True)
    return df


def extract(p: Params, dataset: str, raw_manifest: str | Path, out_manifest: str | Path) -> pd.DataFrame:
    """Audio at the dataset's extract rate (default: the front-end's) and frames at ``audio.fps`` for every clip that
    arrived; clips shorter than the front-end's clip length (at that rate) fail."""
    from avsep.data.prepare.decode import ExtractConfig
    from avsep.data.prepare.extract import extract_dataset

    d = p.dataset(dataset)
    rate = p.extract_rate(dataset)
    cfg = ExtractConfig(
        sample_rate=rate, channels=d.channels, fps=p.fps,
        min_samples=-(-p.frontend.clip_samples * rate // p.frontend.sample_rate),
    )
    df = extract_dataset(Path(raw_manifest), Path(out_manifest).parent, cfg, progress=True)
    print(f"extract {dataset}: {status_counts(df)}", flush=True)
    return df


def metadata(p: Params, dataset: str, out_record: str | Path) -> dict:
    """Fetch a real dataset's metadata files (``datasets.<name>.metadata``) into ``data/<name>/meta/``."""
    from avsep.data.prepare.sources import fetch_metadata

    return fetch_metadata(p.dataset(dataset), out_record)


def clips(p: Params, dataset: str, record: str | Path, out: str | Path) -> pd.DataFrame:
    """Parse the fetched metadata into the clip table (validated ids and labels, splits)."""
    from avsep.data.prepare.sources import write_clip_table

    return write_clip_table(p.dataset(dataset), record, out, seed=p.seed)


def download(p: Params, dataset: str, clip_table: str | Path, out_manifest: str | Path) -> pd.DataFrame:
    """Fetch (YouTube) or import (FAIR-Play, local files) the clips into ``data/<name>/raw/``."""
    from avsep.data.prepare.sources import raw_clips

    return raw_clips(p.dataset(dataset), clip_table, out_manifest, front_end_rate=p.extract_rate(dataset))
