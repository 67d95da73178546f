"""Snakemake script: the acoustic properties per class of HFRA Figure 1 (rule acoustics)."""
from avsep.stages import report
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    report.acoustics(p, snakemake.wildcards.dataset, snakemake.input.manifest, snakemake.output[0])  # noqa: F821
