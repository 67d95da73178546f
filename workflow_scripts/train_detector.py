"""Snakemake script: train the YOLO detector on a synthetic dataset's frames (rule train_detector)."""
from avsep.stages import detect
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    i = snakemake.input  # noqa: F821
    detect.train_detector(p, snakemake.wildcards.dataset, i.manifest, i.boxes, snakemake.output.weights)  # noqa: F821
