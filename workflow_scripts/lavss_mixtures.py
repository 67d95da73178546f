"""Snakemake script: the seeded LAVSS test lists, different and same instrument (rule lavss_mixtures)."""
from avsep.stages import lavss
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    i, o = snakemake.input, snakemake.output  # noqa: F821
    lavss.lavss_mixtures(p, i.manifest, list(i.boxes), {"different": o.different, "same_type": o.same_type}, i.pool)
