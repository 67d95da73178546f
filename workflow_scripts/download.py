"""Snakemake script: download / import the clips of a real dataset (checkpoint download)."""
from avsep.stages import data
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    data.download(p, snakemake.wildcards.dataset, snakemake.input.clips, snakemake.output[0])  # noqa: F821
