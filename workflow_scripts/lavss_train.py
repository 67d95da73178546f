"""Snakemake script: train one LAVSS-table variant on the binaural dataset (rule lavss_train)."""
from avsep.stages import lavss
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    i = snakemake.input  # noqa: F821
    init = i.init if hasattr(i, "init") else None
    lavss.lavss_train(p, snakemake.wildcards.variant, i.manifest, list(i.boxes), snakemake.output.checkpoint,  # noqa: F821
                      init, threads=snakemake.threads, pool=i.pool)  # noqa: F821
