"""The bad-input corpus (issue #7 item 1): hostile metadata and broken media through the real-data DAG.

A loopback HTTP server (tests/conftest.py blocks every other connection) serves a MUSIC-format dataset
and a FAIR-Play-format dataset made here. Snakemake runs metadata -> clips -> download (checkpoint) ->
extract -> test_mixtures in a temporary copy of the workflow, and every bad item must end as a manifest
row with its own reason while the good items reach the test mixture list (training and evaluation on
those are the same code as on the synthetic data, run end to end by tests/test_workflow_e2e.py).
"""

from __future__ import annotations

import copy
import functools
import http.server
import io
import json
import re
import socket
import tarfile
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from snakemake.utils import update_config
from workflow_helpers import ROOT, copy_workflow, default_params, micro_params, snakemake, write_params

from avsep.config.params import ConfigError, DatasetConfig, Params, validate
from avsep.core.io import STATUS_FAILED, STATUS_OK
from avsep.data.prepare.clip_tables import local_clip_table, vggsound_clip_table
from avsep.data.prepare.fetch import FetchError
from avsep.data.prepare.media import run_ffmpeg
from avsep.data.prepare.metadata_checks import MetadataError
from avsep.data.prepare.sources import _check_local, fetch_metadata

SECONDS = 6.5  # > 65,535 samples at 11,025 Hz (5.94 s)
GOOD_SOLOS = {"violin": ["violinGood1", "violinGood2"], "flute": ["fluteGood01", "fluteGood02"]}
GOOD_DUET = "duetGood001"
GOOD = {*GOOD_SOLOS["violin"], *GOOD_SOLOS["flute"], GOOD_DUET}
SOLO = "MUSIC_solo_videos.json"
#: id -> reason in the raw (download) manifest; these never reach extract.
DOWNLOAD_FAILURES = {
    "truncated01": "corrupt file",
    "noAudio0001": "no audio stream",
    "missing4040": "http 404",  # an unavailable video
    "private4030": "http 403",  # a private one
    "../../etc/x": "invalid id",
    "-oProxyCommand=x": "invalid id",
    f"{SOLO}:videos['cello'][9]": "malformed entry",  # an object with fields of its own
    f"{SOLO}:videos['cello'][10]": "malformed entry",  # null
    f"{SOLO}:videos['tuba']": "malformed entry",  # a label without its list of ids
    "badLabel001": "invalid label",
}
#: id -> reason given by extract (the file arrived but cannot be a clip).
EXTRACT_FAILURES = {
    "zeroFrames1": "no video frames decoded (0 frames)",
    "silentAudio": "silent audio",
    "tooShort001": "too short: 22050 samples < 32767",
}
NEVER_REQUESTED = ("etc", "Proxy", "extraField", "badLabel")
#: FAIR-Play clip -> reason at import ("" = ok).
FAIRPLAY = {
    "000001": "",
    "000002": "",
    "000003": "mono audio where binaural (2-channel) is expected",
    "000004": "wrong sample rate: 16000 Hz, expected 44100 Hz",
    "000005": "missing video: 000005.mp4 is not in the video archive",
    "000006": "missing audio: the split names 000006.wav, which is not in the audio archive",
}


# ------------------------------------------------------------------------------------------------
# The corpus
# ------------------------------------------------------------------------------------------------

_H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "1000", "-sc_threshold", "0"]


def _video(seconds: float = SECONDS) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc=size=32x32:rate=8:duration={seconds}"]


def _tone(freq: float, seconds: float = SECONDS) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=22050:duration={seconds}"]


def make_av(path: Path, freq: float, seconds: float = SECONDS, faststart: bool = False) -> Path:
    flags = ["-movflags", "+faststart"] if faststart else []
    run_ffmpeg([*_video(seconds), *_tone(freq, seconds), *_H264, "-c:a", "aac", *flags, str(path)], "make")
    return path


def make_corpus(root: Path) -> None:
    v = root / "v"
    v.mkdir(parents=True)
    for i, rid in enumerate(sorted(GOOD)):
        make_av(v / f"{rid}.mp4", 300.0 + 110.0 * i)
    full = make_av(root / "faststart.mp4", 500.0, faststart=True)
    data = full.read_bytes()
    (v / "truncated01.mp4").write_bytes(data[: len(data) // 2])  # the index is whole, the media data is cut
    run_ffmpeg([*_video(), *_H264, str(v / "noAudio0001.mp4")], "make")
    src = make_av(root / "keyframe.mp4", 700.0)
    # its only keyframe dropped: the video stream is there but no frame can be decoded
    run_ffmpeg(["-i", str(src), "-map", "0", "-c", "copy", "-bsf:v", "noise=drop=key", str(v / "zeroFrames1.mp4")], "make")
    silence = ["-f", "lavfi", "-i", f"anullsrc=r=22050:cl=mono:duration={SECONDS}"]
    run_ffmpeg([*_video(), *silence, *_H264, "-c:a", "aac", str(v / "silentAudio.mp4")], "make")
    make_av(v / "tooShort001.mp4", 800.0, seconds=2.0)

    meta = root / "meta"
    meta.mkdir()
    cello = [*(k for k in (*DOWNLOAD_FAILURES, *EXTRACT_FAILURES) if re.fullmatch(r"[\w-]{11}", k) and k != "badLabel001")]
    cello += ["../../etc/x", "-oProxyCommand=x"]
    cello += [{"id": "extraField1", "start": 3}, None]
    assert len(cello) == 11  # the malformed entries sit at [9] and [10]
    solo = {"version": 1.0, "videos": {**GOOD_SOLOS, "cello": cello, "../x": ["badLabel001"], "tuba": None}}
    (meta / SOLO).write_text(json.dumps(solo))
    (meta / "MUSIC_duet_videos.json").write_text(json.dumps({"videos": {"flute violin": [GOOD_DUET]}}))
    make_fairplay(root / "fp")


def _wav(seconds: float, rate: int, channels: int) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    x = np.stack([0.3 * np.sin(2 * np.pi * f * t) for f in (440.0, 660.0)[:channels]], axis=1)
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _h5(entries: list[str]) -> bytes:
    h5py = pytest.importorskip("h5py")
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset("audio", data=[f"/home/someone/FAIR-Play/binaural_audios/{e}".encode() for e in entries])
    return buf.getvalue()


def make_fairplay(fp: Path) -> None:
    fp.mkdir()
    video = fp / "video.mp4"
    run_ffmpeg([*_video(), *_H264, str(video)], "make")
    _tar(fp / "videos.tar.gz", {f"videos/{i:06d}.mp4": video.read_bytes() for i in (1, 2, 3, 4)})
    good = _wav(SECONDS, 44100, 2)
    _tar(fp / "audios.tar.gz", {
        "binaural_audios/000001.wav": good,
        "binaural_audios/000002.wav": good,
        "binaural_audios/000003.wav": _wav(SECONDS, 44100, 1),
        "binaural_audios/000004.wav": _wav(SECONDS, 16000, 2),
        "binaural_audios/000005.wav": good,
    })  # fmt: skip
    _tar(fp / "splits.tar.gz", {
        "splits/split1/train.h5": _h5(["000001.wav", "000003.wav", "000004.wav"]),
        "splits/split1/val.h5": _h5(["000005.wav"]),
        "splits/split1/test.h5": _h5(["000002.wav", "000006.wav"]),
        "splits/split2/train.h5": _h5(["000009.wav"]),  # another fold: not read
    })  # fmt: skip


class _Handler(http.server.SimpleHTTPRequestHandler):
    hits: ClassVar[Counter[str]] = Counter()

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        type(self).hits[self.path] += 1
        if self.path.startswith("/v/private"):
            self.send_error(403, "Forbidden")
        else:
            super().do_GET()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Counter[str]]]:
    root = tmp_path_factory.mktemp("www")
    make_corpus(root)
    handler = type("Handler", (_Handler,), {"hits": Counter()})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.hits
    httpd.shutdown()
    httpd.server_close()


def corpus_params(base: str) -> dict:
    p = micro_params()
    p["datasets"] = {
        "bad-music": {
            "source": "music", "binaural": False,
            "metadata": [f"{base}/meta/{SOLO}", f"{base}/meta/MUSIC_duet_videos.json"],
            "url_template": f"{base}/v/{{id}}.mp4",
            "split": {"test_fraction": 0.5},
            "download": {"retries": 0, "socket_timeout": 10, "workers": 2},
        },
        "bad-fairplay": {
            "source": "fairplay", "binaural": True,
            "metadata": [f"{base}/fp/splits.tar.gz"],
            "archives": {"videos": f"{base}/fp/videos.tar.gz", "audios": f"{base}/fp/audios.tar.gz"},
            "fold": 1, "audio_rate": 44100,
            "download": {"retries": 0, "socket_timeout": 10},
        },
    }  # fmt: skip
    for table in p["tables"].values():  # tables must name a defined dataset (nothing here builds them)
        table["dataset"] = "bad-music"
    p.pop("figures", None)  # optional, and nothing here draws them
    p["detect"]["datasets"] = []  # nothing here is detected
    return p


TARGETS = (
    "data/bad-music/test_mixtures.parquet",
    "data/bad-fairplay/extract/manifest.parquet",
)


@pytest.fixture(scope="module")
def dag(server: tuple[str, Counter[str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    base, _ = server
    wd = tmp_path_factory.mktemp("wf")
    copy_workflow(wd)
    write_params(wd, corpus_params(base))
    run = snakemake(wd, *TARGETS)
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    return wd


def _reasons(df: pd.DataFrame) -> dict[str, str]:
    return dict(zip(df["id"], df["reason"], strict=True))


def _log(wd: Path, stage: str, dataset: str) -> str:
    return (wd / "logs" / stage / f"{dataset}.log").read_text()


# ------------------------------------------------------------------------------------------------
# Through the DAG
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_bad_item_is_a_row_with_its_reason(dag: Path) -> None:
    raw = pd.read_parquet(dag / "data/bad-music/raw/manifest.parquet")
    ext = pd.read_parquet(dag / "data/bad-music/extract/manifest.parquet")
    assert sorted(raw["id"]) == sorted([*GOOD, *DOWNLOAD_FAILURES, *EXTRACT_FAILURES])
    failed_raw = raw[raw["status"] == STATUS_FAILED]
    assert _reasons(failed_raw) == DOWNLOAD_FAILURES
    assert set(raw.loc[raw["status"] == STATUS_OK, "id"]) == GOOD | set(EXTRACT_FAILURES)
    # extract carries the download failures over and adds its own
    assert _reasons(ext[ext["status"] == STATUS_FAILED]) == {**DOWNLOAD_FAILURES, **EXTRACT_FAILURES}
    assert set(ext.loc[ext["status"] == STATUS_OK, "id"]) == GOOD
    assert (ext.loc[ext["status"] == STATUS_OK, "n_samples"] >= 65535).all()
    # the split: test solos only, one per solo label; the duet trains
    ok = ext[ext["status"] == STATUS_OK].set_index("id")
    assert ok.loc[GOOD_DUET, "split"] == "train"
    for ids in GOOD_SOLOS.values():
        assert sorted(ok.loc[ids, "split"]) == ["test", "train"]


@pytest.mark.slow
def test_fairplay_import_reasons(dag: Path) -> None:
    raw = pd.read_parquet(dag / "data/bad-fairplay/raw/manifest.parquet")
    ext = pd.read_parquet(dag / "data/bad-fairplay/extract/manifest.parquet")
    assert _reasons(raw) == FAIRPLAY
    assert _reasons(ext) == FAIRPLAY
    good = ext[ext["status"] == STATUS_OK]
    assert sorted(good["id"]) == ["000001", "000002"]
    assert (good["channels"] == 2).all() and (good["sample_rate"] == 11025).all()
    assert dict(zip(raw["id"], raw["split"], strict=True)) == {
        "000001": "train", "000002": "test", "000003": "train", "000004": "train", "000005": "val", "000006": "test",
    }  # fmt: skip
    wav, _ = sf.read(dag / "data/bad-fairplay/extract" / good.iloc[0]["audio"], always_2d=True)
    assert wav.shape[1] == 2 and np.abs(wav[:, 0] - wav[:, 1]).max() > 0.1  # two different ears, not a copy


@pytest.mark.slow
def test_good_items_reach_the_test_mixtures(dag: Path) -> None:
    ext = pd.read_parquet(dag / "data/bad-music/extract/manifest.parquet")
    test_clips = set(ext.loc[(ext["status"] == STATUS_OK) & (ext["split"] == "test"), "id"])
    mixtures = pd.read_parquet(dag / "data/bad-music/test_mixtures.parquet")
    assert len(mixtures) == 4
    assert set(mixtures["clip_0"]) | set(mixtures["clip_1"]) == test_clips  # the good test solos, nothing else
    assert (mixtures["label_0"] != mixtures["label_1"]).all()


@pytest.mark.slow
def test_stage_summaries_print_the_counts(dag: Path) -> None:
    n_rows = len(GOOD) + len(DOWNLOAD_FAILURES) + len(EXTRACT_FAILURES)
    rejected = sum(r in ("invalid id", "malformed entry", "invalid label") for r in DOWNLOAD_FAILURES.values())
    assert "metadata bad-music: ok=2 failed=0" in _log(dag, "metadata", "bad-music")
    assert f"clips bad-music: ok={n_rows - rejected} failed={rejected}" in _log(dag, "clips", "bad-music")
    n_dl_failed = len(DOWNLOAD_FAILURES)
    assert f"download bad-music: ok={n_rows - n_dl_failed} failed={n_dl_failed}" in _log(dag, "download", "bad-music")
    assert f"extract bad-music: ok={len(GOOD)} failed={n_rows - len(GOOD)}" in _log(dag, "extract", "bad-music")
    assert "test_mixtures bad-music: 4 mixtures from ok=2 test clips of 2 labels" in _log(dag, "test_mixtures", "bad-music")
    assert "download bad-fairplay: ok=2 failed=4" in _log(dag, "download", "bad-fairplay")
    assert "extract bad-fairplay: ok=2 failed=4" in _log(dag, "extract", "bad-fairplay")


@pytest.mark.slow
def test_no_partial_file_under_a_final_name(dag: Path, server: tuple[str, Counter[str]]) -> None:
    data = dag / "data"
    leftovers = [p for p in data.rglob("*") if p.name.startswith(".") or p.suffix in (".part", ".ytdl")]
    assert leftovers == []
    raw = pd.read_parquet(data / "bad-music/raw/manifest.parquet")
    ext = pd.read_parquet(data / "bad-music/extract/manifest.parquet")
    ext_ok = set(ext.loc[ext["status"] == STATUS_OK, "id"])
    videos = {p.stem for p in (data / "bad-music/raw/videos").iterdir()}
    assert videos == set(raw.loc[raw["status"] == STATUS_OK, "id"])  # nothing of a failed download
    assert ext_ok == GOOD
    assert {p.stem for p in (data / "bad-music/extract/audio").iterdir()} == ext_ok  # no output of a failed clip
    assert {p.name for p in (data / "bad-music/extract/frames").iterdir()} == ext_ok
    fp = data / "bad-fairplay/extract/audio"
    assert {p.stem for p in fp.iterdir()} == {"000001", "000002"}
    # hostile ids never became a request (nor a path)
    _, hits = server
    assert not [h for h in hits if any(s in h for s in NEVER_REQUESTED)]
    assert hits["/v/violinGood1.mp4"] >= 1 and hits["/v/missing4040.mp4"] >= 1
    assert not list(data.rglob("*etc*")) and not list(data.rglob("*Proxy*"))


@pytest.mark.slow
def test_rerun_has_nothing_to_do(dag: Path) -> None:
    again = snakemake(dag, "-n", *TARGETS)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stdout + again.stderr


# ------------------------------------------------------------------------------------------------
# Parsers and stages without Snakemake (fast)
# ------------------------------------------------------------------------------------------------


def test_vggsound_rows_with_missing_or_extra_fields_are_rows(tmp_path: Path) -> None:
    p = tmp_path / "vggsound.csv"
    p.write_text(
        "aaaaaaaaaaa,1,dog barking,train\n"
        "bbbbbbbbbbb,2,dog barking\n"  # a field missing
        "ccccccccccc,3,cat purring,test,extra\n"  # one too many
        "--exec=rm,4,cat purring,train\n"
        "ddddddddddd,5,../../x,train\n"
        "eeeeeeeeeee,x,cat purring,test\n"
    )
    df = vggsound_clip_table(p)
    assert _reasons(df) == {
        "aaaaaaaaaaa_000001": "",
        "vggsound.csv:line 2": "malformed entry",
        "vggsound.csv:line 3": "malformed entry",
        "vggsound.csv:line 4": "invalid id",
        "vggsound.csv:line 5": "invalid label",
        "vggsound.csv:line 6": "malformed entry",
    }
    assert "expected 4 fields" in df.set_index("id").loc["vggsound.csv:line 3", "error"]
    assert (df.loc[df["reason"] == "", "status"] == STATUS_OK).all()
    p.write_text('aaaaaaaaaaa,1,"dog barking,train\n')  # broken quoting: the file itself is bad
    with pytest.raises(MetadataError, match="malformed CSV"):
        vggsound_clip_table(p)


def test_local_videos(tmp_path: Path) -> None:
    make_av(tmp_path / "mine.mp4", 440.0, seconds=1.0)
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    csv = tmp_path / "clips.csv"
    csv.write_text(
        "id,label,split,path\n"
        "mine,violin,train,mine.mp4\n"
        "gone,violin,test,gone.mp4\n"
        "broken,violin,test,broken.mp4\n"
        "../up,violin,test,mine.mp4\n"
        "odd,violin,holdout,mine.mp4\n"
        "mine,cello,test,mine.mp4\n"  # the same id again: a failed row, not a silently lost one
    )
    raw = _check_local(local_clip_table(csv))
    assert _reasons(raw) == {
        "mine": "", "gone": "missing file", "broken": "corrupt file", "../up": "invalid id", "odd": "malformed entry",
        "clips.csv:line 7": "duplicate id",
    }  # fmt: skip
    dup = raw.set_index("id").loc["clips.csv:line 7"]
    assert "id 'mine' is listed again (first at clips.csv:line 2)" in dup["error"]
    assert raw.set_index("id").loc["mine", "path"] == str(tmp_path / "mine.mp4")


def test_metadata_offline_error_names_the_key_and_the_way_out(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    d = DatasetConfig(
        name="music", source="music", binaural=False, metadata=(f"http://127.0.0.1:{port}/MUSIC_solo_videos.json",),
        download={"retries": 0, "socket_timeout": 2},
    )
    out = tmp_path / "meta" / "metadata.json"
    with pytest.raises(FetchError) as e:
        fetch_metadata(d, out, progress=False)
    msg = str(e.value)
    assert "datasets.music.metadata[0]" in msg and "needs internet access" in msg and "local path" in msg
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_real_dataset_config() -> None:
    base = default_params()
    assert {d["source"] for d in base["datasets"].values()} == {"synth"}  # the default needs no internet
    merged = copy.deepcopy(base)
    update_config(merged, yaml.safe_load((ROOT / "params/paper.yaml").read_text()))  # as --configfile does
    p = Params(merged)
    assert {n: d.source for n, d in p.datasets.items() if not d.synthetic} == {
        "music": "music", "music21": "music21", "vggsound": "vggsound", "fairplay": "fairplay",
    }  # fmt: skip
    assert set(p.datasets) >= set(base["datasets"]) and p.tables["table1"]["dataset"] == "music"
    assert p.datasets["fairplay"].channels == 2 and len(p.datasets["music"].metadata) == 2
    cases = {
        "datasets.x.metadata does not apply": {**base["datasets"]["synth-music"], "metadata": ["http://x/a.json"]},
        "datasets.x: 'metadata' is a required property": {"source": "music", "binaural": False},
        "datasets.x.archives does not apply": {
            "source": "music", "binaural": False, "metadata": ["a.json"], "archives": {"videos": "v", "audios": "a"},
        },
        "datasets.x.url_template": {"source": "vggsound", "binaural": False, "metadata": ["a.csv"], "url_template": "http://h/"},
        "datasets.x.download.workerz": {"source": "music", "binaural": False, "metadata": ["a.json"], "download": {"workerz": 2}},
    }  # fmt: skip
    for message, entry in cases.items():
        bad = copy.deepcopy(base)
        bad["datasets"]["x"] = entry
        with pytest.raises(ConfigError, match=re.escape(message)):
            validate(bad)


def test_every_metadata_row_comes_out_duplicates_as_failed_rows(tmp_path: Path) -> None:
    rows = [f"clip{i:02d},violin,train,v.mp4" for i in range(15)] + ["clip03,violin,train,v.mp4"]
    csv = tmp_path / "local.csv"
    csv.write_text("id,label,split,path\n" + "\n".join(rows) + "\n")
    df = local_clip_table(csv)
    assert len(df) == 16 and df["id"].is_unique
    assert (df["status"] == "ok").sum() == 15
    assert df.set_index("id").loc["local.csv:line 17", "reason"] == "duplicate id"
    vgg = tmp_path / "vggsound.csv"
    vgg.write_text("aaaaaaaaaaa,1,dog barking,train\nbbbbbbbbbbb,2,cat purring,test\naaaaaaaaaaa,1,dog barking,train\n")
    v = vggsound_clip_table(vgg)
    assert sorted(v["reason"]) == ["", "", "duplicate id"]
    assert v.set_index("id").loc["vggsound.csv:line 3", "reason"] == "duplicate id"
