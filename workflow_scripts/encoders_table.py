"""Snakemake script: zero-shot accuracy of the pre-trained and random encoders (rule encoders_table)."""
from avsep.stages import pretrain
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    i, o = snakemake.input, snakemake.output  # noqa: F821
    manifests = dict(zip(snakemake.params.datasets, i.manifests))  # noqa: F821
    pretrain.encoders_table(p, i.clip, i.clap, manifests, o.table)
