"""Snakemake script: extract audio and frames (rule extract)."""
from avsep import stages
from avsep.workflow import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    stages.extract(p, snakemake.wildcards.dataset, snakemake.input[0], snakemake.output[0])  # noqa: F821
