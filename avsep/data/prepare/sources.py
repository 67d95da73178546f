"""The real-data entry of the DAG: metadata -> clip table -> raw clips, for every ``datasets.<name>.source``.

=========== ============================== ================================== ================================
source      metadata (``metadata:``)       clip table (``clips.parquet``)     raw clips (``raw/manifest``)
=========== ============================== ================================== ================================
music,      MUSIC jsons (solo, duet)       :func:`music_clip_table`: seeded   yt-dlp download per id
music21                                    test split of solos, duets train   (:mod:`avsep.data.prepare.download`)
vggsound    ``vggsound.csv``               :func:`vggsound_clip_table`        yt-dlp, 10 s section per clip
fairplay    ``splits.tar.gz``              :func:`fairplay_clip_table`        video + audio tarballs unpacked
                                           (``fold``)                         by file name (:mod:`.fairplay`)
local       a csv ``id,label,split,path``  :func:`local_clip_table`           each file checked where it is
=========== ============================== ================================== ================================

Every stage keeps one row per entry: entries rejected while reading the metadata (invalid id,
malformed entry, invalid label) go through the download stage untouched and end in the raw manifest as
``failed`` with their reason, next to the videos that failed to arrive. Each stage prints
``<stage> <dataset>: ok=N failed=M`` at its end.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from avsep.config.params import DatasetConfig
from avsep.core.io import STATUS_FAILED, STATUS_OK, status_counts, write_json, write_parquet
from avsep.data.prepare.clip_tables import local_clip_table, music_clip_table, vggsound_clip_table
from avsep.data.prepare.download import download_dataset
from avsep.data.prepare.fairplay import ImportConfig, fairplay_clip_table, import_fairplay
from avsep.data.prepare.fetch import fetch, is_url, source_name
from avsep.data.prepare.metadata_checks import MetadataWarning
from avsep.data.prepare.ytdlp import DEFAULT_FORMAT, YOUTUBE_URL, DownloadConfig, DownloadFailed, verify_video

YOUTUBE_SOURCES = ("music", "music21", "vggsound")
REAL_SOURCES = (*YOUTUBE_SOURCES, "fairplay", "local")
#: Defaults of ``datasets.<name>.download``.
DOWNLOAD_DEFAULTS: dict[str, Any] = {
    "retries": 3, "socket_timeout": 30.0, "workers": 1, "rate_limit": None, "sleep_interval": 0.0,
    "format": DEFAULT_FORMAT, "cookiefile": None,
}  # fmt: skip
#: Default ``datasets.<name>.split.test_fraction`` of MUSIC / MUSIC-21.
DEFAULT_TEST_FRACTION = 0.2
META_RECORD = "metadata.json"
ARCHIVES_DIR = "archives"


def _check_real(d: DatasetConfig) -> None:
    if d.source not in REAL_SOURCES:
        raise ValueError(f"datasets.{d.name}: source {d.source!r} has no metadata (real sources: {REAL_SOURCES})")


def download_options(d: DatasetConfig) -> dict[str, Any]:
    return {**DOWNLOAD_DEFAULTS, **d.download}


# --------------------------------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------------------------------


def fetch_metadata(d: DatasetConfig, out_record: str | Path, progress: bool = True) -> dict[str, Any]:
    """Fetch every ``datasets.<name>.metadata`` file into the folder of ``out_record``; write the record.

    The record (``metadata.json``) lists each file's source, name, size and SHA-256, and for local
    sources the folder it came from (relative paths in a ``local`` csv are resolved against it).

    Raises:
        avsep.data.prepare.fetch.FetchError: a file could not be fetched (the message says why and what to do
            without internet).
        ValueError: two metadata entries would be stored under the same file name.
    """
    _check_real(d)
    out_record = Path(out_record)
    names = [source_name(s) for s in d.metadata]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"datasets.{d.name}.metadata: several entries are named {dup}; give them distinct names")
    opts = download_options(d)
    files = []
    for i, (src, name) in enumerate(zip(d.metadata, names, strict=True)):
        got = fetch(
            src, out_record.parent / name, timeout=float(opts["socket_timeout"]), retries=int(opts["retries"]),
            what=f"datasets.{d.name}.metadata[{i}]", progress=progress,
        )
        origin = "" if is_url(src) else str(Path(src).resolve().parent)
        files.append({"source": src, "file": name, "bytes": got.bytes, "sha256": got.sha256, "origin_dir": origin})
    record = {"dataset": d.name, "source": d.source, "files": files}
    write_json(record, out_record)
    print(f"metadata {d.name}: ok={len(files)} failed=0 ({', '.join(names)})", flush=True)
    return record


# --------------------------------------------------------------------------------------------------
# clips
# --------------------------------------------------------------------------------------------------


def clip_table(d: DatasetConfig, record_path: str | Path, seed: int) -> pd.DataFrame:
    """The clip table of a dataset from its fetched metadata (see the module table); not written."""
    _check_real(d)
    record_path = Path(record_path)
    record = json.loads(record_path.read_text())
    files = [record_path.parent / f["file"] for f in record["files"]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MetadataWarning)
        if d.source in ("music", "music21"):
            split = {"seed": seed, "test_fraction": DEFAULT_TEST_FRACTION, **d.split}
            df = music_clip_table(files, split_seed=int(split["seed"]), test_fraction=float(split["test_fraction"]))
        elif d.source == "vggsound":
            df = _concat_unique([vggsound_clip_table(f, clip_seconds=d.clip_seconds) for f in files])
        elif d.source == "fairplay":
            df = _concat_unique([fairplay_clip_table(f, fold=d.fold) for f in files])
        else:  # local
            tables = [
                local_clip_table(f, base=rec["origin_dir"] or None)
                for f, rec in zip(files, record["files"], strict=True)
            ]
            df = _concat_unique(tables)
    for w in caught:
        print(f"warning: {w.message}", flush=True)
    return df


def _concat_unique(tables: list[pd.DataFrame]) -> pd.DataFrame:
    df = pd.concat(tables, ignore_index=True)
    dup = df["id"][df["id"].duplicated()].unique().tolist()
    if dup:
        warnings.warn(f"{len(dup)} clip id(s) listed in several metadata files, first kept: {dup[:10]}", MetadataWarning, stacklevel=2)
        df = df.drop_duplicates("id", keep="first")
    return df.sort_values("id", kind="stable").reset_index(drop=True)


def write_clip_table(d: DatasetConfig, record_path: str | Path, out: str | Path, seed: int) -> pd.DataFrame:
    df = clip_table(d, record_path, seed)
    write_parquet(df, out)
    ok = df[df["status"] == STATUS_OK]
    splits = ", ".join(f"{k}={v}" for k, v in ok["split"].value_counts().sort_index().items())
    print(f"clips {d.name}: {status_counts(df)} ({splits}; {ok['label'].nunique()} labels)", flush=True)
    return df


# --------------------------------------------------------------------------------------------------
# download (the raw clips)
# --------------------------------------------------------------------------------------------------


def download_config(d: DatasetConfig) -> DownloadConfig:
    """yt-dlp settings of a YouTube-based dataset (``url_template`` and ``download``)."""
    o = download_options(d)
    ydl: dict[str, Any] = {}
    if o["rate_limit"]:
        ydl["ratelimit"] = int(o["rate_limit"])
    if o["sleep_interval"]:
        ydl["sleep_interval"] = float(o["sleep_interval"])
    if o["cookiefile"]:
        ydl["cookiefile"] = str(o["cookiefile"])
    return DownloadConfig(
        url_template=d.url_template or YOUTUBE_URL, format=str(o["format"]), retries=int(o["retries"]),
        socket_timeout=float(o["socket_timeout"]), workers=int(o["workers"]), cut_segments=d.source == "vggsound",
        ydl_options=ydl,
    )


def raw_clips(
    d: DatasetConfig, clips_path: str | Path, out_manifest: str | Path, front_end_rate: int, progress: bool = True
) -> pd.DataFrame:
    """Fetch (or import) the clips of the clip table into ``raw/``; write the raw manifest once, complete.

    The manifest has one row per clip-table row and the columns the extract stage reads (``id, status,
    reason, label, split, path``; ``audio_path`` for FAIR-Play), ``path`` relative to the manifest.
    """
    _check_real(d)
    out_manifest = Path(out_manifest)
    out_dir = out_manifest.parent
    clips = pd.read_parquet(clips_path)
    ok = clips[clips["status"] == STATUS_OK].reset_index(drop=True)
    rejected = clips[clips["status"] != STATUS_OK].reset_index(drop=True)
    if d.source in YOUTUBE_SOURCES:
        got = download_dataset(
            ok.drop(columns=["status", "reason", "error"]), out_dir, download_config(d), progress=progress,
            write_manifest=False,
        )
        df = _with_rejected(got, rejected)
    elif d.source == "fairplay":
        videos, audios = _fetch_archives(d, out_dir.parent / ARCHIVES_DIR, progress)
        cfg = ImportConfig(channels=d.channels, audio_rate=d.audio_rate, min_rate=front_end_rate)
        df = import_fairplay(clips, videos, audios, out_dir, cfg, progress=progress)
    else:
        df = _check_local(clips)
    write_parquet(df, out_manifest)
    print(f"download {d.name}: {status_counts(df)}", flush=True)
    return df


def _with_rejected(got: pd.DataFrame, rejected: pd.DataFrame) -> pd.DataFrame:
    """The download manifest plus the rows rejected while reading the metadata (never fetched)."""
    if rejected.empty:
        return got
    extra = rejected.assign(status=STATUS_FAILED, path="", url="", cached=False)
    extra = extra.reindex(columns=got.columns)
    df = extra if got.empty else pd.concat([got, extra], ignore_index=True)
    return df.sort_values("id", kind="stable").reset_index(drop=True)


def _fetch_archives(d: DatasetConfig, folder: Path, progress: bool) -> tuple[Path, Path]:
    o = download_options(d)
    paths = []
    for key in ("videos", "audios"):
        src = d.archives[key]
        dest = folder / source_name(src)
        if is_url(src) and dest.is_file():
            paths.append(dest)  # fetched by an earlier run (written atomically, so complete)
            continue
        got = fetch(
            src, dest, timeout=float(o["socket_timeout"]), retries=int(o["retries"]),
            what=f"datasets.{d.name}.archives.{key}", progress=progress, copy_local=False,
        )
        paths.append(got.path)
    return paths[0], paths[1]


def _check_local(clips: pd.DataFrame) -> pd.DataFrame:
    """Raw manifest of a ``local`` dataset: each listed file must exist and hold video + audio."""
    rows = []
    for r in clips.to_dict("records"):
        row = {"id": r["id"], "status": r["status"], "reason": r["reason"], "label": r["label"],
               "split": r["split"], "path": "", "error": r["error"]}  # fmt: skip
        if r["status"] == STATUS_OK:
            video = Path(r["path"])
            try:
                if not video.is_file():
                    raise DownloadFailed("missing file", f"{video} does not exist")
                verify_video(video)
            except DownloadFailed as e:
                row.update(status=STATUS_FAILED, reason=e.reason, error=e.error)
            else:
                row["path"] = str(video)
        rows.append(row)
    return pd.DataFrame(rows).sort_values("id", kind="stable").reset_index(drop=True)
