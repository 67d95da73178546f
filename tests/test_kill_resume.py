"""Real SIGKILLs: a killed training job resumes to the same weights, a killed stage leaves nothing done-looking.

The workflow tests start Snakemake in its own process group (session) and SIGKILL the whole group
(Snakemake, the job's Python, ffmpeg), as an OOM killer or a cluster's hard time limit would: no
``finally`` block, no signal handler and no Snakemake cleanup runs.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from workflow_helpers import copy_workflow, micro_params, snakemake, write_params

from avsep.engine import checkpoint

#: Enough micro steps (~0.1 s each) that the job is still training well after the first resume state.
STEPS = 60
CHECKPOINT_EVERY = 3
DATASET = "synth-music"
N_CLIPS = 22  # 11 synth-music classes x (1 train + 1 test) clips
EXTRACT = f"data/{DATASET}/extract/manifest.parquet"
CKPT = f"models/{DATASET}/sop/checkpoint.pt"
#: How long a stage may take to reach the point where it is killed (a loaded 2-core CI machine).
DEADLINE_S = 120
#: Names ``avsep.core.io.atomic_path`` / ``atomic_dir`` give their temporaries: hidden, ``.tmp`` in the name.
TMP_NAME = re.compile(r"^\..+\.tmp")


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _start(cwd: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """Snakemake in a new session (its own process group, pgid == pid), output to ``log``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "snakemake", *args],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _live_members(pgid: int) -> list[int]:
    """Pids of the non-zombie processes of process group ``pgid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            pids.append(int(entry))
    return pids


def _kill_when(proc: subprocess.Popen[bytes], log: Path, ready: Callable[[], bool]) -> None:
    """SIGKILL ``proc``'s whole process group as soon as ``ready()``; fail if it ends first or hangs."""
    deadline = time.monotonic() + DEADLINE_S
    try:
        while not ready():
            if proc.poll() is not None:
                pytest.fail(
                    f"snakemake ended (rc {proc.returncode}) before it could be killed; make the stage longer\n"
                    + log.read_text(errors="replace")[-3000:]
                )
            if time.monotonic() > deadline:
                pytest.fail(f"not ready to be killed after {DEADLINE_S} s\n" + log.read_text(errors="replace")[-3000:])
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # Every process of the group (the job's python, ffmpeg) is gone, not just Snakemake itself.
    end = time.monotonic() + 10
    while (alive := _live_members(proc.pid)) and time.monotonic() < end:
        time.sleep(0.05)
    assert not alive, f"processes of the killed group still running: {alive}"


def _ok(r: subprocess.CompletedProcess[str]) -> None:
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]


def _unlock(cwd: Path) -> None:
    # Snakemake writes .snakemake/locks/ at start and removes them on any exit it controls; a SIGKILL
    # leaves them, and the next run touching the same files stops with "Directory cannot be locked"
    # (Snakemake has no stale-lock detection). `--unlock` is the documented recovery after a hard kill.
    _ok(snakemake(cwd, "--unlock", timeout=120))


def _final_names(d: Path) -> list[str]:
    """Entries of ``d`` under final (non-temporary) names."""
    return sorted(p.name for p in d.iterdir() if not TMP_NAME.match(p.name)) if d.is_dir() else []


def _tree(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def _hidden_temporaries(d: Path) -> list[Path]:
    return [p for p in d.rglob(".*") if TMP_NAME.match(p.name)] if d.exists() else []


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workflow copy whose data stages (synth, extract) ran once; tests clone it (data, metadata)."""
    root = tmp_path_factory.mktemp("kill-base")
    copy_workflow(root)
    p = micro_params()
    p["train"].update(steps=STEPS, checkpoint_every=CHECKPOINT_EVERY, log_every=1)
    write_params(root, p)
    _ok(snakemake(root, EXTRACT, timeout=600))
    return root


def _clone(base: Path, dest: Path) -> Path:
    """A copy of ``base`` (mtimes kept, .snakemake metadata included): Snakemake sees the data as done."""
    shutil.copytree(base, dest, symlinks=True)
    return dest


# --------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------


def _state_step(path: Path) -> int:
    """Step of the resume state on disk, -1 if there is none.

    ``state.pt`` is renamed into place whole, so a file under that name is complete; a rename or the final
    unlink after we opened it does not matter (we hold the old inode), only one before the open does.
    """
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["step"])
    except FileNotFoundError:
        return -1


@pytest.mark.slow
def test_sigkilled_training_job_resumes_through_the_workflow_to_identical_weights(base, tmp_path):
    ref = _clone(base, tmp_path / "ref")
    run = _clone(base, tmp_path / "killed")

    # Reference: the same rule, uninterrupted, on byte-identical data.
    _ok(snakemake(ref, "--cores", "1", CKPT, timeout=600))

    model_dir = run / CKPT.rsplit("/", 1)[0]
    state = model_dir / "state.pt"
    log = tmp_path / "killed.out"
    proc = _start(run, log, "--cores", "1", CKPT)
    _kill_when(proc, log, lambda: _state_step(state) >= CHECKPOINT_EVERY)

    # Only the resume state (and possibly a hidden temporary of a state being written) is left: nothing
    # under a final name, in particular no checkpoint.pt for Snakemake or evaluate to take as done.
    names = sorted(p.name for p in model_dir.iterdir())
    assert "checkpoint.pt" not in names
    assert all(n == "state.pt" or TMP_NAME.match(n) for n in names), names
    resumed_from = _state_step(state)
    assert CHECKPOINT_EVERY <= resumed_from < STEPS and resumed_from % CHECKPOINT_EVERY == 0

    # No --rerun-incomplete: the job's only declared output (checkpoint.pt) does not exist, so Snakemake
    # simply reruns the job; its incomplete-marker would only matter for an existing output file.
    _unlock(run)
    _ok(snakemake(run, "--cores", "1", CKPT, timeout=600))

    # The rerun started from the state the kill left (its progress bar opens at that step) ...
    rule_log = (run / f"logs/train/{DATASET}/sop.log").read_text()
    first_bar = re.search(r"train sop:.*?\|\s*(\d+)/(\d+)", rule_log)
    assert first_bar, rule_log[-2000:]
    assert (int(first_bar.group(1)), int(first_bar.group(2))) == (resumed_from, STEPS)
    assert not state.exists()  # removed once the final checkpoint is in place

    # ... and ends with exactly the weights (and final loss) of the uninterrupted run.
    got, want = checkpoint.load(run / CKPT), checkpoint.load(ref / CKPT)
    assert got["model"].keys() == want["model"].keys()
    unequal = [k for k in want["model"] if not torch.equal(got["model"][k], want["model"][k])]
    assert not unequal, f"weights differ after resume: {unequal}"
    assert got["meta"]["final_loss"] == want["meta"]["final_loss"]

    # The train log of the resumed run has every step once, with the uninterrupted run's losses.
    got_log = pd.read_csv(model_dir / "train_log.csv")
    want_log = pd.read_csv(ref / CKPT.rsplit("/", 1)[0] / "train_log.csv")
    assert list(got_log["step"]) == list(range(1, STEPS + 1))
    pd.testing.assert_frame_equal(got_log[["step", "loss", "lr"]], want_log[["step", "loss", "lr"]])

    again = snakemake(run, "-n", "--cores", "1", CKPT, timeout=300)
    _ok(again)
    assert "Nothing to be done" in again.stdout + again.stderr


# --------------------------------------------------------------------------------------------------
# a data stage
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkilled_extract_stage_leaves_nothing_a_rerun_mistakes_for_done(base, tmp_path):
    run = _clone(base, tmp_path / "run")
    out = run / f"data/{DATASET}/extract"
    shutil.rmtree(out)

    log = tmp_path / "killed.out"
    proc = _start(run, log, "--cores", "2", EXTRACT)
    _kill_when(proc, log, lambda: bool(_final_names(out / "audio")))

    # The stage's declared output is absent, so Snakemake cannot take the stage as done.
    assert not (out / "manifest.parquet").exists()
    ref = base / f"data/{DATASET}/extract"
    finished = _final_names(out / "audio")
    assert 0 < len(finished) < N_CLIPS, finished
    # Whatever is under a final name is complete (identical to the uninterrupted run's file); anything
    # partial is under a hidden temporary name.
    for name in finished:
        assert (out / "audio" / name).read_bytes() == (ref / "audio" / name).read_bytes(), name
    for name in _final_names(out / "frames"):
        assert _tree(out / "frames" / name) == _tree(ref / "frames" / name), name

    _unlock(run)
    _ok(snakemake(run, "--cores", "2", EXTRACT, timeout=600))

    assert f"extract {DATASET}: ok={N_CLIPS} failed=0" in (run / f"logs/extract/{DATASET}.log").read_text()
    got = pd.read_parquet(out / "manifest.parquet")
    assert len(got) == N_CLIPS and (got["status"] == "ok").all()
    # Same manifest and byte-identical clip outputs as the uninterrupted run: the rerun redid what the
    # kill cut short and only reused complete clips.
    pd.testing.assert_frame_equal(got, pd.read_parquet(ref / "manifest.parquet"))
    for row in got.itertuples():
        assert (out / row.audio).read_bytes() == (ref / row.audio).read_bytes(), row.audio
        frames = _tree(out / row.frames)
        assert len(frames) == row.n_frames and frames == _tree(ref / row.frames), row.frames
    # The killed run's temporaries were cleared, not left to accumulate.
    assert _hidden_temporaries(out) == []


# --------------------------------------------------------------------------------------------------
# unit level: atomic_path / atomic_dir in a process that is SIGKILLed mid-write
# --------------------------------------------------------------------------------------------------

_WRITER = r"""
import sys, time
from pathlib import Path
from avsep.core.io import atomic_dir, atomic_path

kind, dest = sys.argv[1], Path(sys.argv[2])
if kind == "file":
    with atomic_path(dest) as tmp, open(tmp, "wb") as f:
        f.write(b"partial" * 10000)
        f.flush()
        print(tmp.name, flush=True)
        time.sleep(120)
else:
    with atomic_dir(dest) as tmp:
        (tmp / "000001.jpg").write_bytes(b"partial")
        print(tmp.name, flush=True)
        time.sleep(120)
"""


def _kill_writer(kind: str, dest: Path) -> str:
    """Run a writer that stops mid-write inside the atomic block, SIGKILL it; return its temporary's name."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, kind, str(dest)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "writer did not reach its atomic block within 60 s"
        tmp_name = proc.stdout.readline().strip()
        assert tmp_name, proc.stderr.read()
    finally:
        proc.kill()  # SIGKILL
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return tmp_name


@pytest.mark.parametrize("existing", [False, True], ids=["new", "over-old"])
def test_atomic_path_killed_mid_write_leaves_only_a_hidden_temporary(tmp_path, existing):
    dest = tmp_path / "clip.wav"
    if existing:
        dest.write_bytes(b"old complete file")
    tmp_name = _kill_writer("file", dest)
    assert re.fullmatch(r"\.clip\..+\.tmp\.wav", tmp_name), tmp_name
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([tmp_name] + (["clip.wav"] if existing else []))
    if existing:
        assert dest.read_bytes() == b"old complete file"  # never replaced by the partial one
    else:
        assert not dest.exists()


def test_atomic_dir_killed_mid_write_leaves_only_a_hidden_temporary(tmp_path):
    dest = tmp_path / "frames" / "clip"
    tmp_name = _kill_writer("dir", dest)
    assert re.fullmatch(r"\.clip\..+\.tmp", tmp_name), tmp_name
    assert [p.name for p in dest.parent.iterdir()] == [tmp_name]
    assert not dest.exists()
