"""Snakemake script: the LAVSS clip pool (label and split per clip) and the duet list (rule lavss_clips)."""
from avsep.stages import lavss
from avsep.stages.context import rule_context

with rule_context(snakemake) as p:  # noqa: F821 - injected by Snakemake
    i, o = snakemake.input, snakemake.output  # noqa: F821
    lavss.lavss_clips(p, i.manifest, list(i.detections), o.clips, o.duets)
