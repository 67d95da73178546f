# avsep: audio-visual separation pipeline (HFRA, LAVSS). Wiring only: the logic lives in the avsep package.
import os

from snakemake.utils import min_version, validate

# One BLAS thread per job: metrics are bit-reproducible and jobs do not oversubscribe the cores.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

min_version("9.0")

configfile: "params.yaml"

validate(config, "avsep/schemas/params.schema.yaml")

from avsep.config import check_references

check_references(config)


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/mix.smk"
include: "rules/embed.smk"
include: "rules/detect.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/metrics.smk"


rule all:
    input:
        "results/table1.csv",
