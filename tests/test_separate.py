"""`avsep separate VIDEO`: micro checkpoints trained by the DAG's own stage functions, synthetic duets with known
sources, the console script run as a subprocess; windows, memory, and every bad-input case."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import resample_poly
from workflow_helpers import micro_params

from avsep import cli
from avsep.config.params import Params
from avsep.data.prepare.synth import SynthConfig, generate_dataset
from avsep.engine import checkpoint
from avsep.separate.demo import Duet, box_args, render_duet
from avsep.separate.windows import OverlapAdd, WindowPlan, read_windows, synthesis_window
from avsep.stages import data, lavss, mix, train

AVSEP = [sys.executable, "-m", "avsep.cli"]


def _synth(p: Params, dataset: str, root: Path, classes: tuple[str, ...], clips: dict[str, int], binaural: bool) -> Path:
    """A two-class synthetic dataset rendered and extracted by the data stages; returns the extract manifest."""
    s = p.synth
    raw = root / f"data/{dataset}/raw/manifest.parquet"
    cfg = SynthConfig(name=dataset, classes=classes, clips_per_class=clips, clip_seconds=float(s["clip_seconds"]),
                      sample_rate=int(s["render_rate"]), video_fps=int(s["video_fps"]), frame_size=int(s["frame_size"]),
                      binaural=binaural, seed=p.seed, soundfont=str(s["soundfont"]))
    generate_dataset(cfg, raw.parent, progress=False)
    out = root / f"data/{dataset}/extract/manifest.parquet"
    data.extract(p, dataset, raw, out)
    return out


@pytest.fixture(scope="module")
def hfra_ckpt(tmp_path_factory) -> Path:
    """A Sound-of-Pixels micro checkpoint written by the train stage (what the DAG's `train` rule runs): 150 steps of
    batch 4 on tuba and xylophone clips (about 15 s)."""
    root = tmp_path_factory.mktemp("hfra")
    raw = micro_params()
    raw["train"].update(steps=150, batch_size=4, lr=3e-3, lr_milestones=[], checkpoint_every=10_000, log_every=10)
    raw["model_defaults"].update(visual_width=8, k=8)  # width 2 cannot tell the two colours apart reliably
    p = Params(raw)
    manifest = _synth(p, "synth-music", root, ("tuba", "xylophone"), {"train": 4}, binaural=False)
    mixtures = root / "train_mixtures.parquet"
    mix.train_mixtures(p, "synth-music", manifest, mixtures, p.models["sop"].separator.visual.n_frames)
    return train.train(p, "synth-music", "sop", manifest, root / "models/synth-music/sop/checkpoint.pt", mixtures)


@pytest.fixture(scope="module")
def duet(tmp_path_factory) -> Duet:
    return render_duet(tmp_path_factory.mktemp("duet") / "duet.mp4", ("tuba", "xylophone"), seconds=8.0, seed=3)


def _box_opts(d: Duet) -> list[str]:
    return [x for b in box_args(d) for x in ("--box", b)]


def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AVSEP, *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False)


def sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Scale-invariant SDR (dB) of ``est`` against ``ref``."""
    a = float(np.dot(est, ref) / np.dot(ref, ref))
    return 10 * np.log10(np.sum((a * ref) ** 2) / np.sum((est - a * ref) ** 2))


def _stems_vs_sources(duet: Duet, out: Path) -> list[tuple[float, float]]:
    """(stem SDR, mixture SDR) against each source, per object and channel, at the stems' rate."""
    stems = [out / f"{j + 1}_{lab}.wav" for j, lab in enumerate(duet.labels)]
    res = []
    for j, path in enumerate(stems):
        y, sr = sf.read(path, always_2d=True)
        src = resample_poly(duet.sources[j].astype(np.float64), sr, duet.sample_rate, axis=-1)
        mixture = resample_poly(duet.sources.sum(axis=0).astype(np.float64), sr, duet.sample_rate, axis=-1)
        n = min(y.shape[0], src.shape[1])
        for c in range(y.shape[1]):
            res.append((sdr(src[c, :n], y[:n, c]), sdr(src[c, :n], mixture[c, :n])))
    return res


# --------------------------------------------------------------------------------------------------------------------
# what the checkpoint carries
# --------------------------------------------------------------------------------------------------------------------


def test_the_train_stage_checkpoint_carries_what_separate_needs(hfra_ckpt):
    meta = checkpoint.load(hfra_ckpt)["meta"]
    assert meta["format_version"] == checkpoint.FORMAT_VERSION
    assert meta["frontend"] == {"sample_rate": 11025, "clip_samples": 32767, "n_fft": 1022, "hop": 256, "warp_bins": 128}
    assert meta["fps"] == 8.0 and meta["channels"] == 1 and meta["labels"] == ["tuba", "xylophone"]
    assert "clip" not in meta  # a frames variant needs no CLIP encoder


def test_cli_help_lists_every_command():
    res = subprocess.run(["avsep", "--help"], capture_output=True, text=True, check=False) if shutil.which("avsep") else _run("--help")
    assert res.returncode == 0
    for cmd in ("info", "separate", "train", "lavss-oracles"):
        assert cmd in res.stdout


# --------------------------------------------------------------------------------------------------------------------
# windows
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, win", [(1, 8), (7, 8), (1000, 33), (10_000, 32767), (100_000, 32767)])
def test_overlap_add_of_an_identity_model_gives_the_signal_back(n, win):
    x = np.random.default_rng(0).normal(size=(2, n)).astype(np.float32)
    plan = WindowPlan(n, win)
    ola = OverlapAdd(plan)
    y = np.concatenate([ola.add(k, w) for k, w in read_windows(plan, lambda s, m: x[:, s:s + m])], axis=-1)
    assert y.shape == x.shape and np.abs(y - x).max() < 1e-6
    w = synthesis_window(win)
    hop = win // 2
    assert np.allclose(w[:hop] + w[hop:2 * hop], 1.0)  # the constant overlapped sum


# --------------------------------------------------------------------------------------------------------------------
# separation of a mono duet
# --------------------------------------------------------------------------------------------------------------------


def test_separate_a_mono_duet_beats_the_mixture_for_each_source(hfra_ckpt, duet, tmp_path):
    out = tmp_path / "out"
    res = _run("separate", duet.video, "--checkpoint", hfra_ckpt, "--out", out, *_box_opts(duet))
    assert res.returncode == 0, res.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["1_tuba.wav", "2_xylophone.wav", "residual.wav", "summary.png"]
    scores = _stems_vs_sources(duet, out)
    print("stem SDR / mixture SDR per source:", [(round(a, 2), round(b, 2)) for a, b in scores])
    for stem, mixture in scores:
        assert stem > mixture + 3.0
    # residual = mixture - stems
    stems = sum(sf.read(out / f"{j + 1}_{lab}.wav")[0] for j, lab in enumerate(duet.labels))
    residual, sr = sf.read(out / "residual.wav")
    mixture = resample_poly(duet.sources.sum(axis=0)[0].astype(np.float64), sr, duet.sample_rate)[: len(residual)]
    assert sr == 11025 and sdr(mixture, stems + residual) > 20  # the AAC-coded mixture itself
    from PIL import Image

    with Image.open(out / "summary.png") as im:
        assert im.size[0] >= 600 and im.size[1] >= 600


def test_a_mono_model_separates_the_downmix_of_a_stereo_file_and_says_so(hfra_ckpt, tmp_path):
    stereo = render_duet(tmp_path / "stereo.mp4", ("tuba", "xylophone"), binaural=True, seconds=4.0)
    res = _run("separate", stereo.video, "--checkpoint", hfra_ckpt, "--out", tmp_path / "out",
               *_box_opts(stereo))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "2-channel audio separated as its mono downmix" in res.stderr
    assert sf.info(str(tmp_path / "out/1_tuba.wav")).channels == 1


# --------------------------------------------------------------------------------------------------------------------
# bad input: one line naming the file and the problem, exit status 2
# --------------------------------------------------------------------------------------------------------------------


def _error(capsys, *args: object) -> str:
    code = cli.main(["separate", *map(str, args)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("avsep separate: ")
    return err


def _ffmpeg(*args: str) -> None:
    from avsep.data.prepare.media import ffmpeg_exe

    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def test_a_video_without_audio_is_refused(hfra_ckpt, duet, tmp_path, capsys):
    silent = tmp_path / "no_audio.mp4"
    _ffmpeg("-i", str(duet.video), "-an", "-c:v", "copy", str(silent))
    err = _error(capsys, silent, "--checkpoint", hfra_ckpt, "--out", tmp_path / "o", "--box", "0,0,10,10")
    assert f"{silent}: no audio stream" in err


def test_unreadable_and_truncated_videos_are_refused(hfra_ckpt, duet, tmp_path, capsys):
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video\n")
    err = _error(capsys, junk, "--checkpoint", hfra_ckpt, "--out", tmp_path / "o", "--box", "0,0,10,10")
    assert str(junk) in err and "not a readable media file" in err
    cut = tmp_path / "cut.mp4"
    blob = duet.video.read_bytes()
    cut.write_bytes(blob[: len(blob) // 2])
    err = _error(capsys, cut, "--checkpoint", hfra_ckpt, "--out", tmp_path / "o", "--box", "0,0,10,10")
    assert str(cut) in err and "truncated or corrupt" in err
    err = _error(capsys, tmp_path / "missing.mp4", "--checkpoint", hfra_ckpt, "--out", tmp_path / "o")
    assert "missing.mp4: no such file" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_no_object_found_suggests_box(hfra_ckpt, duet, tmp_path, capsys):
    # no detector beside the checkpoint (models/<dataset>/detector/weights.pt): say how to go on
    err = _error(capsys, duet.video, "--checkpoint", hfra_ckpt, "--out", tmp_path / "o")
    assert "no detector" in err and "--detector" in err and "--box" in err
    # an untrained YOLO finds nothing
    err = _error(capsys, duet.video, "--checkpoint", hfra_ckpt, "--out", tmp_path / "o", "--detector", "yolov8n.yaml")
    assert f"{duet.video}: no sounding object found" in err and "--box x1,y1,x2,y2" in err


def test_checkpoints_of_the_wrong_kind_or_version_are_refused(hfra_ckpt, duet, tmp_path, capsys):
    args = [duet.video, "--out", tmp_path / "o", "--box", "0,0,10,10"]
    state = tmp_path / "state.pt"
    torch.save({"model": {}, "optimizer": {}, "step": 3}, state)
    assert "not an avsep model checkpoint" in _error(capsys, *args, "--checkpoint", state)
    text = tmp_path / "weights.pt"
    text.write_text("hello")
    assert f"{text}: not a readable checkpoint" in _error(capsys, *args, "--checkpoint", text)
    ck = checkpoint.load(hfra_ckpt)
    old = tmp_path / "old.pt"
    meta = {k: v for k, v in ck["meta"].items() if k not in ("format_version", "frontend", "fps", "channels", "labels")}
    torch.save({**ck, "meta": meta}, old)
    err = _error(capsys, *args, "--checkpoint", old)
    assert f"{old}: written before" in err and "frontend, fps, channels, labels" in err
    new = tmp_path / "new.pt"
    torch.save({**ck, "meta": {**ck["meta"], "format_version": 99}}, new)
    assert "checkpoint format 99 is newer" in _error(capsys, *args, "--checkpoint", new)
    other = tmp_path / "other.pt"
    torch.save({**ck, "model": {k: v for k, v in list(ck["model"].items())[1:]}}, other)
    assert f"{other}: incompatible with this version" in _error(capsys, *args, "--checkpoint", other)


def test_a_box_outside_the_frame_is_refused(hfra_ckpt, duet, tmp_path, capsys):
    base = [duet.video, "--checkpoint", hfra_ckpt, "--out", tmp_path / "o"]
    assert "--box 0,0,500,10: outside the 128x64 frame" in _error(capsys, *base, "--box", "0,0,500,10")
    assert "--box 0.5,0,0.2,1: empty box" in _error(capsys, *base, "--box", "0.5,0,0.2,1")
    assert "--box 1,2,3: expected x1,y1,x2,y2" in _error(capsys, *base, "--box", "1,2,3")


def test_an_output_directory_that_is_not_empty_needs_force(hfra_ckpt, duet, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = [duet.video, "--checkpoint", hfra_ckpt, "--out", out, *_box_opts(duet)]
    assert f"{out}: output directory exists and is not empty (use --force" in _error(capsys, *args)
    assert cli.main(["separate", *map(str, args), "--force"]) == 0
    assert (out / "keep.txt").exists() and (out / "1_tuba.wav").exists()


def test_the_console_script_reports_one_line_and_exit_2(tmp_path):
    res = _run("separate", tmp_path / "nothing.mp4", "--checkpoint", tmp_path / "none.pt", "--out", tmp_path / "o")
    assert res.returncode == 2 and res.stderr.strip() == f"avsep separate: {tmp_path / 'none.pt'}: checkpoint does not exist"


# --------------------------------------------------------------------------------------------------------------------
# long videos: windows, continuity, bounded memory, killed runs
# --------------------------------------------------------------------------------------------------------------------


#: `avsep separate` in a fresh interpreter that reports its peak resident memory (VmHWM of its own address space:
#: getrusage/wait4 would report the pytest process it was forked from) on its last stderr line.
_MEASURED = ("import sys; from avsep.cli import main; code = main(sys.argv[1:]); "
             "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]; "
             "print(hwm.split()[1], file=sys.stderr); sys.exit(code)")


def _separate_measured(args: list[str]) -> tuple[int, int]:
    """Exit status and peak RSS (kB) of `avsep separate`."""
    res = subprocess.run([sys.executable, "-c", _MEASURED, "separate", *args], capture_output=True, text=True,
                         timeout=600, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.returncode, int(res.stderr.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_60s_video_is_separated_in_windows_without_seams_and_in_bounded_memory(hfra_ckpt, tmp_path):
    rss = {}
    for seconds in (20, 60):
        d = render_duet(tmp_path / f"long{seconds}.mp4", ("tuba", "xylophone"), seconds=float(seconds), seed=1)
        out = tmp_path / f"out{seconds}"
        code, rss[seconds] = _separate_measured([str(d.video), "--checkpoint", str(hfra_ckpt), "--out", str(out),
                                                *_box_opts(d)])
        assert code == 0
    print(f"peak RSS: 20 s {rss[20] / 1024:.0f} MiB, 60 s {rss[60] / 1024:.0f} MiB")
    # a 60 s float32 stem is 2.6 MB (three outputs: 8 MB): nothing of the length may accumulate. Measured on 2 cores:
    # 695 MiB (20 s), 697 MiB (60 s), 699 MiB (180 s)
    assert rss[60] < rss[20] + 8 * 1024

    win = checkpoint.load(hfra_ckpt)["meta"]["frontend"]["clip_samples"]
    plan = WindowPlan(sf.info(str(tmp_path / "out60/1_tuba.wav")).frames, win)
    assert plan.n_windows > 2 * 60 * 11025 / win  # 50 % overlap
    edges = [plan.start(k) for k in range(1, plan.n_windows) if 0 < plan.start(k) < plan.n_samples - 1]
    edges += [e + win for e in edges if e + win < plan.n_samples - 1]
    for name in ("1_tuba.wav", "2_xylophone.wav", "residual.wav"):
        y = sf.read(tmp_path / "out60" / name)[0]
        step = np.abs(np.diff(y))
        for e in edges:  # the step into sample e against the signal's own variation around it
            around = np.concatenate([step[e - 1 - 512: e - 1], step[e: e + 512]])
            assert step[e - 1] <= around.max(), (name, e)


@pytest.mark.slow
def test_a_killed_run_leaves_no_stem_under_its_final_name(hfra_ckpt, tmp_path):
    d = render_duet(tmp_path / "long.mp4", ("tuba", "xylophone"), seconds=60.0, seed=2)
    out = tmp_path / "out"
    proc = subprocess.Popen([*AVSEP, "separate", str(d.video), "--checkpoint", str(hfra_ckpt), "--out", str(out),
                             *_box_opts(d)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out.is_dir() and any(p.name.startswith(".") for p in out.iterdir())):
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = [p.name for p in out.iterdir()]
    assert left and all(n.startswith(".") and ".tmp" in n for n in left), left


# --------------------------------------------------------------------------------------------------------------------
# LAVSS: a binaural duet of two instruments of one type, left and right
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lavss_ckpt(tmp_path_factory) -> Path:
    """A LAVSS micro checkpoint (SoP backbone + position + IPD, from scratch) written by the lavss_train stage:
    300 steps of batch 4 on binaural cello and trumpet clips, 70 % same-type pairs (2-4 min on 2 cores)."""
    root = tmp_path_factory.mktemp("lavss")
    raw = micro_params()
    raw["datasets"]["synth-fairplay"] = {"source": "synth", "classes": "synth-fairplay",
                                         "clips_per_class": {"train": 6, "test": 1}, "binaural": True}
    lv = raw["lavss"]
    lv.update(boxes="ground_truth", labels="metadata", train_same_type=0.7)
    lv["defaults"].update(ngf=8, k=8, visual_width=8, crop_size=32, image_size=48, d_model=32, pos_hidden=32,
                          pos_grid=4, n_heads=2, n_layers=1, ffn_mult=1)
    lv["train"].update(steps=300, batch_size=4, lr_milestones=[], checkpoint_every=10_000, log_every=10)
    p = Params(raw)
    manifest = _synth(p, "synth-fairplay", root, ("cello", "trumpet"), {"train": 6}, binaural=True)
    boxes = [str(root / "data/synth-fairplay/raw/boxes.parquet")]
    return lavss.lavss_train(p, "sop_pos_ipd", manifest, boxes, root / "models/synth-fairplay/lavss/sop_pos_ipd/checkpoint.pt")


@pytest.mark.slow
def test_lavss_separates_two_cellos_left_and_right_into_binaural_stems(lavss_ckpt, tmp_path, capsys):
    meta = checkpoint.load(lavss_ckpt)["meta"]
    assert meta["channels"] == 2 and meta["labels"] == ["cello", "trumpet"] and meta["frontend"]["sample_rate"] == 11025
    d = render_duet(tmp_path / "cellos.mp4", ("cello", "cello"), binaural=True, seconds=8.0, seed=1)
    out = tmp_path / "out"
    res = _run("separate", d.video, "--checkpoint", lavss_ckpt, "--out", out, *_box_opts(d))
    assert res.returncode == 0, res.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["1_cello.wav", "2_cello.wav", "residual.wav", "summary.png"]
    assert sf.info(str(out / "1_cello.wav")).channels == 2
    scores = _stems_vs_sources(d, out)  # per source, left and right ear
    print("stem SDR / mixture SDR per source and ear:", [(round(a, 2), round(b, 2)) for a, b in scores])
    for stem, mixture in scores:
        assert stem > mixture
    # a binaural model on a mono file, and a query image without a position
    mono = render_duet(tmp_path / "mono.mp4", ("cello", "cello"), seconds=4.0)
    err = _error(capsys, mono.video, "--checkpoint", lavss_ckpt, "--out", tmp_path / "o1", "--box", "0,0,10,10")
    assert f"{mono.video}: mono audio where binaural (2-channel) is expected" in err
    img = tmp_path / "cello.png"
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 40, 40)).save(img)
    err = _error(capsys, d.video, "--checkpoint", lavss_ckpt, "--out", tmp_path / "o2", "--query-image", img)
    assert "LAVSS model is guided by the object's position" in err


# --------------------------------------------------------------------------------------------------------------------
# a CLIP variant: the encoder the checkpoint names embeds the box crop, or the query image
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_clip_variant_embeds_the_box_crop_or_the_query_image(tmp_path, capsys):
    from avsep.stages import embed

    raw = micro_params()
    raw["train"].update(steps=4, batch_size=2, lr_milestones=[], checkpoint_every=10_000, log_every=1)
    p = Params(raw)
    manifest = _synth(p, "synth-music", tmp_path, ("tuba", "xylophone"), {"train": 2}, binaural=False)
    npy, idx = tmp_path / "clip_train.npy", tmp_path / "clip_train.parquet"
    embed.clip_cache(p, "synth-music", "train", manifest, npy, idx)
    mixtures = tmp_path / "train_mixtures.parquet"
    mix.train_mixtures(p, "synth-music", manifest, mixtures, 1)
    ck = train.train(p, "synth-music", "clipsep_late", manifest, tmp_path / "models/synth-music/clipsep_late/checkpoint.pt",
                     mixtures, [(str(npy), str(idx))])
    clip = checkpoint.load(ck)["meta"]["clip"]
    assert clip == {"model": "ViT-B-32", "pretrained": "random", "seed": p.seed, "weights": f"random(seed={p.seed})"}
    d = render_duet(tmp_path / "duet.mp4", ("tuba", "xylophone"), seconds=3.0)
    assert cli.main(["separate", str(d.video), "--checkpoint", str(ck), "--out", str(tmp_path / "o1"), *_box_opts(d)]) == 0
    img = tmp_path / "tuba.png"
    from PIL import Image

    Image.new("RGB", (40, 40), (120, 40, 160)).save(img)
    assert cli.main(["separate", str(d.video), "--checkpoint", str(ck), "--out", str(tmp_path / "o2"),
                     "--query-image", str(img)]) == 0
    assert sorted(p.name for p in (tmp_path / "o2").iterdir()) == ["1_tuba.wav", "residual.wav", "summary.png"]
    capsys.readouterr()
    bad = tmp_path / "bad.pt"
    c = checkpoint.load(ck)
    torch.save({**c, "meta": {**c["meta"], "clip": {**clip, "seed": 7}}}, bad)
    err = _error(capsys, d.video, "--checkpoint", bad, "--out", tmp_path / "o3", *_box_opts(d))
    assert "the CLIP weights loaded (random(seed=7)) are not the ones the model was trained with" in err
