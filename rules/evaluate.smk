# SDR / SIR / SAR of a trained model on the fixed test mixture list.


rule evaluate:
    input:
        unpack(eval_inputs),
        manifest="data/{dataset}/extract/manifest.parquet",
        mixtures="data/{dataset}/test_mixtures.parquet",
        checkpoint="models/{dataset}/{model}/checkpoint.pt",
        code=code("evaluate"),
    output:
        per_mixture="results/eval/{dataset}/{model}.parquet",
        summary="results/eval/{dataset}/{model}.json",
    params:
        evaluate=config["evaluate"],
    log:
        "logs/evaluate/{dataset}/{model}.log",
        usage="logs/benchmarks/evaluate/{dataset}/{model}.tsv",
    threads: config["threads"]
    resources:
        mem_mb=4000,
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/evaluate.py"


rule evaluate_baseline:
    input:
        manifest="data/{dataset}/extract/manifest.parquet",
        mixtures="data/{dataset}/test_mixtures.parquet",
        code=code("evaluate_baseline"),
    output:
        per_mixture="results/eval/{dataset}/{baseline}.parquet",
        summary="results/eval/{dataset}/{baseline}.json",
    params:
        baseline=lambda w: config["baselines"][w.baseline],
        mixing=config["mixing"],
        seed=config["seed"],
    log:
        "logs/evaluate/{dataset}/{baseline}.log",
        usage="logs/benchmarks/evaluate/{dataset}/{baseline}.tsv",
    resources:
        mem_mb=2000,
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/evaluate_baseline.py"
