"""Tests of the download stage (real yt-dlp against a loopback HTTP server) and the metadata parsers.

Nothing leaves the machine: videos are served by an ``http.server`` on 127.0.0.1 and fetched through
yt-dlp's generic extractor (``url_template="http://127.0.0.1:{port}/{id}.mp4"``); tests/conftest.py
blocks every other connection.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import socket
import threading
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest

from avsep.core.io import STATUS_FAILED, STATUS_OK, read_manifest
from avsep.data.prepare.decode import ExtractConfig
from avsep.data.prepare.download import (
    ARCHIVE_NAME,
    MANIFEST_COLUMNS,
    TMP_DIR_NAME,
    DownloadArchive,
    download_dataset,
    download_one,
)
from avsep.data.prepare.extract import extract_dataset
from avsep.data.prepare.media import probe, run_ffmpeg
from avsep.data.prepare.metadata import parse_fairplay_split, parse_music_json, parse_vggsound_csv
from avsep.data.prepare.metadata_checks import MetadataError, MetadataWarning, label_slug
from avsep.data.prepare.ytdlp import DownloadConfig, classify_error, parse_youtube_id

os.environ.setdefault("HF_HUB_OFFLINE", "1")

GOOD = "-good_clip1"  # a valid YouTube id may start with "-": it must stay a URL, never an option
VGG = "vggClip0001"
MISSING = "missing4040"  # 404
TRUNC_LEN = "truncLength"  # Content-Length says N, half is sent, then the connection closes
TRUNC_CUT = "truncCut_01"  # no Content-Length, connection cut half-way (looks complete to HTTP)
HTML = "htmlPage_01"  # an HTML page without any video
BAD_IDS = ("--exec=rm", "../../etc")
CLIP_SECONDS = 4.0


# ------------------------------------------------------------------------------------------------
# Loopback server
# ------------------------------------------------------------------------------------------------


def make_mp4(path: Path, seconds: float = CLIP_SECONDS) -> Path:
    """H.264 + AAC test clip, index at the front (so truncation is invisible to a header probe)."""
    run_ffmpeg(
        ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25",
         "-c:a", "aac", "-movflags", "+faststart", str(path)],
        "make test clip",
    )  # fmt: skip
    return path


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the directory, plus a few misbehaving paths; records every requested path."""

    hits: ClassVar[Counter[str]] = Counter()
    good_bytes: ClassVar[bytes] = b""

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        type(self).hits[self.path] += 1
        if self.path == f"/{TRUNC_LEN}.mp4":
            self._send_partial(content_length=True)
        elif self.path == f"/{TRUNC_CUT}.mp4":
            self._send_partial(content_length=False)
        elif self.path == f"/{HTML}.mp4":
            body = b"<html><head><title>nothing</title></head><body><p>no video here</p></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            super().do_GET()

    def _send_partial(self, content_length: bool) -> None:
        data = self.good_bytes
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        if content_length:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True


class Server:
    def __init__(self, root: Path) -> None:
        handler = type("Handler", (_Handler,), {"hits": Counter(), "good_bytes": (root / f"{GOOD}.mp4").read_bytes()})
        self.handler = handler
        self.root = root
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def hits(self) -> Counter[str]:
        return self.handler.hits

    def cfg(self, **kw: object) -> DownloadConfig:
        kw.setdefault("retries", 1)
        kw.setdefault("socket_timeout", 5.0)
        return DownloadConfig(url_template=f"http://127.0.0.1:{self.port}/{{id}}.mp4", **kw)  # type: ignore[arg-type]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("www")
    make_mp4(root / f"{GOOD}.mp4")
    shutil.copy(root / f"{GOOD}.mp4", root / f"{VGG}.mp4")
    srv = Server(root)
    yield srv
    srv.close()


def _meta(ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"id": ids, "label": ["violin"] * len(ids), "split": ["train"] * len(ids), "extra": range(len(ids))}
    )


ALL_IDS = [GOOD, MISSING, TRUNC_LEN, TRUNC_CUT, HTML, *BAD_IDS]


@pytest.fixture(scope="module")
def first_run(server: Server, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("dl")
    df = download_dataset(_meta(ALL_IDS), out, server.cfg(), progress=False)
    return out, df


def _row(df: pd.DataFrame, rid: str) -> pd.Series:
    rows = df[df["id"] == rid]
    assert len(rows) == 1, rid
    return rows.iloc[0]


# ------------------------------------------------------------------------------------------------
# download_dataset
# ------------------------------------------------------------------------------------------------


def test_good_id_downloads_a_playable_file(first_run: tuple[Path, pd.DataFrame]) -> None:
    out, df = first_run
    row = _row(df, GOOD)
    assert (row["status"], row["reason"], row["path"], bool(row["cached"])) == (
        STATUS_OK,
        "",
        f"videos/{GOOD}.mp4",
        False,
    )
    info = probe(out / row["path"])
    assert info.has_video and info.has_audio
    assert info.duration == pytest.approx(CLIP_SECONDS, abs=0.2)
    assert f"generic {GOOD}" in (out / ARCHIVE_NAME).read_text().splitlines()


def test_failures_are_classified(first_run: tuple[Path, pd.DataFrame]) -> None:
    _, df = first_run
    reasons = {r: _row(df, r)["reason"] for r in ALL_IDS if r != GOOD}
    assert reasons == {
        MISSING: "http 404",
        TRUNC_LEN: "incomplete download",
        TRUNC_CUT: "corrupt file",
        HTML: "not a video",
        **{b: "invalid id" for b in BAD_IDS},
    }
    failed = df[df["id"] != GOOD]
    assert (failed["status"] == STATUS_FAILED).all()
    assert (failed["path"] == "").all()
    assert failed["error"].str.len().gt(0).all()
    assert "404" in _row(df, MISSING)["error"]


def test_no_partial_or_temporary_files_remain(first_run: tuple[Path, pd.DataFrame]) -> None:
    out, _ = first_run
    assert sorted(p.name for p in (out / "videos").iterdir()) == [f"{GOOD}.mp4"]
    assert not (out / TMP_DIR_NAME).exists()
    assert not list(out.rglob("*.part")) and not list(out.rglob("*.ytdl"))


def test_bad_ids_make_no_request(server: Server, first_run: tuple[Path, pd.DataFrame]) -> None:
    requested = " ".join(server.hits)
    assert "exec" not in requested and "etc" not in requested and ".." not in requested
    assert server.hits[f"/{GOOD}.mp4"] >= 1  # the good id did go through the server


def test_manifest_contract(first_run: tuple[Path, pd.DataFrame]) -> None:
    out, df = first_run
    on_disk = read_manifest(out / "manifest.parquet")
    pd.testing.assert_frame_equal(on_disk, df)
    assert list(df.columns) == [*MANIFEST_COLUMNS, "extra"]
    assert list(df["id"]) == sorted(ALL_IDS)
    assert len(df) == len(ALL_IDS)
    assert _row(df, GOOD)["url"].endswith(f"/{GOOD}.mp4")
    assert _row(df, "--exec=rm")["url"] == ""


def test_rerun_skips_done_ids(
    server: Server, first_run: tuple[Path, pd.DataFrame], capsys: pytest.CaptureFixture[str]
) -> None:
    out, df1 = first_run
    before = server.hits[f"/{GOOD}.mp4"]
    mtime = (out / "videos" / f"{GOOD}.mp4").stat().st_mtime_ns
    df2 = download_dataset(_meta(ALL_IDS), out, server.cfg(), progress=False)
    assert server.hits[f"/{GOOD}.mp4"] == before  # no request for the archived id
    assert (out / "videos" / f"{GOOD}.mp4").stat().st_mtime_ns == mtime
    good = _row(df2, GOOD)
    assert (good["status"], good["path"], bool(good["cached"])) == (STATUS_OK, f"videos/{GOOD}.mp4", True)
    pd.testing.assert_series_equal(df2["reason"], df1["reason"])
    assert "download: ok=1 failed=6" in capsys.readouterr().out
    assert (out / ARCHIVE_NAME).read_text().splitlines().count(f"generic {GOOD}") == 1


def test_extract_consumes_the_manifest(first_run: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    out, _ = first_run
    ext = extract_dataset(
        out / "manifest.parquet", tmp_path / "extract", ExtractConfig(min_samples=1000), progress=False
    )
    assert _row(ext, GOOD)["status"] == STATUS_OK
    assert _row(ext, MISSING)["reason"] == "http 404"
    assert (tmp_path / "extract" / "audio" / f"{GOOD}.wav").is_file()


# ------------------------------------------------------------------------------------------------
# download_one and sections
# ------------------------------------------------------------------------------------------------


def test_vggsound_section_is_cut(server: Server, tmp_path: Path) -> None:
    csv = tmp_path / "vggsound.csv"
    csv.write_text(f'{VGG},1,"playing violin, fiddle",train\n')
    meta = parse_vggsound_csv(csv, clip_seconds=2.0)
    df = download_dataset(meta, tmp_path / "out", server.cfg(), progress=False)
    row = _row(df, f"{VGG}_000001")
    assert row["status"] == STATUS_OK, row["error"]
    assert (row["youtube_id"], row["start"], row["end"]) == (VGG, 1.0, 3.0)
    info = probe(tmp_path / "out" / row["path"])
    assert info.has_video and info.has_audio
    assert info.duration == pytest.approx(2.0, abs=0.25)


def test_missing_ffmpeg_is_an_ffmpeg_error(server: Server, tmp_path: Path) -> None:
    cfg = server.cfg(ffmpeg_location=str(tmp_path / "no-such-ffmpeg"))
    res = download_one(VGG, tmp_path, cfg, name="vgg_cut", start=0.0, end=1.0)
    assert (res.status, res.reason) == (STATUS_FAILED, "ffmpeg error"), res.error
    assert not (tmp_path / "videos" / "vgg_cut.mp4").exists()


def test_refused_connection_is_a_network_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = DownloadConfig(url_template=f"http://127.0.0.1:{port}/{{id}}.mp4", retries=0, socket_timeout=2.0)
    res = download_one(GOOD, tmp_path, cfg)
    assert (res.status, res.reason) == (STATUS_FAILED, "network"), res.error


@pytest.mark.parametrize(
    "bad", ["--exec=rm", "../../etc", "-o/tmp/x", "a b c d e f", "", "https://evil.example/watch?v=dQw4w9WgXcQ"]
)
def test_download_one_refuses_bad_ids_before_any_work(bad: str, tmp_path: Path) -> None:
    cfg = DownloadConfig(url_template="http://127.0.0.1:9/{id}.mp4")  # never contacted
    res = download_one(bad, tmp_path, cfg)
    assert (res.status, res.reason, res.path, res.url) == (STATUS_FAILED, "invalid id", "", "")
    assert list(tmp_path.iterdir()) == []


def test_bad_clip_name_is_refused(tmp_path: Path) -> None:
    res = download_one("dQw4w9WgXcQ", tmp_path, DownloadConfig(url_template="http://127.0.0.1:9/{id}.mp4"), name="../x")
    assert res.reason == "invalid id" and list(tmp_path.iterdir()) == []


def test_existing_file_is_adopted_or_replaced(server: Server, tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(server.root / f"{GOOD}.mp4", videos / f"{GOOD}.mp4")
    before = server.hits[f"/{GOOD}.mp4"]
    res = download_one(GOOD, tmp_path, server.cfg())
    assert (res.status, res.cached) == (STATUS_OK, True)
    assert server.hits[f"/{GOOD}.mp4"] == before
    assert GOOD in DownloadArchive(tmp_path / ARCHIVE_NAME)
    # a damaged file that is not archived is fetched again
    (tmp_path / ARCHIVE_NAME).unlink()
    (videos / f"{GOOD}.mp4").write_bytes(b"not a video")
    res = download_one(GOOD, tmp_path, server.cfg())
    assert (res.status, res.cached) == (STATUS_OK, False)
    assert server.hits[f"/{GOOD}.mp4"] > before
    assert probe(videos / f"{GOOD}.mp4").has_audio


def test_parse_youtube_id() -> None:
    vid = "dQw4w9WgXcQ"
    for ok in (vid, f"https://www.youtube.com/watch?v={vid}&t=3", f"https://youtu.be/{vid}",
               f"https://youtube.com/shorts/{vid}", f"https://m.youtube.com/watch?v={vid}"):  # fmt: skip
        assert parse_youtube_id(ok) == vid, ok
    for bad in ("--exec=rm", "../../etc", f"{vid}; rm -rf /", f"https://evil.com/watch?v={vid}",
                f"file:///{vid}", f"https://www.youtube.com/watch?v={vid}x", "dQw4w9WgXc"):  # fmt: skip
        assert parse_youtube_id(bad) is None, bad


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("ERROR: [youtube] abc: Video unavailable. This video is no longer available", "unavailable"),
        ("ERROR: [youtube] abc: Private video. Sign in if you've been granted access to this video", "private"),
        (
            "ERROR: [youtube] abc: Sign in to confirm your age. This video may be inappropriate for some users.",
            "age restricted",
        ),
        ("ERROR: [youtube] abc: Sign in to confirm you're not a bot. Use --cookies-from-browser", "login required"),
        ("ERROR: [youtube] abc: The uploader has not made this video available in your country", "geo blocked"),
        ("ERROR: [youtube] abc: Video unavailable. This video has been removed by the uploader", "unavailable"),
        ("ERROR: unable to download video data: HTTP Error 403: Forbidden", "http 403"),
        ("ERROR: [generic] x: Unable to download webpage: HTTP Error 404: Not Found", "http 404"),
        ("ERROR: [generic] Unsupported URL: http://127.0.0.1/x", "not a video"),
        ("ERROR: [youtube] abc: Requested format is not available. Use --list-formats", "no suitable format"),
        ("ERROR: Postprocessing: Conversion failed!", "ffmpeg error"),
        ("ERROR: You have requested merging of multiple formats but ffmpeg is not installed", "ffmpeg error"),
        (
            "ERROR: [download] Got error: 100 bytes read, 200 more expected. Giving up after 3 retries",
            "incomplete download",
        ),
        ("ERROR: [youtube] abc: Unable to download API page: <urlopen error timed out>", "network"),
        ("ERROR: [Errno 111] Connection refused", "network"),
        (
            "ERROR: [youtube] abc: This content isn't available, try again later. Rate-limited by YouTube",
            "rate limited",
        ),
        ("ERROR: unable to download video data: HTTP Error 429: Too Many Requests", "rate limited"),
        ("ERROR: [youtube] abc: This video is not available from your location due to geo restriction", "geo blocked"),
        ("ERROR: something nobody has seen before", "other"),
    ],
)
def test_classify_error(message: str, reason: str) -> None:
    assert classify_error(message) == reason


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="id"):
        DownloadConfig(url_template="https://example.com/video")
    with pytest.raises(ValueError):
        DownloadConfig(url_template="https://example.com/{id}/{other}")
    with pytest.raises(ValueError, match="logger"):
        DownloadConfig(ydl_options={"logger": None})
    with pytest.raises(ValueError, match="duplicate"):
        download_dataset(_meta(["dQw4w9WgXcQ", "dQw4w9WgXcQ"]), Path("/nonexistent"), progress=False)


# ------------------------------------------------------------------------------------------------
# Metadata: MUSIC
# ------------------------------------------------------------------------------------------------


def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:03d}".ljust(11, "x") for i in range(n)]


def _write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_music_json_parses_and_splits_deterministically(tmp_path: Path) -> None:
    vids = {"violin": _ids("vio", 10) + [_ids("vio", 1)[0]], "acoustic_guitar": _ids("gui", 10)}
    p = _write_json(tmp_path / "MUSIC_solo_videos.json", {"videos": vids})
    df = parse_music_json(p, split_seed=3, test_fraction=0.2)
    assert list(df.columns) == ["id", "youtube_id", "label", "split"]
    assert len(df) == 20 and (df["id"] == df["youtube_id"]).all()
    assert df.groupby("label")["split"].apply(lambda s: int((s == "test").sum())).to_dict() == {
        "acoustic_guitar": 2,
        "violin": 2,
    }
    pd.testing.assert_frame_equal(df, parse_music_json(p, split_seed=3, test_fraction=0.2))
    # one label's split does not depend on the others (nor on their order)
    only = _write_json(tmp_path / "only.json", {"videos": {"violin": list(reversed(vids["violin"]))}})
    a = df[df["label"] == "violin"].set_index("id")["split"].sort_index()
    b = parse_music_json(only, split_seed=3, test_fraction=0.2).set_index("id")["split"].sort_index()
    pd.testing.assert_series_equal(a, b)
    other_seeds = [parse_music_json(p, split_seed=s, test_fraction=0.2)["split"].tolist() for s in range(4, 9)]
    assert any(s != df["split"].tolist() for s in other_seeds)


def test_music_duet_labels_and_duplicates(tmp_path: Path) -> None:
    dup = "dupdupdup01"
    p = _write_json(
        tmp_path / "duet.json", {"videos": {"acoustic_guitar  violin": [dup, "aaaaaaaaaaa"], "flute violin": [dup]}}
    )
    with pytest.warns(MetadataWarning, match=dup):
        df = parse_music_json(p, test_fraction=0.0)
    assert sorted(df["label"].unique()) == ["acoustic_guitar violin"]  # whitespace collapsed; dup kept first
    assert (df["split"] == "train").all()
    assert label_slug("vehicle horn, car horn, honking") == "vehicle_horn_car_horn_honking"


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ('{"videos": {"violin": ["aaaaaaaaaaa"]', "line 1"),  # invalid JSON
        ('["aaaaaaaaaaa"]', "top level"),
        ('{"clips": {}}', "missing key 'videos'"),
        ('{"videos": {}, "extra": 1}', "unexpected key"),
        ('{"videos": ["aaaaaaaaaaa"]}', "key 'videos'"),
        ('{"videos": {"violin": "aaaaaaaaaaa"}}', "videos['violin']"),
        ('{"videos": {"violin": ["aaaaaaaaaaa", 12345678901]}}', "videos['violin'][1]"),
        ('{"videos": {"violin": ["aaaaaaaaaaa", "--exec=rm"]}}', "invalid YouTube id"),
        ('{"videos": {"../../etc": ["aaaaaaaaaaa"]}}', "path separator"),
        ('{"videos": {"-rf": ["aaaaaaaaaaa"]}}', "starts with '-'"),
        ('{"videos": {"a..b": ["aaaaaaaaaaa"]}}', "'..'"),
        ('{"videos": {"  ": ["aaaaaaaaaaa"]}}', "empty label"),
    ],
)
def test_music_json_malformed(tmp_path: Path, content: str, where: str) -> None:
    p = tmp_path / "MUSIC21_solo_videos.json"
    p.write_text(content)
    with pytest.raises(MetadataError) as e:
        parse_music_json(p)
    assert str(p) in str(e.value) and where in str(e.value)


def test_music_invalid_ids_can_be_kept(tmp_path: Path) -> None:
    p = _write_json(tmp_path / "m.json", {"videos": {"violin": ["aaaaaaaaaaa", "--exec=rm"]}})
    df = parse_music_json(p, invalid_ids="keep")
    assert sorted(df["id"]) == ["--exec=rm", "aaaaaaaaaaa"]
    res = download_dataset(
        df, tmp_path / "out", DownloadConfig(url_template="http://127.0.0.1:9/{id}.mp4"), progress=False
    )
    assert _row(res, "--exec=rm")["reason"] == "invalid id"


# ------------------------------------------------------------------------------------------------
# Metadata: VGGSound
# ------------------------------------------------------------------------------------------------


def test_vggsound_csv(tmp_path: Path) -> None:
    p = tmp_path / "vggsound.csv"
    p.write_text(
        "youtube_id,start_seconds,label,split\n"
        "---g-f_I2yQ,1,people marching,test\n"
        "\n"
        '--0PQM4-hqg, 30 ,"vehicle horn, car horn, honking",train\n'
        "---g-f_I2yQ,1,people marching,test\n"  # exact duplicate: dropped with a warning
    )
    with pytest.warns(MetadataWarning):
        df = parse_vggsound_csv(p)
    assert list(df.columns) == ["id", "youtube_id", "label", "split", "start", "end"]
    assert df.to_dict("records") == [
        {"id": "---g-f_I2yQ_000001", "youtube_id": "---g-f_I2yQ", "label": "people marching", "split": "test",
         "start": 1.0, "end": 11.0},
        {"id": "--0PQM4-hqg_000030", "youtube_id": "--0PQM4-hqg", "label": "vehicle horn, car horn, honking",
         "split": "train", "start": 30.0, "end": 40.0},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("row", "why"),
    [
        ("aaaaaaaaaaa,1,dog barking", "expected 4 fields"),
        ("aaaaaaaaaaa,1,dog barking,train,extra", "expected 4 fields"),
        ("aaaaaaaaaaa,one,dog barking,train", "not a number"),
        ("aaaaaaaaaaa,-1,dog barking,train", "whole non-negative"),
        ("aaaaaaaaaaa,1.5,dog barking,train", "whole non-negative"),
        ("aaaaaaaaaaa,nan,dog barking,train", "whole non-negative"),
        ("aaaaaaaaaaa,1,dog barking,val", "split"),
        ("--exec=rm,1,dog barking,train", "invalid YouTube id"),
        ("aaaaaaaaaaa,1,../../etc,train", "path separator"),
        ('aaaaaaaaaaa,1,"dog barking,train', "malformed CSV"),
    ],
)
def test_vggsound_csv_malformed(tmp_path: Path, row: str, why: str) -> None:
    p = tmp_path / "vggsound.csv"
    p.write_text(f"bbbbbbbbbbb,0,cat purring,train\n{row}\n")
    with pytest.raises(MetadataError) as e:
        parse_vggsound_csv(p)
    msg = str(e.value)
    assert str(p) in msg and "line 2" in msg and why in msg


# ------------------------------------------------------------------------------------------------
# Metadata: FAIR-Play
# ------------------------------------------------------------------------------------------------


def _write_h5(path: Path, entries: list[bytes] | None, name: str = "audio") -> Path:
    h5py = pytest.importorskip("h5py")
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        if entries is not None:
            f.create_dataset(name, data=entries)
    return path


def test_fairplay_split(tmp_path: Path) -> None:
    root = b"/private/home/someone/FAIR-Play/binaural_audios/"
    p = _write_h5(tmp_path / "splits" / "split3" / "val.h5", [root + b"000002.wav", root + b"000010.wav"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = parse_fairplay_split(p)
    assert df.to_dict("records") == [
        {"id": "000002", "label": "fairplay", "split": "val", "fold": 3, "audio_name": "000002.wav"},
        {"id": "000010", "label": "fairplay", "split": "val", "fold": 3, "audio_name": "000010.wav"},
    ]


@pytest.mark.parametrize(
    ("name", "entries", "dataset", "why"),
    [
        ("train.h5", None, "audio", "missing"),
        ("train.h5", [b"/a/000001.wav"], "video", "missing"),
        ("train.h5", [b"/a/../../etc/passwd"], "audio", "audio[0]"),
        ("train.h5", [b"/a/000001.wav", b"/a/-x.mp3"], "audio", "audio[1]"),
        ("other.h5", [b"/a/000001.wav"], "audio", "split must be"),
    ],
)
def test_fairplay_split_malformed(
    tmp_path: Path, name: str, entries: list[bytes] | None, dataset: str, why: str
) -> None:
    p = _write_h5(tmp_path / name, entries, dataset)
    with pytest.raises(MetadataError, match=why.replace("[", r"\[").replace("]", r"\]")) as e:
        parse_fairplay_split(p)
    assert str(p) in str(e.value)


def test_fairplay_not_hdf5(tmp_path: Path) -> None:
    pytest.importorskip("h5py")
    p = tmp_path / "test.h5"
    p.write_text("not hdf5")
    with pytest.raises(MetadataError, match="HDF5"):
        parse_fairplay_split(p)
