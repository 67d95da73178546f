"""Snakemake script: pre-train the small CLAP on the pre-training set (rule pretrain_clap)."""
from avsep.stages import pretrain
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    i, o = snakemake.input, snakemake.output  # noqa: F821
    pretrain.pretrain_clap(p, i.manifest, o.weights, o.pretrain_log)
