"""Snakemake script: HFRA Figure 1 (rule figure1)."""
from avsep.stages import report
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    i, o = snakemake.input, snakemake.output  # noqa: F821
    report.figure1(p, i.acoustics, i.table_a1, o.png, o.csv)
