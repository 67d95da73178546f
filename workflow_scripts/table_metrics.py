"""Snakemake script: a table's numbers as JSON for DVC metrics (rule table_metrics)."""
from avsep.reporting import tracking
from avsep.stages.context import rule_context

with rule_context(snakemake):  # noqa: F821 - injected by Snakemake
    m = tracking.write_table_metrics(snakemake.input.table, snakemake.output[0])  # noqa: F821
    print(f"{snakemake.wildcards.table}: {len(m)} rows -> {snakemake.output[0]}")  # noqa: F821
