"""Snakemake script: fetch a real dataset's metadata files (rule metadata)."""
from avsep.stages import data
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    data.metadata(p, snakemake.wildcards.dataset, snakemake.output[0])  # noqa: F821
