"""Every performance figure of the project, each with its target and PASS/FAIL, measured in one run.

Run from the repository root (the project installed, e.g. ``. .venv/bin/activate``)::

    python benchmarks/run_all.py                 # metrics, training step, the demo DAG from a fresh clone
    python benchmarks/run_all.py --only metrics  # one of: metrics, train, dag
    python benchmarks/run_all.py --dag-target all  # the whole default DAG instead of results/table1.csv

The parts (each also a script of its own, with more options):

- ``bench_metrics.py``: BSS Eval SDR/SIR/SAR against ``mir_eval`` (speed-up and largest difference);
- ``bench_train_step.py``: samples/s of each model family's training step against the same architecture
  written plainly (CLIP on the fly), FLOP/s against the machine's matmul peak, GPU figures when one is there;
- ``bench_dag.py``: the demo from a fresh clone of HEAD, a second run, a changed parameter, memory per stage.

It prints one line per figure and ends with the count of PASS and FAIL; the exit status is 1 if any failed.
Results with their date, machine and command: ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PARTS = {"metrics": "bench_metrics", "train": "bench_train_step", "dag": "bench_dag"}


def _module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {HERE / name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, Python {platform.python_version()}"


def line(r: dict[str, Any]) -> str:
    """One figure: verdict, name, value (4 significant digits) and unit, and its target if it has one."""
    verdict = {True: "PASS", False: "FAIL", None: "-"}[r["passed"]]
    value = f"{r['value']:.4g}" if isinstance(r["value"], float) else str(r["value"])
    target = f"  (target {r['target']})" if r.get("target") not in (None, "-") else ""
    return f"{verdict:4}  {r['name']}: {value} {r.get('unit') or ''}".rstrip() + target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(PARTS), action="append", help="run only these parts")
    parser.add_argument("--dag-target", default="results/table1.csv")
    args = parser.parse_args(argv)
    parts = args.only or list(PARTS)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} on {machine()}", flush=True)
    records: list[dict[str, Any]] = []
    for part in parts:
        if not (HERE / f"{PARTS[part]}.py").is_file():
            print(f"## {part}: {PARTS[part]}.py is not in this revision (see benchmarks/README.md)", flush=True)
            records.append({"name": f"{part}: not measured", "value": "-", "target": None, "passed": None, "unit": ""})
            continue
        mod = _module(PARTS[part])
        part_args = ["--target", args.dag_target] if part == "dag" else []
        print(f"## {part} ({PARTS[part]}.py {' '.join(part_args)})".rstrip(), flush=True)
        t0 = time.perf_counter()
        recs = mod.run(part_args)
        for r in recs:
            print(line(r), flush=True)
        print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
        records += recs
    passed = sum(r["passed"] is True for r in records)
    failed = sum(r["passed"] is False for r in records)
    print(f"# {passed} PASS, {failed} FAIL, {len(records) - passed - failed} reported without a target", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
