"""Snakemake script: parse the fetched metadata into the clip table (rule clips)."""
from avsep.stages import data
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    data.clips(p, snakemake.wildcards.dataset, snakemake.input.record, snakemake.output[0])  # noqa: F821
