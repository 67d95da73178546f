"""Snakemake script: render an embedded synthetic dataset (rule synth)."""
from avsep import stages
from avsep.workflow import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    stages.synth(p, snakemake.wildcards.dataset, snakemake.output[0])  # noqa: F821
