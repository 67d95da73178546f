"""Snakemake script: write a separation table and its paper comparison (rule separation_table)."""
from avsep import stages
from avsep.workflow import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    o = snakemake.output  # noqa: F821
    stages.table(p, snakemake.wildcards.table, list(snakemake.input.summaries), o.table, o.vs_paper)  # noqa: F821
