"""Snakemake script: HFRA Figure 3 (rule figure3)."""
from avsep.stages import report
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    i, o = snakemake.input, snakemake.output  # noqa: F821
    clip = [(i.clip_test_npy, i.clip_test_idx)] if hasattr(i, "clip_test_npy") else None
    report.figure3(p, i.manifest, i.mixtures, list(i.checkpoints), clip, o.png, o.audio)
