"""Decoding one clip: a video (and optional separate sound file) into a wav and a folder of JPEG frames.

The inputs are probed first (streams, channels), one ffmpeg call writes both outputs into temporary
locations, and the results are validated (rate, channels, length, silence, frame count, truncation
messages) before they are renamed into place; any problem raises :class:`ExtractError` with the short
reason stored in the manifest. The stage loop over a manifest is :mod:`avsep.data.prepare.extract`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from PIL import Image

from avsep.core.io import atomic_dir, atomic_path
from avsep.data.prepare.media import MediaError, StreamInfo, probe, run_ffmpeg
from avsep.data.prepare.readers import list_frames

FRAME_PATTERN = "%06d.jpg"
#: Peak amplitude (full scale = 1.0) below which a clip counts as silent.
SILENCE_PEAK = 1e-4
#: ffmpeg stderr lines (at -loglevel error) that mean the input is truncated or corrupt even when
#: ffmpeg itself exits 0 (e.g. an mp4 with its moov atom up front but the media data cut off); the root
#: cause (the demuxer's short read) first.
_DECODE_ERRORS = ("partial file", "Invalid data found")
#: ffmpeg's "[in#0/mov,mp4 @ 0x55d0c...] " context prefix: a memory address, so never part of a reason.
_FFMPEG_CONTEXT = re.compile(r"\[[^\]]* @ 0x[0-9a-fA-F]+\]\s*")
#: ffmpeg's message for an output none of whose streams got a packet (a video stream with no
#: decodable frame, e.g. its only keyframe missing).
_NO_PACKETS = "received no packets"


class ExtractError(MediaError):
    """A clip could not be extracted. ``reason`` is the short cause stored in the manifest."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass(frozen=True)
class ExtractConfig:
    """How clips are decoded.

    Attributes:
        sample_rate: rate of the written wav (Hz).
        channels: channels of the written wav: 1 (a stereo source is downmixed) or 2 for binaural data
            (a mono source is then an error, never upmixed).
        fps: frame sampling rate (frames per second of the source's timeline).
        frame_size: if set, frames are scaled so that their *short* side is ``frame_size`` pixels, keeping
            the aspect ratio (a square source becomes exactly ``frame_size`` x ``frame_size``); if None
            frames keep the source's size.
        min_samples: clips whose decoded audio has fewer samples fail ("too short").
        jpeg_quality: ffmpeg ``-q:v`` of the JPEG frames (2 = best practical quality, 31 = worst).
    """

    sample_rate: int = 11025
    channels: int = 1
    fps: float = 8.0
    frame_size: int | None = None
    min_samples: int = 65535
    jpeg_quality: int = 2

    def __post_init__(self) -> None:
        if self.channels not in (1, 2):
            raise ValueError(f"ExtractConfig.channels must be 1 or 2, not {self.channels}")
        if self.sample_rate <= 0 or self.fps <= 0:
            raise ValueError("ExtractConfig.sample_rate and fps must be positive")
        if self.frame_size is not None and self.frame_size < 2:
            raise ValueError(f"ExtractConfig.frame_size must be >= 2, not {self.frame_size}")

    def output_stamp(self) -> dict[str, Any]:
        """The settings that shape the written files (min_samples only decides ok/failed)."""
        stamp = asdict(self)
        stamp.pop("min_samples")
        return stamp


def extract_clip(
    video: Path, wav_out: Path, frames_out: Path, cfg: ExtractConfig, audio: Path | None = None
) -> dict[str, Any]:
    """Decode ``video`` into ``wav_out`` (PCM 16-bit) and ``frames_out/000001.jpg, ...``.

    With ``audio`` (a separate sound file, e.g. FAIR-Play's binaural wav) the audio is decoded from it
    and the video only gives the frames.

    Both outputs are written atomically: on any error neither is created (existing ones are left as
    they were). Returns ``n_samples, n_frames, duration, sample_rate, channels, width, height``.

    Raises:
        ExtractError: file missing, unreadable (truncated/corrupt), no audio or no video stream, audio
            with fewer channels than ``cfg.channels``, audio shorter than ``cfg.min_samples``, silent
            audio, or no frame decoded. The message names the file.
    """
    video = Path(video)
    if audio is None:
        _check_streams(video, cfg)
    else:
        audio = Path(audio)
        _check_streams(video, cfg, need_audio=False)
        _check_streams(audio, cfg, need_video=False)
    with atomic_path(wav_out) as tmp_wav, atomic_dir(frames_out) as tmp_frames:
        _run_ffmpeg_checked(video, _ffmpeg_args(video, tmp_wav, tmp_frames, cfg, audio))
        n_samples = _check_audio(video, tmp_wav, cfg)
        frames = _check_frames(video, tmp_frames)
    width, height = image_size(Path(frames_out) / frames[0].name)
    return {
        "n_samples": n_samples,
        "n_frames": len(frames),
        "duration": n_samples / cfg.sample_rate,
        "sample_rate": cfg.sample_rate,
        "channels": cfg.channels,
        "width": width,
        "height": height,
    }


def _check_streams(video: Path, cfg: ExtractConfig, need_audio: bool = True, need_video: bool = True) -> StreamInfo:
    """Probe ``video`` and reject what cannot give a valid clip before decoding anything."""
    try:
        info = probe(video)
    except MediaError as e:
        raise ExtractError(video, _strip_path(str(e), video)) from None
    if need_audio and not info.has_audio:
        raise ExtractError(video, "no audio stream")
    if need_video and not info.has_video:
        raise ExtractError(video, "no video stream (0 frames)")
    if need_audio and info.channels is not None and info.channels < cfg.channels:
        if info.channels == 1 and cfg.channels == 2:
            raise ExtractError(video, "mono audio where binaural (2-channel) is expected")
        raise ExtractError(video, f"{info.channels}-channel audio where {cfg.channels} channels are expected")
    return info


def _ffmpeg_args(
    video: Path, wav: Path, frames_dir: Path, cfg: ExtractConfig, audio: Path | None = None
) -> list[str]:
    """One ffmpeg invocation, two outputs: the first audio stream as wav, the first video stream as JPEGs.

    The audio stream is the video's own, or the first one of ``audio`` when it is given.

    ``-bitexact`` and ``-map_metadata -1`` keep the encoder version out of the files so they are
    byte-stable across ffmpeg builds.
    """
    vf = f"fps={cfg.fps:g}"
    if cfg.frame_size is not None:
        s = cfg.frame_size
        # Short side -> s, long side keeps the aspect (-1); a square source gives exactly s x s.
        vf += f",scale=w='if(lte(iw,ih),{s},-1)':h='if(lte(iw,ih),-1,{s})'"
    vf += ",setsar=1"
    inputs = ["-i", str(video)] + (["-i", str(audio)] if audio is not None else [])
    return [
        *inputs,
        # audio
        "-map", "1:a:0" if audio is not None else "0:a:0", "-vn", "-sn", "-dn",
        "-ac", str(cfg.channels), "-ar", str(cfg.sample_rate), "-c:a", "pcm_s16le",
        "-map_metadata", "-1", "-bitexact", "-f", "wav", str(wav),
        # frames
        "-map", "0:v:0", "-an", "-sn", "-dn",
        "-vf", vf, "-c:v", "mjpeg", "-q:v", str(cfg.jpeg_quality),
        "-map_metadata", "-1", "-bitexact", "-start_number", "1",
        "-f", "image2", str(Path(frames_dir) / FRAME_PATTERN),
    ]  # fmt: skip


def _run_ffmpeg_checked(video: Path, args: list[str]) -> None:
    """Run ffmpeg; a non-zero exit or a decode error on stderr (truncation) raises ExtractError."""
    try:
        proc = run_ffmpeg(args, what=str(video))
    except MediaError as e:
        msg = str(e)
        if _NO_PACKETS in msg and "/image2 @" in msg:  # the frames output (ffmpeg's out#1) got nothing
            raise ExtractError(video, "no video frames decoded (0 frames)") from None
        raise ExtractError(video, _strip_path(msg, video)) from None
    reason = _decode_error(proc.stderr)
    if reason is not None:
        raise ExtractError(video, f"truncated or corrupt file ({reason})")


def _decode_error(stderr: str) -> str | None:
    """The decode error ffmpeg reported, if any: the first line with the first marker of :data:`_DECODE_ERRORS`
    that occurs. ffmpeg's demuxer and decoders log from their own threads, so the order of their lines varies
    from run to run; choosing by marker (the demuxer's "partial file" before a decoder's "Invalid data") keeps
    the reason, and so the manifest, the same on every run."""
    lines = stderr.splitlines()
    for marker in _DECODE_ERRORS:
        for line in lines:
            if marker in line:
                return _clean(line)
    return None


def _check_audio(video: Path, wav: Path, cfg: ExtractConfig) -> int:
    """Validate the decoded wav (rate, channels, length, silence); return its number of samples."""
    info = sf.info(str(wav))
    if info.samplerate != cfg.sample_rate or info.channels != cfg.channels:
        got, want = f"{info.channels} ch @ {info.samplerate} Hz", f"{cfg.channels} ch @ {cfg.sample_rate} Hz"
        raise ExtractError(video, f"decoded audio is {got}, not {want}")
    n = int(info.frames)
    if n < cfg.min_samples:
        raise ExtractError(video, f"too short: {n} samples < {cfg.min_samples}")
    data, _ = sf.read(str(wav), dtype="int16", always_2d=True)
    peak = float(np.abs(data.astype(np.int32)).max()) / 32768.0 if data.size else 0.0
    if peak < SILENCE_PEAK:
        raise ExtractError(video, "silent audio")
    return n


def _check_frames(video: Path, frames_dir: Path) -> list[Path]:
    """The decoded frames, sorted; none at all raises ExtractError."""
    frames = list_frames(frames_dir)
    if not frames:
        raise ExtractError(video, "no video frames decoded (0 frames)")
    return frames


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image, read from its header only."""
    with Image.open(path) as im:
        return im.size


def _strip_path(message: str, path: Path) -> str:
    """``"<path>: reason"`` -> ``"reason"`` (the manifest row already identifies the clip)."""
    prefix = f"{path}: "
    return _clean(message.removeprefix(prefix))


def _clean(line: str) -> str:
    """An ffmpeg log line without its run-dependent ``[... @ 0x...]`` prefixes (reasons stay stable)."""
    return _FFMPEG_CONTEXT.sub("", line).strip()
