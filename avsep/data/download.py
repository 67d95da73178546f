"""Download stage: fetch the videos of a metadata table with yt-dlp into a raw manifest.

Input is a clip table from :mod:`avsep.data.metadata` (columns ``id, label, split`` and optionally
``youtube_id``, ``start``, ``end``). Output, under ``out_dir``::

    videos/{id}.mp4           one file per ``ok`` row (<= 360p H.264/AAC where available)
    download_archive.txt      yt-dlp archive ("<extractor> <video id>" lines) of the finished downloads
    manifest.parquet          one row per input row (see :data:`MANIFEST_COLUMNS`), sorted by id

The manifest is the input of :func:`avsep.data.extract.extract_dataset` (``path`` is relative to it).

How one clip is fetched (:func:`download_one`):

* The YouTube id (``youtube_id``, else ``id``) and the clip id are validated first (``^[A-Za-z0-9_-]{11}$``
  and ``^[A-Za-z0-9_-]{1,64}$``); an invalid one is a ``failed`` row with reason ``"invalid id"`` and
  nothing is fetched. Valid ids only ever appear inside the URL (``cfg.url_template``) given to the yt-dlp
  Python API, never on a command line, and the file name is chosen here, not by yt-dlp.
* If ``videos/{id}.mp4`` exists and its video is in the archive, the row is ``ok`` without any network
  call (``cached``). A file that is there but not in the archive (e.g. copied from a mirror) is checked
  (:func:`verify_video`) and adopted, or deleted and fetched again.
* A fresh ``yt_dlp.YoutubeDL`` per clip (its error state would otherwise carry over) downloads into a
  private temporary directory under ``out_dir/.download-tmp`` (yt-dlp's own ``.part`` files live there),
  merges video + audio with the ffmpeg of :func:`avsep.media.ffmpeg_exe`, and, for rows with
  ``start``/``end`` (VGGSound), downloads only that section (``download_ranges``). The result is checked
  and renamed to ``videos/{id}.mp4`` with one :func:`os.replace`; the temporary directory is always
  removed, so a partial file never appears under the final name.
* Every error message yt-dlp logs is captured by a logger object and classified into a short
  ``reason`` (see :data:`REASONS`); the cleaned message itself is kept in the ``error`` column.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from avsep.data.metadata import is_clip_id, is_youtube_id
from avsep.io import STATUS_FAILED, STATUS_OK, status_counts, write_parquet
from avsep.media import MediaError, ffmpeg_exe, probe
from avsep.progress import progress as progress_bar

YOUTUBE_URL = "https://www.youtube.com/watch?v={id}"
#: <= 360p mp4 video + m4a audio (merged), else the best single file <= 360p, else the best single file.
DEFAULT_FORMAT = "bv*[height<=360][ext=mp4]+ba[ext=m4a]/b[height<=360][ext=mp4]/b[height<=360]/b"
ARCHIVE_NAME = "download_archive.txt"
TMP_DIR_NAME = ".download-tmp"
VIDEOS_DIR = "videos"

#: Columns of the output manifest, in order; any other column of the input table follows them.
MANIFEST_COLUMNS = ("id", "status", "reason", "label", "split", "path", "youtube_id", "url", "cached", "error")

REASON_INVALID_ID = "invalid id"
REASON_OTHER = "other"
REASON_HTTP = "http NNN"
#: (reason, lower-case fragments of yt-dlp/ffmpeg messages), tried in this order; the ``http NNN`` entry
#: matches any "HTTP Error NNN" and gives e.g. ``http 404``. A message matching nothing gets
#: :data:`REASON_OTHER`. Besides these, the stage itself gives ``invalid id``, ``corrupt file``,
#: ``no video stream`` and ``no audio stream``.
REASONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("private", ("private video", "video is private")),
    ("age restricted", ("confirm your age", "age-restricted", "age restricted", "inappropriate for some users")),
    ("geo blocked", ("not available in your country", "available in your country", "geo restrict",
                     "geo-restrict", "from your location")),
    ("rate limited", ("rate-limited", "rate limit", "try again later", "http error 429", "too many requests",
                      "captcha")),
    ("login required", ("sign in to confirm", "login required", "members-only", "join this channel",
                        "requires payment", "cookies-from-browser")),
    ("drm protected", ("drm protected",)),
    ("no suitable format", ("requested format is not available", "requested format not available")),
    ("ffmpeg error", ("ffmpeg", "ffprobe", "postprocessing", "conversion failed", "merging of multiple formats")),
    ("unavailable", ("video unavailable", "is not available", "no longer available", "has been removed",
                     "account associated with this video has been terminated", "copyright", "does not exist",
                     "this video has been removed", "premieres in", "live event will begin", "is unavailable")),
    (REASON_HTTP, ()),  # "http NNN" for any "HTTP Error NNN"
    ("not a video", ("unsupported url", "no video formats found", "not a video", "is not a valid url",
                     "no media found", "no video could be found")),
    ("incomplete download", ("bytes read", "more expected", "content too short", "incompleteread",
                             "incomplete read", "did not get any data blocks", "downloaded file is empty",
                             "unable to resume")),
    ("network", ("timed out", "timeout", "connection refused", "connection reset", "connection aborted",
                 "name or service not known", "temporary failure in name resolution", "nodename nor servname",
                 "network is unreachable", "no route to host", "remote end closed", "urlopen error",
                 "transporterror", "ssl:", "unable to connect", "failed to resolve", "getaddrinfo",
                 "errno 111", "errno 104", "broken pipe")),
)  # fmt: skip
_HTTP_ERROR = re.compile(r"http error (\d{3})")
#: ffmpeg messages (stream-copy pass) that mean the file is truncated or corrupt.
_CORRUPT_MARKERS = ("partial file", "Invalid data found", "moov atom not found", "Error opening input")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MAX_ERROR_CHARS = 500
#: yt-dlp options owned by this module (they decide where files go and how errors are seen).
_RESERVED_OPTIONS = frozenset({"logger", "paths", "outtmpl", "download_archive", "ignoreerrors", "format"})


# --------------------------------------------------------------------------------------------------
# Configuration and results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadConfig:
    """How videos are fetched.

    Attributes:
        url_template: URL of a video, with ``{id}`` replaced by its (validated) YouTube id.
        format: yt-dlp format selector (:data:`DEFAULT_FORMAT`: <= 360p mp4 + m4a).
        retries: yt-dlp ``retries`` / ``fragment_retries`` / ``extractor_retries`` (bounded).
        socket_timeout: seconds before a stalled connection fails.
        cut_segments: download only ``[start, end)`` for rows that have them (VGGSound).
        force_keyframes_at_cuts: re-encode around the cuts so a section starts exactly at ``start``
            (without it, ffmpeg stream-copies from the keyframe before ``start``).
        verify: after download, stream-copy the file through ffmpeg to detect truncation, and require a
            video and an audio stream.
        workers: clips fetched concurrently (threads; each clip has its own YoutubeDL).
        ffmpeg_location: ffmpeg binary for merging/cutting; None -> :func:`avsep.media.ffmpeg_exe`.
        ydl_options: extra yt-dlp options (e.g. ``cookiefile``, ``ratelimit``, ``sleep_interval``,
            ``js_runtimes``), applied last so they override the defaults built here, except the
            reserved ``logger, paths, outtmpl, download_archive, ignoreerrors, format``.
    """

    url_template: str = YOUTUBE_URL
    format: str = DEFAULT_FORMAT
    retries: int = 3
    socket_timeout: float = 30.0
    cut_segments: bool = True
    force_keyframes_at_cuts: bool = True
    verify: bool = True
    workers: int = 1
    ffmpeg_location: str | None = None
    ydl_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            url = self.url_template.format(id="aaaaaaaaaaa")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"url_template {self.url_template!r} must contain only the field {{id}} ({e})") from None
        if "aaaaaaaaaaa" not in url or not urllib.parse.urlsplit(url).scheme:
            raise ValueError(f"url_template {self.url_template!r} must be an absolute URL containing {{id}}")
        if self.retries < 0 or self.socket_timeout <= 0 or self.workers < 1:
            raise ValueError("DownloadConfig: retries must be >= 0, socket_timeout > 0 and workers >= 1")
        reserved = sorted(_RESERVED_OPTIONS & set(self.ydl_options))
        if reserved:
            raise ValueError(f"DownloadConfig.ydl_options may not set {reserved}")

    def url(self, youtube_id: str) -> str:
        """The URL of a (validated) video id."""
        return self.url_template.format(id=youtube_id)


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


class DownloadFailed(Exception):
    """A clip failed for a reason found here (not by yt-dlp): ``reason`` and ``error`` for the row."""

    def __init__(self, reason: str, error: str) -> None:
        super().__init__(error)
        self.reason = reason
        self.error = error


# --------------------------------------------------------------------------------------------------
# Ids, errors, logging
# --------------------------------------------------------------------------------------------------


def parse_youtube_id(id_or_url: str) -> str | None:
    """The video id of a bare id or a YouTube URL (watch?v=, youtu.be/, shorts/, embed/), else None.

    The result always matches ``^[A-Za-z0-9_-]{11}$``; anything else (option-like strings, paths,
    other sites) gives None.
    """
    if not isinstance(id_or_url, str):
        return None
    s = id_or_url.strip()
    if is_youtube_id(s):
        return s
    try:
        parts = urllib.parse.urlsplit(s)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https"):
        return None
    candidate = None
    if host == "youtu.be":
        candidate = parts.path.lstrip("/")
    elif host == "youtube.com" or host.endswith(".youtube.com"):
        segs = [p for p in parts.path.split("/") if p]
        if segs == ["watch"]:
            candidate = (urllib.parse.parse_qs(parts.query).get("v") or [""])[0]
        elif len(segs) == 2 and segs[0] in ("shorts", "embed", "v", "live"):
            candidate = segs[1]
    return candidate if is_youtube_id(candidate) else None


def classify_error(message: str) -> str:
    """A short, stable reason for a yt-dlp/ffmpeg error message (see :data:`REASONS`)."""
    text = message.lower()
    for reason, fragments in REASONS:
        if reason == REASON_HTTP:
            m = _HTTP_ERROR.search(text)
            if m:
                return f"http {m.group(1)}"
        elif any(f in text for f in fragments):
            return reason
    return REASON_OTHER


def clean_message(message: str, tmp_dir: Path | None = None) -> str:
    """One line without ANSI codes, carriage returns, the ``ERROR:`` prefix or temporary paths."""
    text = _ANSI.sub("", str(message)).replace("\r", " ")
    if tmp_dir is not None:
        text = text.replace(str(tmp_dir), "<tmp>")
    text = " ".join(text.split())
    text = re.sub(r"^(ERROR:\s*)+", "", text)
    return text[:MAX_ERROR_CHARS]


class CaptureLogger:
    """A yt-dlp ``logger``: keeps every error and warning message, and the last debug/info lines."""

    def __init__(self, keep_debug: int = 20) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.debug_lines: list[str] = []
        self._keep = keep_debug

    def debug(self, msg: str) -> None:
        self.debug_lines = [*self.debug_lines[-(self._keep - 1) :], msg] if self._keep > 0 else []

    def info(self, msg: str) -> None:
        self.debug(msg)

    def warning(self, msg: str) -> None:
        self.warnings.append(msg)

    def error(self, msg: str) -> None:
        self.errors.append(msg)


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
        info, logger = _run_ytdlp(url, tmp, cfg, archive.entries(exclude=ytid), section)
        got = _downloaded_file(info, tmp, logger)
        if cfg.verify:
            verify_video(got)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(got, final)
        extractor = str(info.get("extractor_key") or info.get("extractor") or "generic").lower()
        return f"{extractor.split(':')[0]} {info.get('id') or ytid}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ydl_params(
    tmp: Path,
    cfg: DownloadConfig,
    logger: CaptureLogger,
    archive: set[str],
    section: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """The yt-dlp options of one download into the directory ``tmp``."""
    params: dict[str, Any] = {
        "format": cfg.format,
        "merge_output_format": "mp4",
        "postprocessors": [{"key": "FFmpegVideoRemuxer", "preferedformat": "mp4"}],
        "ffmpeg_location": _ffmpeg(cfg),
        "paths": {"home": str(tmp), "temp": str(tmp)},
        "outtmpl": {"default": "media.%(ext)s"},
        "download_archive": archive,
        "retries": cfg.retries,
        "fragment_retries": cfg.retries,
        "extractor_retries": cfg.retries,
        "file_access_retries": 1,
        "socket_timeout": cfg.socket_timeout,
        "logger": logger,
        "quiet": True,
        "no_warnings": False,
        "noprogress": True,
        "noplaylist": True,
        "ignoreerrors": False,
        "continuedl": False,
        "overwrites": True,
        "cachedir": False,
        "updatetime": False,
        "color": {"stdout": "no_color", "stderr": "no_color"},
        **dict(cfg.ydl_options),  # may not contain the reserved keys (checked by DownloadConfig)
    }
    if section is not None:
        from yt_dlp.utils import download_range_func

        params["download_ranges"] = download_range_func(None, [(float(section[0]), float(section[1]))])
        params["force_keyframes_at_cuts"] = cfg.force_keyframes_at_cuts
    return params


def _ffmpeg(cfg: DownloadConfig) -> str:
    return cfg.ffmpeg_location if cfg.ffmpeg_location is not None else ffmpeg_exe()


@contextlib.contextmanager
def _ffmpeg_for_downloaders(location: str) -> Iterator[None]:
    """Make yt-dlp's ffmpeg *downloader* see ``location`` too.

    ``FFmpegFD.available()`` (used for section downloads) ignores the ``ffmpeg_location`` option and only
    reads a context variable that the yt-dlp CLI sets; without this, partial downloads fail with "ffmpeg
    is not installed" unless an ``ffmpeg`` is on PATH. The variable is per thread/context.
    """
    from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor

    var = getattr(FFmpegPostProcessor, "_ffmpeg_location", None)
    token = var.set(location) if var is not None else None
    try:
        yield
    finally:
        if var is not None and token is not None:
            var.reset(token)


def _run_ytdlp(
    url: str, tmp: Path, cfg: DownloadConfig, archive: set[str], section: tuple[float, float] | None
) -> tuple[dict[str, Any], CaptureLogger]:
    """Run a fresh YoutubeDL on ``url``; return its info dict and logger, or raise DownloadFailed."""
    import yt_dlp

    logger = CaptureLogger()
    params = ydl_params(tmp, cfg, logger, archive, section)
    try:
        with _ffmpeg_for_downloaders(params["ffmpeg_location"]), yt_dlp.YoutubeDL(params) as ydl:
            info = ydl.extract_info(url, download=True)
    except Exception as e:  # noqa: BLE001 - DownloadError, and whatever an extractor/postprocessor lets through
        message = "; ".join(dict.fromkeys([str(e), *logger.errors]))
        text = clean_message(message, tmp)
        raise DownloadFailed(classify_error(text), text) from None
    if not isinstance(info, dict):
        text = clean_message("; ".join(logger.errors) or "yt-dlp returned no video", tmp)
        raise DownloadFailed(classify_error(text) if logger.errors else "not a video", text)
    return info, logger


def _downloaded_file(info: dict[str, Any], tmp: Path, logger: CaptureLogger) -> Path:
    """The finished file yt-dlp produced in ``tmp`` (never a ``.part``/fragment file)."""
    for d in info.get("requested_downloads") or []:
        fp = d.get("filepath")
        if fp and Path(fp).is_file() and Path(fp).resolve().parent == tmp:
            return Path(fp)
    done = sorted(p for p in tmp.glob("media.*") if p.is_file() and not p.name.endswith((".part", ".ytdl")))
    mp4 = [p for p in done if p.suffix == ".mp4"]
    if mp4 or done:
        return (mp4 or done)[0]
    if logger.warnings:
        text = clean_message("; ".join(logger.warnings), tmp)
        raise DownloadFailed(classify_error(text), f"no file was written: {text}")
    raise DownloadFailed("not a video", "no file was written (already in the archive, or nothing to download)")


def verify_video(path: Path) -> None:
    """Require a readable, untruncated file with a video and an audio stream, else DownloadFailed.

    A stream-copy pass through ffmpeg (no decoding, I/O bound) reports a truncated ``mdat``
    ("partial file"), which probing the header alone does not notice when the index is at the front.
    """
    try:
        info = probe(path)
    except MediaError:
        raise DownloadFailed("corrupt file", "not a readable media file (truncated or corrupt)") from None
    if not info.has_video:
        raise DownloadFailed("no video stream", "the downloaded file has no video stream")
    if not info.has_audio:
        raise DownloadFailed("no audio stream", "the downloaded file has no audio stream")
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path.resolve()),
           "-map", "0", "-c", "copy", "-f", "null", "-"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    bad = [ln for ln in proc.stderr.splitlines() if any(m in ln for m in _CORRUPT_MARKERS)]
    if proc.returncode != 0 or bad:
        detail = clean_message((bad or proc.stderr.strip().splitlines() or ["ffmpeg failed"])[-1])
        detail = re.sub(r"\[[^\]]* @ 0x[0-9a-fA-F]+\]\s*", "", detail)
        raise DownloadFailed("corrupt file", f"truncated or corrupt file ({detail})")


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
