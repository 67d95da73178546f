"""Snakemake script: CLIP image embeddings of one split's frames (rule clip_cache)."""
from avsep.stages import embed
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    w, o = snakemake.wildcards, snakemake.output  # noqa: F821
    embed.clip_cache(p, w.dataset, w.split, snakemake.input[0], o.npy, o.index)  # noqa: F821
