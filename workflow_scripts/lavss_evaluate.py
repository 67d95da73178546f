"""Snakemake script: score a LAVSS-table method (or mix-gt) per ear on both test lists (rule lavss_evaluate)."""
from avsep.config.lavss import MIXTURE_KINDS
from avsep.stages import lavss
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    w, i, o = snakemake.wildcards, snakemake.input, snakemake.output  # noqa: F821
    ckpt = i.checkpoint if hasattr(i, "checkpoint") else None
    lists = list(zip(MIXTURE_KINDS, i.mixtures, o.per_mixture, o.summary))
    lavss.lavss_evaluate(p, w.method, i.manifest, list(i.boxes), lists, ckpt)
