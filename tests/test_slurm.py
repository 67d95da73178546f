"""The SLURM profile (``profiles/slurm``) against a real single-node SLURM cluster started by the test.

``scripts/slurm_local.sh`` starts munged, slurmctld and slurmd (root; Debian packages slurmctld slurmd
slurm-client munge, installed by ``.ci/run``) and stops them again by PID. Its node declares one GPU as a
GRES backed by a null device, so a job that asks for a GPU is scheduled with one (``CUDA_VISIBLE_DEVICES``
set) and runs on the CPU. Jobs go through ``snakemake --executor slurm`` with the profile as a user of such
a cluster would edit it (``_local_profile``). A wrapper first on ``PATH`` records every ``sbatch`` call
(argv as JSON), then runs the real ``sbatch`` or, where a test says so, refuses the submission.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from workflow_helpers import ROOT, copy_workflow, default_params, micro_params, snakemake, write_params

SCRIPT = ROOT / "scripts/slurm_local.sh"
PROFILE = ROOT / "profiles/slurm/config.yaml"
BINARIES = ("munged", "munge", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "srun", "scancel")
#: Hard limit on one Snakemake run: without slurmdbd a wrong status command makes it wait forever, and it
#: ignores SIGTERM then, so it gets SIGKILL.
RUN_LIMIT_S = 240
INIT_SECONDS = 1  # first status check after 1 s (slurm_local.sh sets MinJobAge=300 >= 3 x this)
#: Rules that run on a GPU (the profile's set-resources give them one); every other rule runs on CPUs.
GPU_RULES = {"train", "lavss_pretrain", "lavss_train", "train_detector", "detect", "clip_cache", "clap_cache"}


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (slurmd runs jobs as the submitting user)"
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        return f"SLURM not installed (missing {', '.join(missing)}): apt-get install slurmctld slurmd slurm-client munge"
    return None


def _sbatch_wrapper(bin_dir: Path, submit: bool) -> Path:
    """An ``sbatch`` that appends its argv to ``$AVSEP_SBATCH_LOG``, then submits for real or refuses."""
    bin_dir.mkdir(parents=True)
    real = shutil.which("sbatch")
    then = (
        f"os.execv({real!r}, [{real!r}, *sys.argv[1:]])\n"
        if submit
        else "sys.exit('sbatch: error: submission refused by the test (recorded)')\n"
    )
    wrapper = bin_dir / "sbatch"
    wrapper.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "with open(os.environ['AVSEP_SBATCH_LOG'], 'a') as f:\n"
        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n" + then
    )
    wrapper.chmod(0o755)
    return bin_dir


def _env(bin_dir: Path, sbatch_log: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "AVSEP_SBATCH_LOG": str(sbatch_log),
        "PYTHONUNBUFFERED": "1",
    }


def _sbatch_calls(sbatch_log: Path) -> list[list[str]]:
    if not sbatch_log.exists():
        return []
    return [json.loads(line) for line in sbatch_log.read_text().splitlines() if line]


@dataclass
class Cluster:
    state: Path
    pids: dict[str, int]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    reason = _unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the SLURM test: {reason}")
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("slurm")
    state = base / "state"
    pids: dict[str, int] = {}
    run_munge_existed = Path("/run/munge").exists()
    try:
        start = subprocess.run(["bash", str(SCRIPT), "start", str(state)], check=False, capture_output=True, text=True, timeout=120)
        if (state / "pids").exists():
            pids = {n: int(p) for n, p in (line.split() for line in (state / "pids").read_text().splitlines())}
        assert start.returncode == 0, start.stdout + start.stderr
        assert set(pids) == {"munged", "slurmctld", "slurmd"} and all(_alive(p) for p in pids.values()), pids
        yield Cluster(state=state, pids=pids)
    finally:
        if state.exists():
            stop = subprocess.run(["bash", str(SCRIPT), "stop", str(state)], check=False, capture_output=True, text=True, timeout=120)
            assert stop.returncode == 0, stop.stdout + stop.stderr
        # Nothing left behind: every daemon it started is gone, its config and state removed.
        assert not [name for name, pid in pids.items() if _alive(pid)], pids
        assert not Path("/etc/slurm/slurm.conf").exists()
        assert not Path("/etc/slurm/gres.conf").exists()
        assert not state.exists()
        assert Path("/run/munge").exists() == run_munge_existed


def _local_profile(dest: Path, *, mem_cap_mb: int | None = None) -> dict:
    """``profiles/slurm/config.yaml`` as a user of this cluster would edit it.

    This cluster has no accounting database: no account (the plugin validates accounts with sacctmgr)
    and job status from ``squeue``; status checks start after 1 s (the profile's 40 s suit a busy
    cluster). Memory requests are capped to ``mem_cap_mb`` where jobs really run on this node.
    Partitions, GPU requests, wall times and everything else are the profile's own.
    """
    profile = yaml.safe_load(PROFILE.read_text())
    profile["default-resources"].pop("slurm_account")
    profile["slurm-status-command"] = "squeue"
    profile["slurm-init-seconds-before-status-checks"] = INIT_SECONDS
    profile["seconds-between-status-checks"] = INIT_SECONDS
    profile["latency-wait"] = 5
    profile["retries"] = 0
    if mem_cap_mb is not None:
        for res in (profile["default-resources"], *profile["set-resources"].values()):
            res["mem_mb"] = min(res["mem_mb"], mem_cap_mb)
    dest.mkdir(parents=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return profile




def _run_slurm(workdir: Path, env: dict[str, str], *targets: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        "timeout", "-s", "KILL", str(RUN_LIMIT_S),
        sys.executable, "-m", "snakemake", "--profile", "profile", "--slurm-status-command", "squeue", *targets,
    ]
    return subprocess.run(cmd, check=False, cwd=workdir, env=env, capture_output=True, text=True, timeout=RUN_LIMIT_S + 30)


def _squeue_all() -> dict[str, dict[str, str]]:
    """Every job slurmctld still remembers (MinJobAge), by job id: state, partition, comment."""
    out = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--format=%i|%T|%P|%k"], capture_output=True, text=True, check=True
    ).stdout
    jobs = {}
    for line in out.splitlines():
        jid, st, part, comment = line.split("|")
        jobs[jid.strip()] = {"state": st, "partition": part, "comment": comment}
    return jobs


def _opt(call: list[str], name: str) -> str | None:
    """Value of option ``name`` (``-p X`` or ``--gpus=X`` form) in an sbatch argv, None when absent."""
    for i, a in enumerate(call):
        if a == name:
            return call[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


#: Three tiny rules; ``train`` is named like the workflow's training rule, so the profile gives it a GPU.
MICRO_SNAKEFILE = textwrap.dedent(
    r"""
    localrules: all

    rule all:
        input: "c.txt"

    rule a:
        output: "a.txt"
        log: "logs/a.log"
        shell: "echo a job=$SLURM_JOB_ID gpu=${{CUDA_VISIBLE_DEVICES:-none}} > {output} 2> {log}"

    rule train:
        output: "train.txt"
        log: "logs/train.log"
        shell: "echo train job=$SLURM_JOB_ID gpu=${{CUDA_VISIBLE_DEVICES:-none}} > {output} 2> {log}"

    rule c:
        input: "a.txt", "train.txt"
        output: "c.txt"
        log: "logs/c.log"
        shell: "(cat {input}; echo c job=$SLURM_JOB_ID gpu=${{CUDA_VISIBLE_DEVICES:-none}}) > {output} 2> {log}"
    """
)


@pytest.mark.slow
def test_micro_dag_runs_through_slurm(cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(MICRO_SNAKEFILE)
    profile = _local_profile(tmp_path / "profile", mem_cap_mb=2000)
    log = tmp_path / "sbatch.log"
    env = _env(_sbatch_wrapper(tmp_path / "bin", submit=True), log)
    res = _run_slurm(tmp_path, env, "c.txt")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]

    # Each rule ran as its own SLURM job; only `train` was given a GPU.
    runs = {}
    for line in (tmp_path / "c.txt").read_text().splitlines():
        rule, job, gpu = line.split()
        runs[rule] = {"job": job.removeprefix("job="), "gpu": gpu.removeprefix("gpu=")}
    assert list(runs) == ["a", "train", "c"]
    assert all(r["job"].isdigit() for r in runs.values()) and len({r["job"] for r in runs.values()}) == 3, runs
    assert runs["train"]["gpu"] == "0" and runs["a"]["gpu"] == runs["c"]["gpu"] == "none", runs

    calls = {_opt(c, "--comment"): c for c in _sbatch_calls(log)}
    assert set(calls) == {"rule_a", "rule_train", "rule_c"}
    defaults, train = profile["default-resources"], profile["set-resources"]["train"]
    for rule in ("a", "c"):
        call = calls[f"rule_{rule}"]
        assert _opt(call, "-p") == defaults["slurm_partition"] == "cpu"
        assert _opt(call, "--gpus") is None and _opt(call, "--gres") is None
        assert _opt(call, "-t") == str(defaults["runtime"])
    call = calls["rule_train"]
    assert _opt(call, "-p") == train["slurm_partition"] == "gpu"
    assert _opt(call, "--gpus") == str(train["gpu"]) == "1"
    assert _opt(call, "-t") == str(train["runtime"])

    jobs = _squeue_all()
    for rule, part in (("a", "cpu"), ("train", "gpu"), ("c", "cpu")):
        assert jobs[runs[rule]["job"]] == {"state": "COMPLETED", "partition": part, "comment": f"rule_{rule}"}


@pytest.mark.slow
def test_workflow_training_job_is_submitted_with_a_gpu(cluster: Cluster, tmp_path: Path) -> None:
    """The workflow's real ``train`` job, submitted by the plugin: the sbatch call asks for the profile's GPU.

    Its upstream outputs are stand-ins marked up to date, so training is the only job; the wrapper records
    the submission and refuses it (running training is the end-to-end tests' business).
    """
    copy_workflow(tmp_path)
    params = micro_params()
    write_params(tmp_path, params)
    dataset = next(iter(params["datasets"]))
    ckpt = f"models/{dataset}/sop/checkpoint.pt"
    upstream = snakemake(tmp_path, "-n", "--forceall", "--omit-from", "train", ckpt)
    assert upstream.returncode == 0, upstream.stderr[-3000:]
    outputs = [p for line in re.findall(r"^\s+output: (.+)$", upstream.stdout, re.MULTILINE) for p in line.split(", ")]
    assert f"data/{dataset}/extract/manifest.parquet" in outputs
    for out in outputs:
        (tmp_path / out).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / out).touch()
    touched = snakemake(tmp_path, "--touch", "--omit-from", "train", ckpt)
    assert touched.returncode == 0, touched.stderr[-3000:]

    profile = _local_profile(tmp_path / "profile")
    log = tmp_path / "sbatch.log"
    res = _run_slurm(tmp_path, _env(_sbatch_wrapper(tmp_path / "bin", submit=False), log), ckpt)
    assert res.returncode != 0 and "submission refused by the test" in res.stdout + res.stderr

    [call] = _sbatch_calls(log)
    train = profile["set-resources"]["train"]
    assert _opt(call, "--comment") == f"rule_train_wildcards_{dataset}_sop"
    assert f"--target-jobs 'train:dataset={dataset},model=sop'" in _opt(call, "--wrap")
    assert _opt(call, "--gpus") == str(train["gpu"]) == "1"
    assert _opt(call, "-p") == train["slurm_partition"] == "gpu"
    assert _opt(call, "-t") == str(train["runtime"])
    assert _opt(call, "--mem") == str(train["mem_mb"])


def test_profile_gives_gpus_to_gpu_rules_only(tmp_path: Path) -> None:
    """Every job of every table (dry run with the profile as shipped): GPU rules get a GPU, others none."""
    copy_workflow(tmp_path)
    params = default_params()
    write_params(tmp_path, params)
    tables = [*params["tables"], *(params.get("lavss") or {}).get("tables", {})]
    targets = [f"results/{t}.csv" for t in tables]
    res = snakemake(tmp_path, "-n", "--forceall", "--profile", str(PROFILE.parent), "all", *targets)
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(?:.*\n)*?\s+resources: (.*)$", res.stdout, re.MULTILINE)
    profile = yaml.safe_load(PROFILE.read_text())
    rules = {rule for rule, _ in jobs}
    assert {"synth", "extract", "train", "evaluate", "clip_cache"} <= rules, rules
    for rule, resources in jobs:
        res_map = dict(kv.split("=", 1) for kv in resources.split(", "))
        assert res_map["slurm_account"] == profile["default-resources"]["slurm_account"]
        if rule in GPU_RULES:
            assert res_map.get("gpu") == "1" and res_map["slurm_partition"] == "gpu", (rule, res_map)
        else:
            assert "gpu" not in res_map and res_map["slurm_partition"] == "cpu", (rule, res_map)
