"""Paper-size training on a GPU: step time and peak GPU memory of HFRA-family and LAVSS training.

The models, the front-ends and the optimiser are those of ``params/paper.yaml`` (HFRA: 256 x 256 at 11,625 Hz,
U-Net7 of width 64, batch 32; LAVSS: 11,025 Hz, 2.5D-sep backbone with position, IPD and attention, batch 32).
The data are synthetic clips rendered and extracted by the DAG (the encoders are the offline stand-ins: random
CLIP and CLAP, a ResNet-18 state dict written here), so the run needs no internet; the training itself is the
pipeline's own stage code (:func:`avsep.stages.train.train`, :func:`avsep.stages.lavss.lavss_train`).

Two steps, so the GPU machine only trains::

    python benchmarks/paper_size_gpu.py prepare .gpu/paper --steps 300   # here (CPU): render, extract, caches
    python benchmarks/paper_size_gpu.py run .gpu/paper                    # on the GPU machine

``run`` prints one row per model (steps, batch, seconds per step after the first logged interval, samples per
second, peak GPU memory) and writes ``results.json`` and ``results.md`` into the folder (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
HFRA_MODELS = ("sop", "hfra_align")
LAVSS_MODEL = "sep_pos_ipd"  # the paper's LAVSS architecture (2.5D-sep, position, IPD, VP/AVP attention), no pre-training
WORKFLOW = ("Snakefile", "rules", "workflow_scripts", "envs", "avsep", "report")


def bench_params(steps: int, weights: str) -> dict[str, Any]:
    """params/paper.yaml at full size on synthetic clips (2 training clips per class); offline encoders; ``steps`` of
    batch 32 on 256 distinct training mixtures, repeated (the CLAP cache embeds each once; the step does not depend
    on it)."""
    from avsep.config.paper import on_synthetic_data, paper_params

    raw = on_synthetic_data(paper_params(), weights, clips_per_class=2, steps=steps, batch_size=32, clip_seconds=7.0,
                            frame_size=128)
    raw["mixing"]["train_mixtures"] = {"per_epoch": 256, "distinct_epochs": 1}
    return raw


def prepare(folder: Path, steps: int) -> None:
    """Render and extract the synthetic clips and build every training input (CPU), into ``folder``."""
    import torch
    from torchvision.models import resnet18

    work = folder / "work"
    work.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW:
        src, dst = ROOT / name, work / name
        if dst.exists():
            shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
        (shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__")) if src.is_dir()
         else shutil.copy(src, dst))
    torch.manual_seed(0)
    torch.save(resnet18().state_dict(), work / "resnet18.pth")
    params = bench_params(steps, "resnet18.pth")
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    targets = [f"models/synth-music/{m}/checkpoint.pt" for m in HFRA_MODELS]
    targets.append(f"models/synth-fairplay/lavss/{LAVSS_MODEL}/checkpoint.pt")
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *targets, "--omit-from", "train", "lavss_train"]
    subprocess.run(cmd, cwd=work, check=True)
    shutil.rmtree(work / ".snakemake", ignore_errors=True)
    for name in WORKFLOW:  # the GPU machine runs the checkout's own package
        p = work / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    for f in [work / "resnet18.pth", *work.glob("data/*/raw/**/*.mp4")]:  # remade by `run` / not read by training
        f.unlink()
    print(f"prepared {work}: {sum(f.stat().st_size for f in work.rglob('*') if f.is_file()) / 2**20:.1f} MiB")


def _step_seconds(log: Path) -> tuple[float, int]:
    """Median seconds per step between logged rows after the first (warm-up, cuDNN autotuning), and steps."""
    import pandas as pd

    df = pd.read_csv(log)
    t, s = df["seconds"].to_numpy(), df["step"].to_numpy()
    per = (t[1:] - t[:-1]) / (s[1:] - s[:-1])
    return float(sorted(per)[len(per) // 2]), int(s[-1])


def run(folder: Path, out: Path, cpu: bool = False) -> list[dict[str, Any]]:
    """Train the HFRA-family models and LAVSS on the GPU through the stage code; time and measure them."""
    import os

    import torch

    from avsep.config.params import Params
    from avsep.data.boxes import box_inputs
    from avsep.stages.lavss import lavss_train
    from avsep.stages.train import train

    gpu = torch.cuda.is_available()
    if not gpu and not cpu:
        raise SystemExit("no GPU: this benchmark measures GPU training (run it on a GPU machine)")
    work = folder / "work"
    os.chdir(work)
    if not Path("resnet18.pth").exists():  # the same seeded state dict `prepare` wrote (45 MB: not carried)
        from torchvision.models import resnet18

        torch.manual_seed(0)
        torch.save(resnet18().state_dict(), "resnet18.pth")
    p = Params(yaml.safe_load(Path("params.yaml").read_text()))
    rows = []
    jobs: list[tuple[str, Any]] = []
    emb = "data/synth-music/embed"
    for m in HFRA_MODELS:
        v = p.model(m)
        clip = [(f"{emb}/clip_train.npy", f"{emb}/clip_train.parquet")] if v.uses_embeddings else None
        clap = (f"{emb}/clap_mixtures.npy", f"{emb}/clap_mixtures.parquet") if v.aligned else None
        jobs.append((m, lambda m=m, clip=clip, clap=clap: train(
            p, "synth-music", m, "data/synth-music/extract/manifest.parquet", f"models/synth-music/{m}/checkpoint.pt",
            "data/synth-music/train_mixtures.parquet", clip, clap, launch=False)))
    pool = Path("data/synth-fairplay/lavss/clips.parquet")
    jobs.append((LAVSS_MODEL, lambda: lavss_train(
        p, LAVSS_MODEL, "data/synth-fairplay/extract/manifest.parquet", box_inputs("ground_truth", "synth-fairplay"),
        f"models/synth-fairplay/lavss/{LAVSS_MODEL}/checkpoint.pt", None, pool=pool if pool.exists() else None)))
    for name, job in jobs:
        if gpu:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.time()
        ckpt = Path(job())
        wall = time.time() - t0
        sec, steps = _step_seconds(ckpt.parent / "train_log.csv")
        batch = p.lavss.train.batch_size if name == LAVSS_MODEL else p.train.batch_size
        rows.append({"model": name, "steps": steps, "batch": batch, "s_per_step": round(sec, 4),
                     "samples_per_s": round(batch / sec, 1), "peak_gpu_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if gpu else None,
                     "wall_s": round(wall, 1), "gpu": torch.cuda.get_device_name(0) if gpu else "cpu", "torch": torch.__version__})
        print(json.dumps(rows[-1]), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    head = "| model | steps | batch | s/step | samples/s | peak GPU memory (GiB) | wall (s) |\n|---|---|---|---|---|---|---|\n"
    body = "".join(f"| {r['model']} | {r['steps']} | {r['batch']} | {r['s_per_step']} | {r['samples_per_s']} | "
                   f"{r['peak_gpu_mem_gib']} | {r['wall_s']} |\n" for r in rows)
    (out / "results.md").write_text(head + body)
    print(head + body)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("prepare")
    a.add_argument("folder", type=Path)
    a.add_argument("--steps", type=int, default=300)
    b = sub.add_parser("run")
    b.add_argument("folder", type=Path)
    b.add_argument("--out", type=Path, default=None)
    b.add_argument("--cpu", action="store_true", help="run without a GPU (a check of the paths; params.yaml's steps)")
    args = ap.parse_args()
    if args.cmd == "prepare":
        prepare(args.folder.resolve(), args.steps)
    else:
        run(args.folder.resolve(), (args.out or args.folder).resolve(), cpu=args.cpu)


if __name__ == "__main__":
    main()
