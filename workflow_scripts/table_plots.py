"""Snakemake script: a table's training curves and per-instrument SDR for DVC plots (rule table_plots)."""
from avsep.stages import metrics
from avsep.stages.context import rule_context

with rule_context(snakemake):  # noqa: F821 - injected by Snakemake
    i = snakemake.input  # noqa: F821
    metrics.table_plots(snakemake.wildcards.table, snakemake.output[0], list(i.train_logs), list(i.per_mixture),  # noqa: F821
                        int(snakemake.params.num_sources))  # noqa: F821
