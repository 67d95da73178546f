"""Extract stage: decode every downloaded/rendered clip into a wav and a directory of JPEG frames.

Input is a "raw" manifest (parquet; columns at least ``id, status, reason, label, split, path`` where
``path`` is the video relative to the manifest's directory). An optional column ``audio_path`` names a
separate sound file (FAIR-Play's binaural wavs): where it is set, the audio comes from it and only the
frames from the video. Output, under ``out_dir``::

    audio/{id}.wav          PCM 16-bit, ``cfg.sample_rate`` Hz, ``cfg.channels`` channels
    frames/{id}/000001.jpg  JPEG frames sampled at ``cfg.fps`` (numbered from 1)
    manifest.parquet        one row per raw row (see :data:`OUTPUT_COLUMNS`), sorted by id
    extract_config.json     the output-shaping part of the config the outputs were made with

One ffmpeg call per clip writes both outputs into temporary locations beside their destinations; they are
validated (length, silence, frame count) and only then renamed into place, so a clip has either both
outputs or none. A failing clip becomes a ``failed`` row with a specific reason and the run goes on.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from PIL import Image

from avsep.io import (
    STATUS_FAILED,
    STATUS_OK,
    atomic_dir,
    atomic_path,
    read_manifest,
    status_counts,
    write_json,
    write_parquet,
)
from avsep.media import MediaError, StreamInfo, probe, run_ffmpeg
from avsep.progress import progress as progress_bar

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
FRAME_PATTERN = "%06d.jpg"
#: Peak amplitude (full scale = 1.0) below which a clip counts as silent.
SILENCE_PEAK = 1e-4
#: ffmpeg stderr lines (at -loglevel error) that mean the input is truncated or corrupt even when
#: ffmpeg itself exits 0 (e.g. an mp4 with its moov atom up front but the media data cut off).
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


# --------------------------------------------------------------------------------------------------
# One clip
# --------------------------------------------------------------------------------------------------


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
    width, height = _image_size(Path(frames_out) / frames[0].name)
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
    for line in proc.stderr.splitlines():
        if any(marker in line for marker in _DECODE_ERRORS):
            raise ExtractError(video, f"truncated or corrupt file ({_clean(line)})")


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


def _image_size(path: Path) -> tuple[int, int]:
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


# --------------------------------------------------------------------------------------------------
# Readers for later stages
# --------------------------------------------------------------------------------------------------


def load_audio(path: str | Path, expected_sr: int) -> np.ndarray:
    """Read a wav as float32 of shape ``(channels, n)`` in [-1, 1].

    Raises:
        MediaError: the file is missing/unreadable or its rate is not ``expected_sr`` (names the file).
    """
    p = Path(path)
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, sf.LibsndfileError) as e:
        raise MediaError(f"{p}: cannot read audio ({e})") from None
    if sr != expected_sr:
        raise MediaError(f"{p}: sample rate is {sr} Hz, expected {expected_sr} Hz (re-run extract?)")
    return np.ascontiguousarray(data.T)


def list_frames(frames_dir: str | Path) -> list[Path]:
    """The JPEG frames of a clip's frame directory, in temporal order (empty if there are none)."""
    d = Path(frames_dir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.suffix == ".jpg" and not p.name.startswith("."))


def load_frame(path: str | Path, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Read a frame as uint8 RGB of shape ``(H, W, 3)``.

    ``size`` resizes it (bilinear): an int gives ``size`` x ``size``, a tuple is ``(width, height)``.
    """
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        if size is not None:
            wh = (size, size) if isinstance(size, int) else tuple(size)
            rgb = rgb.resize(wh, Image.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)


# --------------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------------


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
    width, height = _image_size(frames[0])
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
