"""Snakemake script: a table's numbers as JSON for DVC metrics (rule table_metrics)."""
from avsep.stages import metrics
from avsep.stages.context import rule_context

with rule_context(snakemake):  # noqa: F821 - injected by Snakemake
    metrics.table_metrics(snakemake.wildcards.table, snakemake.input.table, snakemake.output[0])  # noqa: F821
