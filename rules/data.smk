# Data stages: render (synthetic) or fetch (real) videos, then extract audio and frames.
# Which rules make data/{dataset}/raw/manifest.parquet is decided by datasets.<name>.source through the
# wildcard constraints SYNTH_DATASETS / REAL_DATASETS (rules/common.smk):
#   synth:                                  synth
#   music, music21, vggsound, fairplay, local: metadata -> clips -> download (a checkpoint)
# metadata and download need internet, so they run on the submitting machine, not on cluster nodes.


localrules:
    metadata,
    download,


CLIP_TABLE_KEYS = ("source", "metadata", "split", "clip_seconds", "fold")  # what the clip table depends on


rule synth:
    wildcard_constraints:
        dataset=SYNTH_DATASETS,
    input:
        code=code("synth"),
    output:
        manifest="data/{dataset}/raw/manifest.parquet",
        boxes="data/{dataset}/raw/boxes.parquet",  # the renderer's ground-truth boxes
    params:
        dataset=lambda w: config["datasets"][w.dataset],
        synth=config["synth"],
        seed=config["seed"],
    log:
        "logs/synth/{dataset}.log",
        usage="logs/benchmarks/synth/{dataset}.tsv",
    threads: 2  # clips render in parallel processes (the files do not depend on it)
    priority: 10  # two-core data jobs first, while both cores are free (scheduling only)
    resources:
        mem_mb=2000,
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/synth.py"


rule metadata:
    wildcard_constraints:
        dataset=REAL_DATASETS,
    input:
        code=code("metadata"),
    output:
        "data/{dataset}/meta/metadata.json",
    params:
        metadata=lambda w: config["datasets"][w.dataset]["metadata"],
    log:
        "logs/metadata/{dataset}.log",
        usage="logs/benchmarks/metadata/{dataset}.tsv",
    threads: 1
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/metadata.py"


rule clips:
    wildcard_constraints:
        dataset=REAL_DATASETS,
    input:
        record="data/{dataset}/meta/metadata.json",
        code=code("clips"),
    output:
        "data/{dataset}/clips.parquet",
    params:
        parse=lambda w: {k: v for k, v in config["datasets"][w.dataset].items() if k in CLIP_TABLE_KEYS},
        seed=config["seed"],
    log:
        "logs/clips/{dataset}.log",
        usage="logs/benchmarks/clips/{dataset}.tsv",
    threads: 1
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/clips.py"


checkpoint download:
    wildcard_constraints:
        dataset=REAL_DATASETS,
    input:
        clips="data/{dataset}/clips.parquet",
        code=code("download"),
    output:
        manifest="data/{dataset}/raw/manifest.parquet",
    params:
        dataset=lambda w: config["datasets"][w.dataset],
        sample_rate=config["audio"]["sample_rate"],
    log:
        "logs/download/{dataset}.log",
        usage="logs/benchmarks/download/{dataset}.tsv",
    threads: 1
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/download.py"


rule extract:
    input:
        raw_manifest,
        code=code("extract"),
    output:
        "data/{dataset}/extract/manifest.parquet",
    params:
        audio=config["audio"],
        binaural=lambda w: config["datasets"][w.dataset]["binaural"],
    log:
        "logs/extract/{dataset}.log",
        usage="logs/benchmarks/extract/{dataset}.tsv",
    threads: 2
    priority: 10  # two-core data jobs first, while both cores are free (scheduling only)
    resources:
        mem_mb=2000,
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/extract.py"
