"""Talking to yt-dlp: options, running it on one URL, classifying its errors, checking what it wrote.

Everything here concerns a single fetch into a private temporary directory: the yt-dlp options built from
:class:`DownloadConfig`, a fresh ``yt_dlp.YoutubeDL`` per call with a :class:`CaptureLogger`, the
classification of yt-dlp/ffmpeg messages into a short ``reason`` (:data:`REASONS`), the parsing of
YouTube ids/URLs, and :func:`verify_video`, the check that a file is a complete video with audio. Where
the file ends up, the archive and the manifest are the job of :mod:`avsep.data.prepare.download`.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avsep.data.prepare.media import MediaError, ffmpeg_exe, probe
from avsep.data.prepare.metadata_checks import is_youtube_id

YOUTUBE_URL = "https://www.youtube.com/watch?v={id}"
#: <= 360p mp4 video + m4a audio (merged), else the best single file <= 360p, else the best single file.
DEFAULT_FORMAT = "bv*[height<=360][ext=mp4]+ba[ext=m4a]/b[height<=360][ext=mp4]/b[height<=360]/b"

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
# Configuration
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
        ffmpeg_location: ffmpeg binary for merging/cutting; None -> :func:`avsep.data.prepare.media.ffmpeg_exe`.
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
# Running yt-dlp
# --------------------------------------------------------------------------------------------------


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


def run_ytdlp(
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


def downloaded_file(info: dict[str, Any], tmp: Path, logger: CaptureLogger) -> Path:
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
