"""Snakemake script: write a separation table and its paper comparison (rule separation_table)."""
from avsep.stages import report
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    o = snakemake.output  # noqa: F821
    i = snakemake.input  # noqa: F821
    report.separation_table(p, snakemake.wildcards.table, list(i.summaries), list(i.per_mixture), o.table, o.vs_paper)  # noqa: F821
