"""Snakemake script: score a trained model (rule evaluate)."""
from avsep.stages import evaluate
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    w, i, o = snakemake.wildcards, snakemake.input, snakemake.output  # noqa: F821
    clip = [(i.clip_test_npy, i.clip_test_idx)] if hasattr(i, "clip_test_npy") else None
    evaluate.evaluate(p, w.dataset, w.model, i.manifest, i.mixtures, i.checkpoint, o.per_mixture, o.summary, clip)
