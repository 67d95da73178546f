"""Snakemake script: render the encoder pre-training set (rule synth_pretrain)."""
from avsep.stages import pretrain
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    pretrain.synth_pretrain(p, snakemake.output.manifest, workers=snakemake.threads)  # noqa: F821
