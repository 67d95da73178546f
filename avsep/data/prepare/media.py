"""Locating and calling ffmpeg.

No system ffmpeg is assumed: the static binary shipped by ``imageio-ffmpeg`` is used unless the
environment variable ``AVSEP_FFMPEG`` names another one. There is no ffprobe, so stream information is
read from ``ffmpeg -i`` output. Subprocesses always get argument lists, never a shell string.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path


class MediaError(RuntimeError):
    """A media file could not be read or written; the message names the file and the reason."""


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary to use."""
    env = os.environ.get("AVSEP_FFMPEG")
    if env:
        return env
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(args: list[str], what: str) -> subprocess.CompletedProcess[str]:
    """Run ffmpeg with ``args`` (no shell); raise :class:`MediaError` naming ``what`` on failure."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        err = proc.stderr.strip().splitlines()
        raise MediaError(f"{what}: ffmpeg failed: {err[-1] if err else 'exit ' + str(proc.returncode)}")
    return proc


@dataclass(frozen=True)
class StreamInfo:
    """What ``ffmpeg -i`` reports about a media file."""

    duration: float | None
    has_video: bool
    has_audio: bool
    fps: float | None
    width: int | None
    height: int | None
    sample_rate: int | None
    channels: int | None


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
# The size is a standalone "WxH" token: "... yuv420p(progressive), 64x64 [SAR 1:1 DAR 1:1], ...". Requiring a
# space or comma on both sides keeps codec tags such as "(avc1 / 0x31637661)" from matching. Cover art
# ("(attached pic)") is an image, not a video stream, and is skipped.
_VIDEO = re.compile(
    r"Stream #\S+.*?: Video: (?![^\n]*attached pic)[^\n]*?[ ,](\d{1,5})x(\d{1,5})(?=[ ,\[]|$)", re.M
)
_FPS = re.compile(r"(\d+(?:\.\d+)?) fps")
_AUDIO = re.compile(r"Stream #\S+.*?: Audio: [^\n]*?, (\d+) Hz, ([^,\n]+)")
_LAYOUT_CHANNELS = {
    "mono": 1, "stereo": 2, "downmix": 2, "2.1": 3, "3.0": 3,
    "quad": 4, "4.0": 4, "5.0": 5, "5.1": 6, "7.1": 8,
}  # fmt: skip
_UNREADABLE = ("Invalid data found", "moov atom not found", "Error opening input")


def probe(path: str | os.PathLike[str]) -> StreamInfo:
    """Read stream information of ``path`` from ``ffmpeg -i`` (ffprobe is not available)."""
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p}: file does not exist")
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(p)], capture_output=True, text=True
    )
    text = proc.stderr
    if any(marker in text for marker in _UNREADABLE):
        raise MediaError(f"{p}: not a readable media file (truncated or corrupt)")
    dur = None
    m = _DURATION.search(text)
    if m:
        h, mi, s = m.groups()
        dur = int(h) * 3600 + int(mi) * 60 + float(s)
    v = _VIDEO.search(text)
    fps = None
    if v:
        end = text.find("\n", v.start())
        line = text[v.start() : end if end >= 0 else len(text)]
        f = _FPS.search(line)
        fps = float(f.group(1)) if f else None
    a = _AUDIO.search(text)
    channels = None
    if a:
        layout = a.group(2).strip()
        channels = _LAYOUT_CHANNELS.get(layout.split("(")[0])
        if channels is None:
            m2 = re.match(r"(\d+) channels", layout)
            channels = int(m2.group(1)) if m2 else None
    return StreamInfo(
        duration=dur,
        has_video=v is not None,
        has_audio=a is not None,
        fps=fps,
        width=int(v.group(1)) if v else None,
        height=int(v.group(2)) if v else None,
        sample_rate=int(a.group(1)) if a else None,
        channels=channels,
    )
