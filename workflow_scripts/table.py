"""Snakemake script: write a separation table (rules table1, ...)."""
from avsep import stages
from avsep.workflow import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    stages.table(p, snakemake.rule, list(snakemake.input.summaries), snakemake.output[0])  # noqa: F821
