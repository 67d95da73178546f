"""Snakemake script: CLAP embeddings of the training mixtures and clips (rule clap_cache)."""
from avsep.stages import embed
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    i, o = snakemake.input, snakemake.output  # noqa: F821
    out = {k: o[k] for k in ("mixtures_npy", "mixtures_idx", "clips_npy", "clips_idx")}
    embed.clap_cache(p, snakemake.wildcards.dataset, i.manifest, i.mixtures, out)  # noqa: F821
