"""Snakemake script: spectrograms of one LAVSS test mixture, truth and each method per ear (rule lavss_figure)."""
from avsep.config.lavss import MIX_GT
from avsep.stages import lavss
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    i = snakemake.input  # noqa: F821
    methods = list(snakemake.params.methods)  # noqa: F821
    ckpts = iter(i.checkpoints)
    per_method = [None if m == MIX_GT else next(ckpts) for m in methods]
    lavss.lavss_figure(p, snakemake.wildcards.kind, i.manifest, list(i.boxes), i.mixtures, methods, per_method,  # noqa: F821
                       snakemake.output.png)  # noqa: F821
