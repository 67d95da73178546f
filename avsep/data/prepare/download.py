"""Download stage: fetch the videos of a metadata table with yt-dlp into a raw manifest.

Input is a clip table from :mod:`avsep.data.prepare.clip_tables` (columns ``id, label, split`` and optionally
``youtube_id``, ``start``, ``end``). Output, under ``out_dir``::

    videos/{id}.mp4           one file per ``ok`` row (<= 360p H.264/AAC where available)
    download_archive.txt      yt-dlp archive ("<extractor> <video id>" lines) of the finished downloads
    manifest.parquet          one row per input row (see :data:`MANIFEST_COLUMNS`), sorted by id

The manifest is the input of :func:`avsep.data.prepare.extract.extract_dataset` (``path`` is relative to it).

How one clip is fetched (:func:`download_one`):

* The YouTube id (``youtube_id``, else ``id``) and the clip id are validated first (``^[A-Za-z0-9_-]{11}$``
  and ``^[A-Za-z0-9_-]{1,64}$``); an invalid one is a ``failed`` row with reason ``"invalid id"`` and
  nothing is fetched. Valid ids only ever appear inside the URL (``cfg.url_template``) given to the yt-dlp
  Python API, never on a command line, and the file name is chosen here, not by yt-dlp.
* If ``videos/{id}.mp4`` exists and its video is in the archive, the row is ``ok`` without any network
  call (``cached``). A file that is there but not in the archive (e.g. copied from a mirror) is checked
  (:func:`avsep.data.prepare.ytdlp.verify_video`) and adopted, or deleted and fetched again.
* A fresh ``yt_dlp.YoutubeDL`` per clip (its error state would otherwise carry over) downloads into a
  private temporary directory under ``out_dir/.download-tmp`` (yt-dlp's own ``.part`` files live there),
  merges video + audio with the ffmpeg of :func:`avsep.data.prepare.media.ffmpeg_exe`, and, for rows with
  ``start``/``end`` (VGGSound), downloads only that section (``download_ranges``). The result is checked
  and renamed to ``videos/{id}.mp4`` with one :func:`os.replace`; the temporary directory is always
  removed, so a partial file never appears under the final name.
* Every error message yt-dlp logs is captured by a logger object and classified into a short
  ``reason`` (see :data:`avsep.data.prepare.ytdlp.REASONS`); the cleaned message itself is kept in the
  ``error`` column.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from avsep.core.io import STATUS_FAILED, STATUS_OK, status_counts, write_parquet
from avsep.core.progress import progress as progress_bar
from avsep.data.prepare.metadata_checks import is_clip_id
from avsep.data.prepare.ytdlp import (
    REASON_INVALID_ID,
    REASON_OTHER,
    DownloadConfig,
    DownloadFailed,
    clean_message,
    downloaded_file,
    parse_youtube_id,
    run_ytdlp,
    verify_video,
)

ARCHIVE_NAME = "download_archive.txt"
TMP_DIR_NAME = ".download-tmp"
VIDEOS_DIR = "videos"

#: Columns of the output manifest, in order; any other column of the input table follows them.
MANIFEST_COLUMNS = ("id", "status", "reason", "label", "split", "path", "youtube_id", "url", "cached", "error")


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadResult:
    """What happened to one clip.

    Attributes:
        id: clip id (the file is ``videos/{id}.mp4``).
        youtube_id: the video id the clip comes from ("" if it could not be parsed).
        status: ``ok`` or ``failed``.
        reason: "" when ok, else a short class (:data:`REASONS`, ``http NNN``, ``invalid id``, ...).
        error: the cleaned error message ("" when ok).
        path: ``videos/{id}.mp4`` relative to the output directory when ok, else "".
        url: the URL that was (or would have been) fetched.
        cached: True if the file was already there and nothing was fetched.
    """

    id: str
    youtube_id: str
    status: str
    reason: str
    error: str = ""
    path: str = ""
    url: str = ""
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK


# --------------------------------------------------------------------------------------------------
# The archive
# --------------------------------------------------------------------------------------------------


class DownloadArchive:
    """yt-dlp's download archive file (``"<extractor> <video id>"`` per line), shared by threads.

    Lines are appended only after the clip's file has been renamed into place, so the archive never
    names a video whose file is missing because of an interrupted download. It stays compatible with
    ``yt-dlp --download-archive``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._lines: set[str] = set()
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
                if len(line.split()) == 2:
                    self._lines.add(line.strip())
        self._ids = {line.split()[1] for line in self._lines}

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._ids

    def entries(self, exclude: str | None = None) -> set[str]:
        """The archive lines as a set (yt-dlp's ``download_archive`` accepts one), minus ``exclude``'s."""
        with self._lock:
            return {line for line in self._lines if exclude is None or line.split()[1] != exclude}

    def record(self, line: str) -> None:
        """Append ``"<extractor> <id>"`` (once) to the file."""
        if len(line.split()) != 2:
            raise ValueError(f"bad archive line {line!r}")
        with self._lock:
            if line in self._lines:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
            self._lines.add(line)
            self._ids.add(line.split()[1])


# --------------------------------------------------------------------------------------------------
# One clip
# --------------------------------------------------------------------------------------------------


def download_one(
    id_or_url: str,
    out_dir: str | Path,
    cfg: DownloadConfig | None = None,
    *,
    name: str | None = None,
    start: float | None = None,
    end: float | None = None,
    archive: DownloadArchive | None = None,
) -> DownloadResult:
    """Download one video (or its ``[start, end)`` section) to ``out_dir/videos/{name}.mp4``.

    Args:
        id_or_url: a YouTube id or YouTube URL (anything else fails with ``invalid id``, unfetched).
        out_dir: output directory (``videos/``, the archive and the temporary directory live in it).
        cfg: download settings (default :class:`DownloadConfig`).
        name: clip id, the file's stem (default: the YouTube id).
        start, end: section to keep in seconds (used when ``cfg.cut_segments``; both or neither).
        archive: the archive to consult and update (default: ``out_dir/download_archive.txt``).

    Never raises for a per-clip problem: the result says ``ok`` or ``failed`` with a reason.
    """
    cfg = cfg or DownloadConfig()
    out_dir = Path(out_dir)
    ytid = parse_youtube_id(id_or_url)
    clip = ytid if name is None else name
    if ytid is None or not is_clip_id(clip):
        bad = id_or_url if ytid is None else clip
        return DownloadResult(
            str(clip or id_or_url), ytid or "", STATUS_FAILED, REASON_INVALID_ID, f"refused id {bad!r}"
        )
    assert clip is not None
    archive = archive if archive is not None else DownloadArchive(out_dir / ARCHIVE_NAME)
    url = cfg.url(ytid)
    rel = f"{VIDEOS_DIR}/{clip}.mp4"
    final = out_dir / rel

    def result(status: str, reason: str = "", error: str = "", cached: bool = False) -> DownloadResult:
        path = rel if status == STATUS_OK else ""
        return DownloadResult(clip, ytid, status, reason, error, path, url, cached)

    if _reuse_existing(final, ytid, archive, cfg):
        return result(STATUS_OK, cached=True)
    section = (start, end) if cfg.cut_segments and start is not None and end is not None else None
    try:
        line = _fetch(url, ytid, final, out_dir / TMP_DIR_NAME, cfg, archive, section)
    except DownloadFailed as e:
        return result(STATUS_FAILED, e.reason, e.error)
    archive.record(line)
    return result(STATUS_OK)


def _reuse_existing(final: Path, ytid: str, archive: DownloadArchive, cfg: DownloadConfig) -> bool:
    """True if ``final`` is a finished download (archived, or verified and then archived)."""
    if not final.is_file():
        return False
    if ytid in archive:
        return True
    if cfg.verify:
        try:
            verify_video(final)
        except DownloadFailed:
            final.unlink(missing_ok=True)
            return False
    archive.record(f"youtube {ytid}")
    return True


def _fetch(
    url: str,
    ytid: str,
    final: Path,
    tmp_root: Path,
    cfg: DownloadConfig,
    archive: DownloadArchive,
    section: tuple[float, float] | None,
) -> str:
    """Download ``url`` in a private temporary directory, verify it, rename it to ``final``.

    Returns the archive line for the video. Raises :class:`DownloadFailed`.
    """
    tmp_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{final.stem}.", dir=tmp_root)).resolve()
    try:
        info, logger = run_ytdlp(url, tmp, cfg, archive.entries(exclude=ytid), section)
        got = downloaded_file(info, tmp, logger)
        if cfg.verify:
            verify_video(got)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(got, final)
        extractor = str(info.get("extractor_key") or info.get("extractor") or "generic").lower()
        return f"{extractor.split(':')[0]} {info.get('id') or ytid}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------------


def download_dataset(
    meta: pd.DataFrame,
    out_dir: str | Path,
    cfg: DownloadConfig | None = None,
    progress: bool = True,
    write_manifest: bool = True,
) -> pd.DataFrame:
    """Download every row of ``meta`` into ``out_dir``; write and return the raw manifest.

    ``meta`` needs ``id, label, split``; ``youtube_id`` (default: ``id``) and ``start``/``end`` (a section
    to keep, e.g. VGGSound's 10 s) are used when present, and every other column is carried over. Clips
    already downloaded (file present and archived) are not fetched again; failed clips are retried on
    every run. Every input row becomes exactly one manifest row, ``ok`` or ``failed`` with a reason.
    The manifest (``out_dir/manifest.parquet``, sorted by id) is written atomically at the end, and a
    summary ``download: ok=N failed=M`` is printed. With ``write_manifest=False`` the manifest is only
    returned (a caller that adds rows of its own writes it once, complete).

    Raises:
        ValueError: ``meta`` lacks a required column or has duplicate ids.
    """
    cfg = cfg or DownloadConfig()
    out_dir = Path(out_dir)
    _check_meta(meta)
    (out_dir / VIDEOS_DIR).mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / TMP_DIR_NAME, ignore_errors=True)  # left by an interrupted run
    archive = DownloadArchive(out_dir / ARCHIVE_NAME)
    rows = meta.to_dict("records")
    results: dict[int, DownloadResult] = {}
    with progress_bar(total=len(rows), desc="download", unit="video", disable=not progress) as bar:
        counts = {"ok": 0, "failed": 0}

        def done(i: int, res: DownloadResult) -> None:
            results[i] = res
            counts["ok" if res.ok else "failed"] += 1
            bar.set_postfix(counts, refresh=False)
            bar.update(1)

        _run_rows(rows, lambda r: _download_row(r, out_dir, cfg, archive), done, cfg.workers)
    shutil.rmtree(out_dir / TMP_DIR_NAME, ignore_errors=True)
    df = _assemble(meta, results)
    if write_manifest:
        write_parquet(df, out_dir / "manifest.parquet")
    print(f"download: {status_counts(df)}", flush=True)
    return df


def _check_meta(meta: pd.DataFrame) -> None:
    missing = [c for c in ("id", "label", "split") if c not in meta.columns]
    if missing:
        raise ValueError(f"metadata table lacks column(s) {missing}")
    ids = meta["id"].astype(str)
    dup = ids[ids.duplicated()].unique().tolist()
    if dup:
        raise ValueError(f"metadata table has duplicate id(s) {dup[:5]}")


def _download_row(row: dict[str, Any], out_dir: Path, cfg: DownloadConfig, archive: DownloadArchive) -> DownloadResult:
    """:func:`download_one` for a metadata row; an unexpected exception becomes a failed result."""
    clip = str(row["id"])
    yt = row.get("youtube_id")
    yt = clip if yt is None or (isinstance(yt, float) and pd.isna(yt)) else str(yt)
    start, end = _number(row.get("start")), _number(row.get("end"))
    try:
        return download_one(yt, out_dir, cfg, name=clip, start=start, end=end, archive=archive)
    except Exception as e:  # noqa: BLE001 - a bug or an OS error must not lose the row
        return DownloadResult(clip, yt, STATUS_FAILED, REASON_OTHER, clean_message(f"{type(e).__name__}: {e}"))


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if pd.isna(f) else f


def _run_rows(
    rows: list[dict[str, Any]],
    work: Callable[[dict[str, Any]], DownloadResult],
    done: Callable[[int, DownloadResult], None],
    workers: int,
) -> None:
    """Apply ``work`` to every row, in order or on a small thread pool."""
    if workers <= 1:
        for i, r in enumerate(rows):
            done(i, work(r))
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(work, r): i for i, r in enumerate(rows)}
        for fut in as_completed(futures):
            done(futures[fut], fut.result())


def _assemble(meta: pd.DataFrame, results: dict[int, DownloadResult]) -> pd.DataFrame:
    """The manifest: result columns first, then the other metadata columns; sorted by id."""
    extra = [c for c in meta.columns if c not in MANIFEST_COLUMNS]
    records = []
    for i, row in enumerate(meta.to_dict("records")):
        res = results[i]
        rec = {
            "id": str(row["id"]), "status": res.status, "reason": res.reason,
            "label": row["label"], "split": row["split"], "path": res.path,
            "youtube_id": res.youtube_id, "url": res.url, "cached": bool(res.cached), "error": res.error,
        }  # fmt: skip
        rec.update({c: row[c] for c in extra})
        records.append(rec)
    df = pd.DataFrame(records, columns=[*MANIFEST_COLUMNS, *extra])
    return df.sort_values("id", kind="stable").reset_index(drop=True)
