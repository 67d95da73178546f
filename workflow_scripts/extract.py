"""Snakemake script: extract audio and frames (rule extract)."""
from avsep.stages import data
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    data.extract(p, snakemake.wildcards.dataset, snakemake.input[0], snakemake.output[0])  # noqa: F821
