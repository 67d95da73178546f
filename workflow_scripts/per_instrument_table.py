"""Snakemake script: HFRA Table A1, per-instrument SDR (rule per_instrument_table)."""
from avsep.stages import report
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    o = snakemake.output  # noqa: F821
    report.per_instrument_table(p, "tableA1", list(snakemake.input.per_mixture), o.table, o.vs_paper)  # noqa: F821
