# Encoders that know the domain: a synthetic pre-training set no table tests on (data/synth-pretrain/), a small
# CLIP and a small CLAP pre-trained on it (models/encoders/), and their zero-shot accuracy (results/encoders.csv).
# The caches use them with  clip: {model: avsep-ViT-Ti-8-64, pretrained: models/encoders/clip/weights.safetensors}
# and  clap: {weights: models/encoders/clap/weights}.  synth-pretrain is not a `datasets:` entry (no table, mixture
# list or cache is made of it), so it has its own rule, which renders the clips straight into the extracted form
# (wav at audio.sample_rate, JPEG frames at encoders.pretrain_data.fps; no mp4 to encode and decode).
import os

ENC = config.get("encoders", {}) or {}
ENC_CLIP_MODEL = ENC.get("clip", {}).get("model", "avsep-ViT-Ti-8-64")
ENC_TABLE_DATASETS = ENC.get("table", {}).get("datasets", ["synth-music", "synth-music21", "synth-sounds"])
# this package's open_clip config of the CLIP model (a JSON file the import graph cannot see), if it ships one
ENC_MODEL_CONFIG = [f"avsep/encoders/configs/{ENC_CLIP_MODEL}.json"]
ENC_MODEL_CONFIG = [c for c in ENC_MODEL_CONFIG if os.path.exists(os.path.join(workflow.basedir, c))]


rule synth_pretrain:
    input:
        code=code("synth_pretrain"),
    output:
        manifest="data/synth-pretrain/extract/manifest.parquet",
        boxes="data/synth-pretrain/extract/boxes.parquet",
    params:
        pretrain_data=ENC.get("pretrain_data", {}),
        synth=config["synth"],
        audio=config["audio"],  # the front-end rate and clip length the audio is written at and checked against
        datasets=config["datasets"],  # checked disjoint from every table dataset's test clips
        seed=config["seed"],
    log:
        "logs/encoders/synth_pretrain.log",
        usage="logs/benchmarks/encoders/synth_pretrain.tsv",
    threads: 2  # clips render in parallel processes (the files do not depend on it)
    priority: 10  # two-core data jobs first, while both cores are free (scheduling only)
    resources:
        mem_mb=2000,
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/synth_pretrain.py"


rule pretrain_clip:
    input:
        manifest="data/synth-pretrain/extract/manifest.parquet",
        model_config=ENC_MODEL_CONFIG,
        code=code("pretrain_clip"),
    output:
        weights="models/encoders/clip/weights.safetensors",
        pretrain_log="models/encoders/clip/pretrain_log.csv",
    params:
        clip=ENC.get("clip", {}),
        seed=config["seed"],
        threads=config["threads"],  # the weights depend on the thread count (float sums split differently)
    log:
        "logs/encoders/pretrain_clip.log",
        usage="logs/benchmarks/encoders/pretrain_clip.tsv",
    priority: 3  # the CLIP caches (and every CLIP variant) wait for it
    threads: config["threads"]
    resources:
        mem_mb=3000,
    conda:
        "../envs/embed.yaml"
    script:
        "../workflow_scripts/pretrain_clip.py"


rule pretrain_clap:
    input:
        manifest="data/synth-pretrain/extract/manifest.parquet",
        code=code("pretrain_clap"),
    output:
        weights=directory("models/encoders/clap/weights"),
        pretrain_log="models/encoders/clap/pretrain_log.csv",
    params:
        clap=ENC.get("clap", {}),
        audio=config["audio"],
        seed=config["seed"],
        threads=config["threads"],
    log:
        "logs/encoders/pretrain_clap.log",
        usage="logs/benchmarks/encoders/pretrain_clap.tsv",
    priority: 3  # the CLAP caches (and aligned training) wait for it
    threads: config["threads"]
    resources:
        mem_mb=3000,
    conda:
        "../envs/embed.yaml"
    script:
        "../workflow_scripts/pretrain_clap.py"


rule encoders_table:
    input:
        clip="models/encoders/clip/weights.safetensors",
        clap="models/encoders/clap/weights",
        manifests=expand("data/{dataset}/extract/manifest.parquet", dataset=ENC_TABLE_DATASETS),
        model_config=ENC_MODEL_CONFIG,
        code=code("encoders_table"),
    output:
        table="results/encoders.csv",
    params:
        datasets=ENC_TABLE_DATASETS,
        encoders=ENC,
        clip_fps=config["clip"]["fps"],
        audio=config["audio"],
        seed=config["seed"],
    log:
        "logs/encoders/encoders_table.log",
        usage="logs/benchmarks/encoders/encoders_table.tsv",
    threads: config["threads"]
    resources:
        mem_mb=3000,
    conda:
        "../envs/embed.yaml"
    script:
        "../workflow_scripts/encoders_table.py"
