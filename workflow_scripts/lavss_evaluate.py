"""Snakemake script: score a LAVSS-table method (or mix-gt) per ear on a test list (rule lavss_evaluate)."""
from avsep.stages import lavss
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    w, i, o = snakemake.wildcards, snakemake.input, snakemake.output  # noqa: F821
    ckpt = i.checkpoint if hasattr(i, "checkpoint") else None
    lavss.lavss_evaluate(p, w.method, w.kind, i.manifest, list(i.boxes), i.mixtures, ckpt, o.per_mixture, o.summary)
