"""Snakemake script: render an embedded synthetic dataset (rule synth)."""
from avsep.stages import data
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    data.synth(p, snakemake.wildcards.dataset, snakemake.output.manifest, workers=snakemake.threads)  # noqa: F821
