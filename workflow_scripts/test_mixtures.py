"""Snakemake script: the fixed test mixture list (rule test_mixtures)."""
from avsep.stages import mix
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    mix.test_mixtures(
        p, snakemake.wildcards.dataset, snakemake.input[0], snakemake.output[0], snakemake.params.n_frames  # noqa: F821
    )
