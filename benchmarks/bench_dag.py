"""Benchmark: the demo DAG from a fresh clone -- wall time, a second run, a changed parameter, memory per stage.

Run from the repository root (the project installed, e.g. ``. .venv/bin/activate``)::

    python benchmarks/bench_dag.py [--target results/table1.csv] [--cores 2] [--workdir DIR] [--keep]

It clones the committed HEAD of this repository into a temporary directory (uncommitted changes are not
measured: commit first) and there

1. runs ``snakemake --cores N TARGET`` and times it (target: <= 5 min for ``results/table1.csv``,
   <= 20 min for ``all``);
2. runs the same command again: it must run no job and take <= 10 s;
3. changes ``train.lr`` in the clone's ``params.yaml`` and asks Snakemake (``-n``) what it would rerun:
   exactly the training jobs, the evaluations of the trained models and the tables built on them, not the
   data, cache or baseline jobs;
4. reads every job's ``logs/benchmarks/**.tsv`` (its usage log, written by ``avsep.stages.context.rule_context``)
   and reports the peak RSS of each stage (target: every stage < 4 GiB) and the CPU seconds per stage.

Timings are not tests: they depend on the machine and what else runs on it. ``run(argv)`` returns the
figures as records for ``benchmarks/run_all.py``; ``main()`` prints them.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEMO_LIMIT_S = {"results/table1.csv": 300.0, "all": 1200.0}
NOOP_LIMIT_S = 10.0
RSS_LIMIT_MB = 4096.0
#: What a changed training parameter may rerun (and must rerun: the rules downstream of training).
DOWNSTREAM_OF_TRAINING = {"train", "evaluate", "separation_table", "probe_table", "gap_table", "per_instrument_table",
                          "figure3", "table_metrics", "table_plots",
                          "figure1",  # colours each class by its best fusion in Table A1, made from the evaluations
                          "all"}  # the target rule of `--target all`, listed as a job of its own


def record(name: str, value: Any, target: str, passed: bool | None, unit: str = "") -> dict[str, Any]:
    return {"name": name, "value": value, "target": target, "passed": passed, "unit": unit}


def snakemake(workdir: Path, *args: str, env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    """Run snakemake in ``workdir``; returns (wall seconds, the finished process)."""
    cmd = [sys.executable, "-m", "snakemake", *args]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, check=False)
    return time.perf_counter() - t0, res


def planned_jobs(text: str) -> list[tuple[str, str]]:
    """(rule, wildcards) of each job a dry run lists."""
    jobs, rule = [], None
    for line in text.splitlines():
        m = re.match(r"^\s*(?:local)?rule (\w+):\s*$", line)
        if m:
            rule = m.group(1)
            jobs.append((rule, ""))
            continue
        m = re.match(r"^\s+wildcards: (.*)$", line)
        if m and jobs and rule is not None:
            jobs[-1] = (rule, m.group(1).strip())
    return jobs


def stage_benchmarks(workdir: Path) -> dict[str, dict[str, float]]:
    """Per stage (the rule: ``logs/benchmarks/<rule>/...``): peak RSS (MiB), CPU seconds and wall seconds summed."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"max_rss": 0.0, "cpu_s": 0.0, "wall_s": 0.0, "jobs": 0})
    for f in sorted((workdir / "logs/benchmarks").rglob("*.tsv")):
        rule = f.relative_to(workdir / "logs/benchmarks").parts[0]
        with open(f) as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if not rows:
            continue
        r = rows[-1]
        st = out[rule]
        rss = _num(r.get("max_rss"))
        st["max_rss"] = max(st["max_rss"], rss)
        st["cpu_s"] += _num(r.get("cpu_time"))
        st["wall_s"] += _num(r.get("s"))
        st["jobs"] += 1
    return dict(out)


def _num(x: str | None) -> float:
    try:
        return float(x) if x not in (None, "", "NA", "-") else 0.0
    except ValueError:
        return 0.0


def bump_train_lr(text: str) -> str:
    """``params.yaml``'s text with ``train.lr`` (the first ``lr:`` of the top-level ``train:`` block) times 1.1."""
    m = re.search(r"(?m)^train:\n(?:(?:[ \t].*|)\n)*?([ \t]+lr: )([0-9.eE+-]+)", text)
    if m is None:
        raise RuntimeError("could not find train.lr in params.yaml to change")
    new = f"{float(m.group(2)) * 1.1:.6g}"
    return text[:m.start(2)] + new + text[m.end(2):]


def run(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="results/table1.csv")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="clone here (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the clone")
    args = parser.parse_args(argv)

    base = args.workdir or Path(tempfile.mkdtemp(prefix="avsep-bench-dag-"))
    clone = base / "clone"
    if clone.exists():
        shutil.rmtree(clone)
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True,
                          check=True).stdout.strip()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "YOLO_OFFLINE": "1",
           # the clone's package, not the editable install's working tree (which may have changed since HEAD)
           "PYTHONPATH": os.pathsep.join(p for p in (str(clone), os.environ.get("PYTHONPATH", "")) if p)}
    recs: list[dict[str, Any]] = []
    try:
        wall, res = snakemake(clone, "--cores", str(args.cores), args.target, env=env)
        if res.returncode != 0:
            raise RuntimeError(f"snakemake {args.target} failed in {clone}:\n{res.stderr[-3000:]}")
        limit = DEMO_LIMIT_S.get(args.target)
        recs.append(record(f"DAG {args.target} from a fresh clone ({head}, --cores {args.cores})", round(wall, 1),
                           f"<= {limit:.0f} s" if limit else "-", wall <= limit if limit else None, "s"))

        wall2, res2 = snakemake(clone, "--cores", str(args.cores), args.target, env=env)
        text2 = res2.stdout + res2.stderr
        nothing = res2.returncode == 0 and "Nothing to be done" in text2
        recs.append(record("second run, nothing changed", round(wall2, 1), f"<= {NOOP_LIMIT_S:.0f} s, no job",
                           nothing and wall2 <= NOOP_LIMIT_S, "s"))

        params = clone / "params.yaml"
        text = params.read_text()
        changed = bump_train_lr(text)
        params.write_text(changed)
        _, res3 = snakemake(clone, "-n", "--cores", str(args.cores), args.target, env=env)
        params.write_text(text)
        jobs = planned_jobs(res3.stdout + res3.stderr)
        rules = {r for r, _ in jobs}
        trained = sum(1 for r, _ in jobs if r == "train")
        ok = res3.returncode == 0 and trained > 0 and rules <= DOWNSTREAM_OF_TRAINING and "evaluate" in rules
        recs.append(record("train.lr changed: jobs planned", ", ".join(f"{r}" + (f"[{w}]" if w else "") for r, w in jobs),
                           "only train and what reads its checkpoints", ok))

        stages = stage_benchmarks(clone)
        worst = max(stages.items(), key=lambda kv: kv[1]["max_rss"])
        for rule, st in sorted(stages.items(), key=lambda kv: -kv[1]["cpu_s"]):
            recs.append(record(f"stage {rule}: peak RSS ({st['jobs']:.0f} jobs, {st['cpu_s']:.0f} CPU s, "
                               f"{st['wall_s']:.0f} s wall summed)", round(st["max_rss"]), f"< {RSS_LIMIT_MB:.0f} MiB",
                               st["max_rss"] < RSS_LIMIT_MB, "MiB"))
        recs.append(record(f"largest peak RSS of any stage ({worst[0]})", round(worst[1]["max_rss"]),
                           f"< {RSS_LIMIT_MB:.0f} MiB", worst[1]["max_rss"] < RSS_LIMIT_MB, "MiB"))
        table = clone / args.target
        if table.suffix == ".csv" and table.exists():
            print(f"== {args.target}\n{table.read_text()}", flush=True)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(base, ignore_errors=True)
    return recs


def print_records(recs: list[dict[str, Any]]) -> None:
    for r in recs:
        verdict = {True: "PASS", False: "FAIL", None: "-"}[r["passed"]]
        print(f"{verdict:4}  {r['name']}: {r['value']} {r['unit']}  (target {r['target']})", flush=True)


def main(argv: list[str] | None = None) -> None:
    print_records(run(argv))


if __name__ == "__main__":
    main()
