# Data stages: render (synthetic) or download (real) videos, then extract audio and frames.


rule synth:
    input:
        code=code(*DATA_CODE),
    output:
        "data/{dataset}/raw/manifest.parquet",
    params:
        dataset=lambda w: config["datasets"][w.dataset],
        synth=config["synth"],
        seed=config["seed"],
    log:
        "logs/synth/{dataset}.log",
    benchmark:
        "logs/benchmarks/synth/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/synth.py"


rule extract:
    input:
        "data/{dataset}/raw/manifest.parquet",
        code=code(*DATA_CODE),
    output:
        "data/{dataset}/extract/manifest.parquet",
    params:
        audio=config["audio"],
        binaural=lambda w: config["datasets"][w.dataset]["binaural"],
    log:
        "logs/extract/{dataset}.log",
    benchmark:
        "logs/benchmarks/extract/{dataset}.tsv"
    threads: 2
    resources:
        mem_mb=2000,
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/extract.py"
