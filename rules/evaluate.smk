# SDR / SIR / SAR of a trained model on the fixed test mixture list.


rule evaluate:
    input:
        manifest="data/{dataset}/extract/manifest.parquet",
        mixtures="data/{dataset}/test_mixtures.parquet",
        checkpoint="models/{dataset}/{model}/checkpoint.pt",
        code=code(*MODEL_CODE, "inference.py", "metrics.py", "evaluate.py"),
    output:
        per_mixture="results/eval/{dataset}/{model}.parquet",
        summary="results/eval/{dataset}/{model}.json",
    params:
        evaluate=config["evaluate"],
    log:
        "logs/evaluate/{dataset}/{model}.log",
    benchmark:
        "logs/benchmarks/evaluate/{dataset}/{model}.tsv"
    threads: config["threads"]
    resources:
        mem_mb=4000,
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/evaluate.py"
