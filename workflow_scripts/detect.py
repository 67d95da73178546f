"""Snakemake script: boxes and per-clip objects of every extracted clip (rule detect)."""
from avsep.stages import detect
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    s = snakemake  # noqa: F821
    detect.detect(p, s.wildcards.dataset, s.input.manifest, s.params.weights, s.output.boxes, s.output.objects)
