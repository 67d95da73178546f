"""Snakemake script: score a non-learned baseline (rule evaluate_baseline)."""
from avsep.stages import evaluate
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    w, i, o = snakemake.wildcards, snakemake.input, snakemake.output  # noqa: F821
    evaluate.evaluate_baseline(p, w.dataset, w.baseline, i.manifest, i.mixtures, o.per_mixture, o.summary)
