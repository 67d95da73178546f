"""Snakemake script: the fixed test mixture list (rule test_mixtures)."""
from avsep import stages
from avsep.workflow import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    stages.test_mixtures(  # noqa: F821
        p, snakemake.wildcards.dataset, snakemake.input[0], snakemake.output[0], snakemake.params.n_frames  # noqa: F821
    )
