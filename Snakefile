# avsep: audio-visual separation pipeline (HFRA, LAVSS). Wiring only: the logic lives in the avsep package.
from snakemake.utils import min_version, validate

min_version("9.0")

configfile: "params.yaml"

validate(config, "avsep/schemas/params.schema.yaml")

from avsep.config import check_references

check_references(config)


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/mix.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


rule all:
    input:
        "results/table1.csv",
