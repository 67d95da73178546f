"""Snakemake script: train one model variant (rule train)."""
from avsep.stages import train
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    w, i = snakemake.wildcards, snakemake.input  # noqa: F821
    clip = [(i.clip_train_npy, i.clip_train_idx)] if hasattr(i, "clip_train_npy") else None
    clap = (i.clap_npy, i.clap_idx) if hasattr(i, "clap_npy") else None
    train.train(p, w.dataset, w.model, i.manifest, snakemake.output.checkpoint, i.mixtures, clip, clap)  # noqa: F821
