"""Tests of the embedded synthetic datasets: real mp4s, manifests, boxes, audio and binaural rendering."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avsep.data.prepare import spatial
from avsep.data.prepare.instruments import DATASET_CLASSES, INSTRUMENTS, appearance_key, get_instrument
from avsep.data.prepare.media import ffmpeg_exe, probe
from avsep.data.prepare.synth import BOX_COLUMNS, MANIFEST_COLUMNS, SynthConfig, generate_dataset, plan_clips
from avsep.data.prepare.synth_audio import render_clip_audio, window_rms

TINY = SynthConfig(
    name="tiny", classes=("tuba", "xylophone"), clips_per_class={"train": 1, "test": 1}, clip_seconds=3.0, seed=7
)
BINAURAL = SynthConfig(
    name="tinybin", classes=("violin",), clips_per_class={"train": 3}, clip_seconds=3.0, binaural=True, seed=3
)


# --- helpers ------------------------------------------------------------------------------------------


def ffmpeg_info(path: Path) -> str:
    """The stream description ``ffmpeg -i`` prints (to read codec names, which probe() omits)."""
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


def decode_audio(path: Path, channels: int) -> np.ndarray:
    """Decoded audio as float32 ``(channels, n)`` at the file's own rate."""
    out = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "f32le", "-acodec", "pcm_f32le", "-"],
        capture_output=True, check=True,
    ).stdout
    return np.frombuffer(out, dtype="<f4").reshape(-1, channels).T


def decode_frames(path: Path, size: int) -> np.ndarray:
    """Decoded frames as uint8 ``(T, size, size, 3)``."""
    out = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout
    return np.frombuffer(out, dtype=np.uint8).reshape(-1, size, size, 3)


def spectral_centroid(x: np.ndarray, sample_rate: int) -> float:
    mag = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(x.shape[-1], 1.0 / sample_rate)
    return float((mag * freqs).sum() / mag.sum())


def xcorr_lag(left: np.ndarray, right: np.ndarray) -> int:
    """Lag (samples) maximising sum(left[n] * right[n - lag]); positive when the right channel leads."""
    n = left.shape[0]
    nfft = 2 * n
    cc = np.fft.irfft(np.fft.rfft(left, nfft) * np.conj(np.fft.rfft(right, nfft)), nfft)
    lag = int(np.argmax(cc))
    return lag - nfft if lag > nfft // 2 else lag


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pd.DataFrame]:
    """The tiny dataset rendered twice into two directories: in this process, then in 2 worker processes."""
    a, b = tmp_path_factory.mktemp("synth_a"), tmp_path_factory.mktemp("synth_b")
    manifest = generate_dataset(TINY, a, progress=False)
    generate_dataset(TINY, b, progress=False, workers=2)
    return a, b, manifest


@pytest.fixture(scope="module")
def binaural_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("synth_bin")
    return out, generate_dataset(BINAURAL, out, progress=False)


# --- registry and config ------------------------------------------------------------------------------


def test_registry_covers_datasets() -> None:
    assert len(DATASET_CLASSES["synth-music"]) == 11
    assert len(DATASET_CLASSES["synth-music21"]) == 21
    assert set(DATASET_CLASSES["synth-music"]) <= set(DATASET_CLASSES["synth-music21"])
    assert len(DATASET_CLASSES["synth-sounds"]) >= 8
    assert 3 <= len(DATASET_CLASSES["synth-fairplay"]) <= 8
    keys = [appearance_key(s) for s in INSTRUMENTS.values()]
    assert len(set(keys)) == len(keys)
    music = [get_instrument(n).appearance for n in DATASET_CLASSES["synth-music"]]
    assert len({a.color for a in music}) == 11 and len({a.shape for a in music}) == 11
    assert get_instrument("drum").percussion and get_instrument("drum").drum_notes


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        SynthConfig(name="bad name", classes=("tuba",))
    with pytest.raises(KeyError):
        SynthConfig(name="x", classes=("theremin",))
    with pytest.raises(ValueError):
        SynthConfig(name="x", classes=("tuba",), frame_size=127)


# --- files, manifest, streams -------------------------------------------------------------------------


def test_files_and_manifest(tiny_runs: tuple[Path, Path, pd.DataFrame]) -> None:
    out, _, manifest = tiny_runs
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    assert len(manifest) == 4
    assert (manifest["status"] == "ok").all() and (manifest["reason"] == "").all()
    assert sorted(manifest["split"].unique()) == ["test", "train"]
    assert sorted(manifest["label"].unique()) == ["tuba", "xylophone"]
    for row in manifest.itertuples():
        assert re.fullmatch(r"[A-Za-z0-9_-]+", row.id)
        assert row.id == f"tiny-{row.label}-{row.split}-{row.index:03d}"
        assert row.path == f"videos/{row.id}.mp4" and (out / row.path).is_file()
        assert row.duration == pytest.approx(3.0)
    on_disk = pd.read_parquet(out / "manifest.parquet")
    pd.testing.assert_frame_equal(on_disk, manifest)
    assert not list(out.rglob(".*tmp*")), "temporary files left behind"


def test_streams(tiny_runs: tuple[Path, Path, pd.DataFrame]) -> None:
    out, _, manifest = tiny_runs
    for path in manifest["path"]:
        info = probe(out / path)
        assert info.has_video and info.has_audio
        assert info.fps == pytest.approx(TINY.video_fps)
        assert (info.width, info.height) == (TINY.frame_size, TINY.frame_size)
        assert info.sample_rate == TINY.sample_rate and info.channels == 1
        assert info.duration == pytest.approx(3.0, abs=0.1)
        text = ffmpeg_info(out / path)
        assert "Video: h264" in text and "yuv420p" in text and "Audio: aac" in text
        assert decode_frames(out / path, TINY.frame_size).shape[0] == TINY.n_frames


# --- determinism ---------------------------------------------------------------------------------------


def test_deterministic(tiny_runs: tuple[Path, Path, pd.DataFrame]) -> None:
    """Same bytes from a second run, whether clips render in this process or in worker processes."""
    a, b, _ = tiny_runs
    pd.testing.assert_frame_equal(pd.read_parquet(a / "manifest.parquet"), pd.read_parquet(b / "manifest.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(a / "boxes.parquet"), pd.read_parquet(b / "boxes.parquet"))
    for f in sorted((a / "videos").glob("*.mp4")):
        assert np.array_equal(decode_audio(f, 1), decode_audio(b / "videos" / f.name, 1))
        assert f.read_bytes() == (b / "videos" / f.name).read_bytes(), "mp4 bytes differ between runs"


def test_audio_independent_of_render_history() -> None:
    plans = plan_clips(TINY)
    azimuth = [0.0]
    first, _ = render_clip_audio(TINY, plans[0], azimuth)
    render_clip_audio(TINY, plans[-1], azimuth)  # another class in between
    again, _ = render_clip_audio(TINY, plans[0], azimuth)
    assert np.array_equal(first, again)
    other = SynthConfig(name="tiny", classes=TINY.classes, clips_per_class=TINY.clips_per_class,
                        clip_seconds=3.0, seed=8)
    assert not np.array_equal(first, render_clip_audio(other, plan_clips(other)[0], azimuth)[0])


# --- boxes and pixels ----------------------------------------------------------------------------------


def test_boxes(tiny_runs: tuple[Path, Path, pd.DataFrame]) -> None:
    out, _, manifest = tiny_runs
    boxes = pd.read_parquet(out / "boxes.parquet")
    assert list(boxes.columns) == list(BOX_COLUMNS)
    assert len(boxes) == len(manifest) * TINY.n_frames
    coords = boxes[["x1", "y1", "x2", "y2", "cx", "cy"]].to_numpy()
    assert ((coords >= 0) & (coords <= 1)).all()
    assert (boxes["x2"] > boxes["x1"]).all() and (boxes["y2"] > boxes["y1"]).all()
    np.testing.assert_allclose(boxes["time"], boxes["frame"] / TINY.video_fps)
    width = boxes["x2"] - boxes["x1"]
    assert width.between(0.15, 0.5).all()
    for row in manifest.itertuples():
        assert row.position_x == pytest.approx(boxes.loc[boxes["id"] == row.id, "cx"].mean())


@pytest.mark.parametrize("frame", [0, 30])
def test_object_colour_is_inside_box(tiny_runs: tuple[Path, Path, pd.DataFrame], frame: int) -> None:
    out, _, manifest = tiny_runs
    boxes = pd.read_parquet(out / "boxes.parquet")
    S = TINY.frame_size
    for row in manifest.itertuples():
        img = decode_frames(out / row.path, S)[frame].astype(np.int32)
        colour = np.array(get_instrument(row.label).appearance.color)
        near = np.abs(img - colour).max(axis=2) < 40
        b = boxes[(boxes["id"] == row.id) & (boxes["frame"] == frame)].iloc[0]
        x1, y1, x2, y2 = (int(round(v * S)) for v in (b.x1, b.y1, b.x2, b.y2))
        inside = np.zeros((S, S), dtype=bool)
        inside[y1:y2, x1:x2] = True
        assert near[inside].mean() > 0.3, f"{row.id}: class colour missing inside its box"
        assert near[~inside].mean() < 0.01, f"{row.id}: class colour found outside its box"


# --- audio content --------------------------------------------------------------------------------------


def test_audio_active_and_normalised(tiny_runs: tuple[Path, Path, pd.DataFrame]) -> None:
    out, _, manifest = tiny_runs
    for row in manifest.itertuples():
        x = decode_audio(out / row.path, 1)[0]
        assert 0.4 < np.abs(x).max() < 1.0
        assert 0.5 <= row.peak <= 0.9
        assert window_rms(x, TINY.sample_rate).min() > 0.005, f"{row.id} has a near-silent second"


def test_classes_sound_different(tiny_runs: tuple[Path, Path, pd.DataFrame]) -> None:
    out, _, manifest = tiny_runs
    centroid = {
        row.label: spectral_centroid(decode_audio(out / row.path, 1)[0], TINY.sample_rate)
        for row in manifest[manifest["split"] == "train"].itertuples()
    }
    assert centroid["xylophone"] > 2.0 * centroid["tuba"], centroid


# --- spatial --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("degrees", [60.0, -35.0, 80.0])
def test_spatialize_itd_and_ild(degrees: float) -> None:
    sr = 22050
    mono = np.random.default_rng(1).standard_normal(sr).astype(np.float32)
    az = math.radians(degrees)
    left, right = spatialize_f64(mono, sr, az)
    near, far = (right, left) if degrees > 0 else (left, right)
    assert (near**2).sum() > 2.0 * (far**2).sum()
    expected = spatial.woodworth_itd(az) * sr
    assert abs(xcorr_lag(left, right) - expected) <= 1.0
    assert np.sign(xcorr_lag(left, right)) == np.sign(degrees)


def spatialize_f64(mono: np.ndarray, sr: int, az: float) -> tuple[np.ndarray, np.ndarray]:
    y = spatial.spatialize(mono, sr, az)
    assert y.shape == (2, mono.shape[0]) and y.dtype == np.float32
    return y[0].astype(np.float64), y[1].astype(np.float64)


def test_spatialize_centre_is_symmetric() -> None:
    mono = np.random.default_rng(2).standard_normal(4000)
    y = spatial.spatialize(mono, 22050, 0.0)
    assert np.array_equal(y[0], y[1])
    assert spatial.woodworth_itd(0.0) == 0.0
    assert spatial.position_to_azimuth(0.0) == pytest.approx(-math.radians(80))
    assert spatial.position_to_azimuth(1.0) == pytest.approx(math.radians(80))


def test_binaural_clips(binaural_run: tuple[Path, pd.DataFrame]) -> None:
    out, manifest = binaural_run
    assert (manifest["channels"] == 2).all() and manifest["binaural"].all()
    # One clip per zone: left, centre, right.
    xs = sorted(manifest["position_x"])
    assert xs[0] < 0.35 and 0.4 < xs[1] < 0.6 and xs[2] > 0.65
    for row in manifest.itertuples():
        assert probe(out / row.path).channels == 2
        assert row.azimuth == pytest.approx(spatial.position_to_azimuth(row.position_x))
        left, right = decode_audio(out / row.path, 2).astype(np.float64)
        ratio_db = 10 * math.log10((right**2).sum() / (left**2).sum())
        if row.position_x > 0.6:
            assert ratio_db > 1.0, ratio_db
        elif row.position_x < 0.4:
            assert ratio_db < -1.0, ratio_db
        else:
            assert abs(ratio_db) < 1.5, ratio_db
