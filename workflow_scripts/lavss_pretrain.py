"""Snakemake script: monaural pre-training of a LAVSS architecture (rule lavss_pretrain)."""
from avsep.stages import lavss
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    i = snakemake.input  # noqa: F821
    lavss.lavss_pretrain(p, snakemake.wildcards.pre, i.manifest, list(i.boxes), snakemake.output.checkpoint,  # noqa: F821
                         threads=snakemake.threads)  # noqa: F821
