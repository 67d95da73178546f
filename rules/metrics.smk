# What DVC reads (dvc.yaml): each table's numbers (metrics, every table) and, for the HFRA tables, the
# training curves and per-instrument SDR of its methods (plots). Both are cheap, so they run on the
# submitting machine on clusters.


localrules:
    table_metrics,
    table_plots,


rule table_metrics:
    input:
        table="results/{table}.csv",
        code=code("table_metrics"),
    output:
        "results/metrics/{table}.json",
    wildcard_constraints:  # the HFRA tables and the LAVSS tables
        table="|".join([*config["tables"], *(config.get("lavss") or {}).get("tables", {})]) or "(?!)",
    log:
        "logs/metrics/{table}.log",
        usage="logs/benchmarks/metrics/{table}.tsv",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/table_metrics.py"


rule table_plots:
    input:  # the first seed's run of each method (params seeds:); the table and its metrics average the seeds
        per_mixture=lambda w: expand(
            "results/eval/{dataset}/{method}.parquet",
            dataset=config["tables"][w.table]["dataset"],
            method=config["tables"][w.table]["methods"],
        ),
        train_logs=lambda w: expand(
            "models/{dataset}/{model}/train_log.csv",
            dataset=config["tables"][w.table]["dataset"],
            model=[m for m in config["tables"][w.table]["methods"] if m in config["models"]],
        ),
        code=code("table_plots"),
    output:
        directory("results/plots/{table}"),
    wildcard_constraints:
        table="|".join(config["tables"]) or "(?!)",
    params:
        num_sources=config["mixing"]["num_sources"],
    log:
        "logs/plots/{table}.log",
        usage="logs/benchmarks/plots/{table}.tsv",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/table_plots.py"
