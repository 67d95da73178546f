"""Snakemake script: score the trained detectors on held-out synthetic frames (rule detector_report)."""
from avsep.stages import detect
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    s = snakemake  # noqa: F821
    detect.detector_report(p, list(s.params.datasets), list(s.input.weights), s.output[0])
