"""Snakemake script: a LAVSS table and the paper's numbers beside it (rule lavss_table)."""
from avsep.stages import lavss
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    i, o = snakemake.input, snakemake.output  # noqa: F821
    lavss.lavss_table(
        p, snakemake.wildcards.ltable, list(i.summaries), list(i.per_mixture), o.table, o.vs_paper,  # noqa: F821
        same_type=list(i.same_type) if hasattr(i, "same_type") else None,
    )
