# The fixed test mixture list of a dataset (every model is scored on the same mixtures).


rule test_mixtures:
    input:
        "data/{dataset}/extract/manifest.parquet",
        code=code("test_mixtures"),
    output:
        "data/{dataset}/test_mixtures.parquet",
    params:
        mixing=config["mixing"],
        seed=config["seed"],
        n_frames=config["model_defaults"]["n_frames"],
    log:
        "logs/test_mixtures/{dataset}.log",
        usage="logs/benchmarks/test_mixtures/{dataset}.tsv",
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/test_mixtures.py"
