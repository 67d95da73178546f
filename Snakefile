# avsep: audio-visual separation pipeline (HFRA, LAVSS). Wiring only: the logic lives in the avsep package.
from snakemake.utils import min_version, validate

from avsep.core.job_env import apply_job_env

# What every job starts with: one BLAS thread, and freed memory kept in the process (avsep/core/job_env.py).
apply_job_env()

min_version("9.0")

configfile: "params.yaml"


report: "report/workflow.rst"

from avsep.config.params import validate as check_params
from avsep.config.sources import apply_command_line, origin

# --config values typed as params.yaml's (Snakemake leaves nested ones strings); then the schema and the
# cross-references, with messages naming the key and where its value came from (params.yaml, --config, ...).
apply_command_line(config, workflow.config_settings.config)
check_params(config, origin(workflow.config_settings.config, workflow.configfiles))
validate(config, "avsep/config/params.schema.yaml")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/mix.smk"
include: "rules/embed.smk"
include: "rules/encoders.smk"
include: "rules/detect.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/metrics.smk"
include: "rules/lavss.smk"


rule all:
    input:
        [f"results/{t}.csv" for t in config["tables"]],
        [f"results/{f}.png" for f in config.get("figures", {})],
        [f"results/{t}.csv" for t in config.get("lavss", {}).get("tables", {})],
        "results/detector.csv" if config.get("detect", {}).get("weights") == "trained" else [],
        expand("data/{dataset}/detect/objects.parquet", dataset=config.get("detect", {}).get("datasets", [])),
        # the zero-shot table of the domain encoders, where the caches use them (the default; not the paper config)
        "results/encoders.csv" if USES_DOMAIN_ENCODERS and set(ENC_TABLE_DATASETS) <= set(config["datasets"]) else [],
