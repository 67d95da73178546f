"""Snakemake script: a table's training curves and per-instrument SDR for DVC plots (rule table_plots)."""
from pathlib import Path

from avsep.reporting import tracking
from avsep.stages.context import rule_context

with rule_context(snakemake):  # noqa: F821 - injected by Snakemake
    i = snakemake.input  # noqa: F821
    # train_log.csv is written by the train rule beside the checkpoint it declares.
    logs = {Path(c).parent.name: Path(c).with_name("train_log.csv") for c in i.checkpoints}
    evals = {Path(f).stem: f for f in i.per_mixture}
    tracking.write_table_plots(snakemake.output[0], logs, evals, int(snakemake.params.num_sources))  # noqa: F821
    print(f"{snakemake.wildcards.table}: {len(logs)} training curves, {len(evals)} per-instrument SDR files")  # noqa: F821
