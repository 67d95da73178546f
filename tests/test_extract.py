"""Tests of the extract stage on small media made with ffmpeg's lavfi sources (no network)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from avsep.core.io import STATUS_FAILED, STATUS_OK, write_parquet
from avsep.data.prepare.decode import ExtractConfig, ExtractError, _decode_error, extract_clip
from avsep.data.prepare.extract import extract_dataset
from avsep.data.prepare.media import MediaError, run_ffmpeg
from avsep.data.prepare.readers import list_frames, load_audio, load_frame

SR = 11025
FPS = 8.0
SIZE = 64
DUR = 7.0
CFG = ExtractConfig(sample_rate=SR, fps=FPS)


# ------------------------------------------------------------------------------------------------
# Media makers
# ------------------------------------------------------------------------------------------------


def _video_src(size: str = f"{SIZE}x{SIZE}") -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc=size={size}:rate=25"]


def _sine(freq: float) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=44100"]


_H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


def make_av(path: Path, freq: float = 440.0, dur: float = DUR, size: str = f"{SIZE}x{SIZE}") -> Path:
    """An mp4 with a test pattern and a mono sine."""
    run_ffmpeg([*_video_src(size), *_sine(freq), "-t", str(dur), *_H264, "-c:a", "aac", str(path)], "make")
    return path


def make_stereo(path: Path, left: float = 440.0, right: float = 1000.0) -> Path:
    """An mp4 whose left and right channels carry different tones."""
    graph = "[1:a][2:a]join=inputs=2:channel_layout=stereo[a]"
    args = [*_video_src(), *_sine(left), *_sine(right), "-filter_complex", graph]
    args += ["-map", "0:v", "-map", "[a]"]
    run_ffmpeg([*args, "-t", str(DUR), *_H264, "-c:a", "aac", "-b:a", "128k", str(path)], "make")
    return path


def make_video_only(path: Path) -> Path:
    run_ffmpeg([*_video_src(), "-t", str(DUR), *_H264, str(path)], "make")
    return path


def make_audio_only(path: Path) -> Path:
    run_ffmpeg([*_sine(440), "-t", str(DUR), "-c:a", "aac", str(path)], "make")
    return path


def make_silent(path: Path) -> Path:
    silence = ["-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono"]
    run_ffmpeg([*_video_src(), *silence, "-t", str(DUR), *_H264, "-c:a", "aac", str(path)], "make")
    return path


def make_truncated(path: Path, src: Path) -> Path:
    data = src.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def dominant_freq(x: np.ndarray, sr: int) -> float:
    """Frequency (Hz) of the FFT magnitude peak of a 1-D signal."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1.0 / sr)[int(np.argmax(spec))])


# ------------------------------------------------------------------------------------------------
# Fixtures: one raw manifest of good and bad clips, extracted once (mono) for most tests
# ------------------------------------------------------------------------------------------------

#: id -> the reason (substring) it must fail with; ids not listed must succeed.
EXPECTED_FAILURES = {
    "noaudio": "no audio stream",
    "audioonly": "no video stream",
    "truncated": "truncated or corrupt",
    "truncated_faststart": "truncated or corrupt",
    "short": "too short: 33075 samples < 65535",
    "silent": "silent audio",
    "missing": "does not exist",
    "prefailed": "download failed: HTTP 404",
}


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("raw")
    v = d / "videos"
    v.mkdir()
    good = make_av(v / "good.mp4")
    make_av(v / "good2.mp4", freq=660.0)
    make_av(v / "wide.mp4", size="96x54")
    make_stereo(v / "stereo.mp4")
    make_video_only(v / "noaudio.mp4")
    make_audio_only(v / "audioonly.m4a")
    make_truncated(v / "truncated.mp4", good)  # moov atom at the end: the file does not even open
    faststart = v / "faststart.mp4"
    args = [*_video_src(), *_sine(440), "-t", str(DUR), *_H264, "-movflags", "+faststart", str(faststart)]
    run_ffmpeg(args, "make")
    make_truncated(v / "truncated_faststart.mp4", faststart)  # opens fine, the media data is cut off
    make_av(v / "short.mp4", dur=3.0)
    make_silent(v / "silent.mp4")
    rows = [
        ("good", "ok", "", "violin", "train", "videos/good.mp4"),
        ("good2", "ok", "", "flute", "val", "videos/good2.mp4"),
        ("noaudio", "ok", "", "violin", "train", "videos/noaudio.mp4"),
        ("audioonly", "ok", "", "violin", "train", "videos/audioonly.m4a"),
        ("truncated", "ok", "", "violin", "test", "videos/truncated.mp4"),
        ("truncated_faststart", "ok", "", "violin", "test", "videos/truncated_faststart.mp4"),
        ("short", "ok", "", "flute", "train", "videos/short.mp4"),
        ("silent", "ok", "", "flute", "train", "videos/silent.mp4"),
        ("missing", "ok", "", "flute", "train", "videos/missing.mp4"),
        ("prefailed", "failed", "download failed: HTTP 404", "flute", "train", None),
    ]
    df = pd.DataFrame(rows, columns=["id", "status", "reason", "label", "split", "path"])
    df["youtube_id"] = [f"yt_{r[0]}" for r in rows]  # an extra column that must be carried over
    write_parquet(df.iloc[::-1].reset_index(drop=True), d / "manifest.parquet")  # unsorted on purpose
    binaural = pd.DataFrame(
        [
            ("stereo", "ok", "", "duet", "train", "videos/stereo.mp4"),
            ("mono", "ok", "", "duet", "train", "videos/good.mp4"),
        ],
        columns=["id", "status", "reason", "label", "split", "path"],
    )
    write_parquet(binaural, d / "binaural.parquet")
    return d


@pytest.fixture(scope="module")
def extracted(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("extract")
    df = extract_dataset(raw_dir / "manifest.parquet", out, CFG, progress=False)
    return out, df


def _row(df: pd.DataFrame, rid: str) -> pd.Series:
    return df.set_index("id").loc[rid]


# ------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------


def test_manifest_contract(extracted: tuple[Path, pd.DataFrame]) -> None:
    out, df = extracted
    on_disk = pd.read_parquet(out / "manifest.parquet")
    pd.testing.assert_frame_equal(on_disk, df)
    assert list(df.columns[:5]) == ["id", "status", "reason", "label", "split"]
    for col in ("path", "youtube_id", "audio", "frames", "n_samples", "n_frames", "duration", "channels"):
        assert col in df.columns
    assert list(df["id"]) == sorted(df["id"])
    assert _row(df, "prefailed")["youtube_id"] == "yt_prefailed"


def test_good_clip_audio(extracted: tuple[Path, pd.DataFrame]) -> None:
    out, df = extracted
    row = _row(df, "good")
    assert row["status"] == STATUS_OK and row["audio"] == "audio/good.wav"
    info = sf.info(str(out / row["audio"]))
    assert info.samplerate == SR and info.channels == 1 and info.subtype == "PCM_16"
    assert abs(info.frames - DUR * SR) <= 0.02 * SR  # aac priming/padding: a few ms at most
    assert row["n_samples"] == info.frames and row["channels"] == 1
    assert row["duration"] == pytest.approx(DUR, abs=0.02)
    x = load_audio(out / row["audio"], SR)
    assert x.dtype == np.float32 and x.shape == (1, info.frames)
    assert dominant_freq(x[0], SR) == pytest.approx(440.0, abs=2.0)
    x2 = load_audio(out / _row(df, "good2")["audio"], SR)
    assert dominant_freq(x2[0], SR) == pytest.approx(660.0, abs=2.0)


def test_good_clip_frames(extracted: tuple[Path, pd.DataFrame]) -> None:
    out, df = extracted
    row = _row(df, "good")
    frames = list_frames(out / row["frames"])
    assert abs(len(frames) - DUR * FPS) <= 1 and row["n_frames"] == len(frames)
    assert [p.name for p in frames[:2]] == ["000001.jpg", "000002.jpg"]
    with Image.open(frames[0]) as im:
        assert im.format == "JPEG" and im.size == (SIZE, SIZE)
    assert (row["width"], row["height"]) == (SIZE, SIZE)
    img = load_frame(frames[0])
    assert img.dtype == np.uint8 and img.shape == (SIZE, SIZE, 3) and img.std() > 10  # not blank
    assert load_frame(frames[0], size=32).shape == (32, 32, 3)


@pytest.mark.parametrize("rid", sorted(EXPECTED_FAILURES))
def test_failures_have_reasons_and_no_output(extracted: tuple[Path, pd.DataFrame], rid: str) -> None:
    out, df = extracted
    row = _row(df, rid)
    assert row["status"] == STATUS_FAILED
    assert EXPECTED_FAILURES[rid] in row["reason"]
    assert pd.isna(row["audio"]) and pd.isna(row["frames"]) and pd.isna(row["n_samples"])
    assert not (out / "audio" / f"{rid}.wav").exists()
    assert not (out / "frames" / rid).exists()


def test_no_temporaries_left(extracted: tuple[Path, pd.DataFrame]) -> None:
    out, df = extracted
    assert set(df.loc[df["status"] == STATUS_OK, "id"]) == {"good", "good2"}
    assert sorted(p.name for p in (out / "audio").iterdir()) == ["good.wav", "good2.wav"]
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["good", "good2"]


def _mtimes(out: Path) -> dict[str, int]:
    paths = [*out.glob("audio/**/*"), *out.glob("frames/**/*"), out / "frames" / "good"]
    paths.append(out / "extract_config.json")
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in paths}


def test_the_reason_of_a_decode_error_does_not_depend_on_the_order_of_ffmpegs_log_lines() -> None:
    # ffmpeg's demuxer and decoder log from their own threads: the same file gives these lines in either order
    demux = "[in#0/mov,mp4,m4a,3gp,3g2,mj2 @ 0x557fc7463500] stream 1, offset 0xe2bc: partial file"
    dec = "[aist#0:1/aac @ 0x55d2429e9500] Error submitting packet to decoder: Invalid data found when processing input"
    first, second = _decode_error(f"{demux}\n{dec}\n"), _decode_error(f"{dec}\n{demux}\n")
    assert first == second == "stream 1, offset 0xe2bc: partial file"
    assert _decode_error(dec) == "Error submitting packet to decoder: Invalid data found when processing input"
    assert _decode_error("frame= 10 fps=0.0\n") is None


def test_rerun_is_noop(
    raw_dir: Path, extracted: tuple[Path, pd.DataFrame], capsys: pytest.CaptureFixture[str]
) -> None:
    out, df = extracted
    before = _mtimes(out)
    again = extract_dataset(raw_dir / "manifest.parquet", out, CFG, progress=False)
    pd.testing.assert_frame_equal(again, df)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "manifest.parquet"), df)
    assert _mtimes(out) == before
    assert "extract: ok=2 failed=8" in capsys.readouterr().out


def test_binaural(raw_dir: Path, tmp_path: Path) -> None:
    cfg = ExtractConfig(channels=2)
    df = extract_dataset(raw_dir / "binaural.parquet", tmp_path, cfg, progress=False, workers=1)
    mono = _row(df, "mono")
    assert mono["status"] == STATUS_FAILED
    assert mono["reason"] == "mono audio where binaural (2-channel) is expected"
    stereo = _row(df, "stereo")
    assert stereo["status"] == STATUS_OK and stereo["channels"] == 2
    x = load_audio(tmp_path / stereo["audio"], SR)
    assert x.shape[0] == 2
    assert dominant_freq(x[0], SR) == pytest.approx(440.0, abs=2.0)
    assert dominant_freq(x[1], SR) == pytest.approx(1000.0, abs=2.0)


def test_frame_size_scales_short_side(raw_dir: Path, tmp_path: Path) -> None:
    cfg = ExtractConfig(frame_size=32, fps=4.0)
    info = extract_clip(raw_dir / "videos" / "wide.mp4", tmp_path / "a.wav", tmp_path / "f", cfg)
    assert (info["width"], info["height"]) == (57, 32)  # 96x54 -> short side 32, aspect kept
    assert abs(info["n_frames"] - DUR * 4) <= 1
    info = extract_clip(raw_dir / "videos" / "good.mp4", tmp_path / "b.wav", tmp_path / "g", cfg)
    assert (info["width"], info["height"]) == (32, 32)


def test_extract_clip_error_names_file(raw_dir: Path, tmp_path: Path) -> None:
    video = raw_dir / "videos" / "silent.mp4"
    with pytest.raises(ExtractError, match="silent audio") as exc:
        extract_clip(video, tmp_path / "a.wav", tmp_path / "f", ExtractConfig())
    assert isinstance(exc.value, MediaError) and str(video) in str(exc.value)
    assert list(tmp_path.iterdir()) == []  # nothing partial, not even temporaries


def test_config_change_redoes_outputs(raw_dir: Path, tmp_path: Path) -> None:
    raw = pd.read_parquet(raw_dir / "manifest.parquet")
    raw = raw[raw["id"] == "good"].copy()
    raw["path"] = [str(raw_dir / p) for p in raw["path"]]  # absolute paths work too
    write_parquet(raw, tmp_path / "raw.parquet")
    out = tmp_path / "out"
    df = extract_dataset(tmp_path / "raw.parquet", out, ExtractConfig(fps=8.0), progress=False)
    assert abs(_row(df, "good")["n_frames"] - 56) <= 1
    df = extract_dataset(tmp_path / "raw.parquet", out, ExtractConfig(fps=4.0), progress=False)
    assert abs(_row(df, "good")["n_frames"] - 28) <= 1
    assert abs(len(list_frames(out / "frames" / "good")) - 28) <= 1


def test_load_audio_rate_mismatch(extracted: tuple[Path, pd.DataFrame]) -> None:
    out, _ = extracted
    with pytest.raises(MediaError, match=r"good\.wav.*16000"):
        load_audio(out / "audio" / "good.wav", 16000)


def test_resume_after_interruption(raw_dir: Path, tmp_path: Path) -> None:
    raw = pd.read_parquet(raw_dir / "manifest.parquet")
    raw = raw[raw["id"].isin(["good", "good2"])].copy()
    raw["path"] = [str(raw_dir / p) for p in raw["path"]]
    write_parquet(raw, tmp_path / "raw.parquet")
    out = tmp_path / "out"
    first = extract_dataset(tmp_path / "raw.parquet", out, ExtractConfig(), progress=False)
    # A run killed mid-clip: one output missing, temporaries lying around.
    shutil.rmtree(out / "frames" / "good2")
    (out / "audio" / ".good2.abc123.tmp.wav").write_bytes(b"partial")
    (out / "frames" / ".good2.xyz.tmp").mkdir()
    good_wav_mtime = (out / "audio" / "good.wav").stat().st_mtime_ns
    again = extract_dataset(tmp_path / "raw.parquet", out, ExtractConfig(), progress=False)
    pd.testing.assert_frame_equal(again, first)
    assert (out / "audio" / "good.wav").stat().st_mtime_ns == good_wav_mtime  # complete clip reused
    assert len(list_frames(out / "frames" / "good2")) == _row(first, "good2")["n_frames"]  # redone
    assert sorted(p.name for p in (out / "audio").iterdir()) == ["good.wav", "good2.wav"]
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["good", "good2"]
