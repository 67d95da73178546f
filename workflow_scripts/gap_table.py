"""Snakemake script: HFRA Table 5, modality gap (rule gap_table)."""
from avsep.stages import report
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    i, o = snakemake.input, snakemake.output  # noqa: F821
    report.gap_table(p, "table5", i.manifest, list(i.checkpoints), (i.clip_npy, i.clip_idx), o.table, o.vs_paper)
