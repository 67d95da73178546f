"""Snakemake script: train one model variant (rule train)."""
from avsep import stages
from avsep.workflow import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    w = snakemake.wildcards  # noqa: F821
    stages.train_model(p, w.dataset, w.model, snakemake.input[0], snakemake.output.checkpoint)  # noqa: F821
