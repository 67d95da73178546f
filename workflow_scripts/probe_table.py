"""Snakemake script: HFRA Table 4, linear probing (rule probe_table)."""
from avsep.stages import report
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    i, o = snakemake.input, snakemake.output  # noqa: F821
    report.probe_table(p, "table4", i.manifest, list(i.checkpoints), (i.clap_npy, i.clap_idx), o.table, o.vs_paper)
