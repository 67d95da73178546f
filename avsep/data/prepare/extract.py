"""Extract stage: decode every downloaded/rendered clip into a wav and a directory of JPEG frames.

Input is a "raw" manifest (parquet; columns at least ``id, status, reason, label, split, path`` where
``path`` is the video relative to the manifest's directory). An optional column ``audio_path`` names a
separate sound file (FAIR-Play's binaural wavs): where it is set, the audio comes from it and only the
frames from the video. Output, under ``out_dir``::

    audio/{id}.wav          PCM 16-bit, ``cfg.sample_rate`` Hz, ``cfg.channels`` channels
    frames/{id}/000001.jpg  JPEG frames sampled at ``cfg.fps`` (numbered from 1)
    manifest.parquet        one row per raw row (see :data:`OUTPUT_COLUMNS`), sorted by id
    extract_config.json     the output-shaping part of the config the outputs were made with

One ffmpeg call per clip (:func:`avsep.data.prepare.decode.extract_clip`) writes both outputs into
temporary locations beside their destinations; they are validated (length, silence, frame count) and only
then renamed into place, so a clip has either both outputs or none. A failing clip becomes a ``failed`` row with a specific reason and the run goes on.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd
import soundfile as sf

from avsep.core.io import STATUS_FAILED, STATUS_OK, read_manifest, status_counts, write_json, write_parquet
from avsep.core.progress import progress as progress_bar
from avsep.data.prepare.decode import ExtractConfig, ExtractError, extract_clip, image_size
from avsep.data.prepare.readers import list_frames

#: Columns the extract stage adds to (or overwrites in) the raw manifest's rows.
RESULT_COLUMNS = (
    "audio",
    "frames",
    "n_samples",
    "n_frames",
    "duration",
    "sample_rate",
    "channels",
    "width",
    "height",
)
#: Leading columns of the output manifest; every other raw column follows them, then RESULT_COLUMNS.
LEAD_COLUMNS = ("id", "status", "reason", "label", "split")
CONFIG_STAMP = "extract_config.json"


def extract_dataset(
    raw_manifest: Path,
    out_dir: Path,
    cfg: ExtractConfig,
    progress: bool = True,
    workers: int = 2,
) -> pd.DataFrame:
    """Extract every ``ok`` row of ``raw_manifest`` into ``out_dir``; write and return its manifest.

    Rows that are not ``ok`` in the raw manifest are carried over as ``failed`` with their reason. A clip
    whose ``audio/{id}.wav`` and ``frames/{id}/`` both exist is not decoded again (its numbers are read
    back from the files), so a rerun is cheap; if ``out_dir/extract_config.json`` records different
    output settings (rate, channels, fps, frame size, JPEG quality), the old ``audio/`` and ``frames/``
    are deleted first. Failed clips are retried on every run and never leave outputs behind.
    The manifest is rewritten (atomically) on every run, sorted by id.
    """
    raw_manifest, out_dir = Path(raw_manifest), Path(out_dir)
    raw = read_manifest(raw_manifest)
    _check_raw(raw, raw_manifest)
    _prepare_out_dir(out_dir, cfg)
    base = raw_manifest.parent

    rows = raw.to_dict("records")
    results: dict[str, dict[str, Any]] = {}
    with progress_bar(total=len(rows), desc="extract", unit="clip", disable=not progress) as bar:
        counts = {"ok": 0, "failed": 0}

        def done(rid: str, res: dict[str, Any]) -> None:
            results[rid] = res
            counts["ok" if res["status"] == STATUS_OK else "failed"] += 1
            bar.set_postfix(counts, refresh=False)
            bar.update(1)

        _run_rows(rows, lambda r: _process_row(r, base, out_dir, cfg), done, workers)

    df = _assemble(raw, results)
    write_parquet(df, out_dir / "manifest.parquet")
    print(f"extract: {status_counts(df)}", flush=True)
    return df


def _check_raw(raw: pd.DataFrame, path: Path) -> None:
    """The raw manifest must have the columns this stage reads and unique ids."""
    missing = [c for c in ("label", "split", "path") if c not in raw.columns]
    if missing:
        raise ValueError(f"raw manifest {path} lacks column(s) {missing}")
    dup = raw["id"][raw["id"].duplicated()].unique().tolist()
    if dup:
        raise ValueError(f"raw manifest {path} has duplicate id(s) {dup[:5]}")


def _prepare_out_dir(out_dir: Path, cfg: ExtractConfig) -> None:
    """Discard outputs made with other output settings, and temporaries of an interrupted run.

    The settings are recorded before any clip is written, so whatever a run (even an interrupted one)
    leaves behind matches the stamp. An unchanged stamp is not rewritten (a rerun touches nothing).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp_path = out_dir / CONFIG_STAMP
    stamp = json.loads(stamp_path.read_text()) if stamp_path.exists() else None
    if stamp != cfg.output_stamp():
        for sub in ("audio", "frames"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
        write_json(cfg.output_stamp(), stamp_path)
    for sub in ("audio", "frames"):
        d = out_dir / sub
        for tmp in d.glob(".*.tmp*") if d.is_dir() else ():
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)


def _run_rows(
    rows: list[dict[str, Any]],
    work: Callable[[dict[str, Any]], dict[str, Any]],
    done: Callable[[str, dict[str, Any]], None],
    workers: int,
) -> None:
    """Apply ``work`` to every row on a small thread pool (ffmpeg runs in subprocesses)."""
    if workers <= 1:
        for r in rows:
            done(str(r["id"]), work(r))
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(work, r): str(r["id"]) for r in rows}
        for fut in as_completed(futures):
            done(futures[fut], fut.result())


def _process_row(row: dict[str, Any], base: Path, out_dir: Path, cfg: ExtractConfig) -> dict[str, Any]:
    """Extract one raw row (or reuse its outputs); return its status, reason and result columns."""
    rid = str(row["id"])
    if row["status"] != STATUS_OK:
        reason = row.get("reason")
        if reason is None or pd.isna(reason) or not str(reason):
            reason = f"not ok in raw manifest (status {row['status']!r})"
        return _failed(str(reason))
    if not _safe_id(rid):
        return _failed(f"unsafe id {rid!r} for a file name")
    path = row.get("path")
    if path is None or pd.isna(path) or not str(path):
        return _failed("no video path in raw manifest")
    wav, frames = out_dir / "audio" / f"{rid}.wav", out_dir / "frames" / rid
    audio_src = row.get("audio_path")
    audio = base / str(audio_src) if audio_src is not None and not pd.isna(audio_src) and str(audio_src) else None
    info = _existing_outputs(wav, frames, cfg)
    if info is None:
        try:
            info = extract_clip(base / str(path), wav, frames, cfg, audio)
        except ExtractError as e:
            _remove_outputs(wav, frames)
            return _failed(e.reason)
    return {
        "status": STATUS_OK,
        "reason": "",
        "audio": wav.relative_to(out_dir).as_posix(),
        "frames": frames.relative_to(out_dir).as_posix(),
        **info,
    }


def _failed(reason: str) -> dict[str, Any]:
    return {"status": STATUS_FAILED, "reason": str(reason)}


def _safe_id(rid: str) -> bool:
    """An id usable as a file name: no path separators, not hidden."""
    return bool(rid) and not rid.startswith(".") and "/" not in rid and "\\" not in rid


def _existing_outputs(wav: Path, frames_dir: Path, cfg: ExtractConfig) -> dict[str, Any] | None:
    """Numbers of a clip extracted by an earlier run, or None if it has to be (re)done.

    Both outputs are renamed into place only after validation, so their presence means the clip was
    complete; the header is still checked against ``cfg`` and the length against ``cfg.min_samples``.
    """
    if not (wav.is_file() and frames_dir.is_dir()):
        return None
    frames = list_frames(frames_dir)
    try:
        info = sf.info(str(wav))
    except (OSError, RuntimeError, sf.LibsndfileError):
        return None
    if not frames or info.samplerate != cfg.sample_rate or info.channels != cfg.channels:
        return None
    if info.frames < cfg.min_samples:
        return None
    width, height = image_size(frames[0])
    return {
        "n_samples": int(info.frames),
        "n_frames": len(frames),
        "duration": info.frames / cfg.sample_rate,
        "sample_rate": cfg.sample_rate,
        "channels": cfg.channels,
        "width": width,
        "height": height,
    }


def _remove_outputs(wav: Path, frames_dir: Path) -> None:
    """Delete a clip's outputs (left by an earlier run) so a failed row has none."""
    wav.unlink(missing_ok=True)
    shutil.rmtree(frames_dir, ignore_errors=True)


_INT_COLUMNS = ("n_samples", "n_frames", "sample_rate", "channels", "width", "height")


def _assemble(raw: pd.DataFrame, results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Raw rows + per-clip results, columns in contract order, rows sorted by id."""
    df = raw.drop(columns=[c for c in RESULT_COLUMNS if c in raw.columns]).copy()
    ids = df["id"].astype(str)
    df["status"] = [results[i]["status"] for i in ids]
    df["reason"] = [results[i]["reason"] for i in ids]
    for col in RESULT_COLUMNS:
        df[col] = [results[i].get(col) for i in ids]
    for col in _INT_COLUMNS:
        df[col] = df[col].astype("Int64")
    df["duration"] = df["duration"].astype("float64")
    other = [c for c in df.columns if c not in LEAD_COLUMNS and c not in RESULT_COLUMNS]
    df = df[[*LEAD_COLUMNS, *other, *RESULT_COLUMNS]]
    return df.sort_values("id", kind="stable").reset_index(drop=True)
