"""Snakemake script: train the YOLO detector on a synthetic dataset's frames (rule train_detector)."""
from pathlib import Path

from avsep.stages import detect
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    i = snakemake.input  # noqa: F821
    boxes = Path(i.raw).parent / "boxes.parquet"
    detect.train_detector(p, snakemake.wildcards.dataset, i.manifest, boxes, snakemake.output.weights)  # noqa: F821
