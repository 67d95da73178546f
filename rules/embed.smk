# Embedding caches: the seeded training-mixture manifest, CLIP image embeddings of frames and CLAP audio
# embeddings of the training mixtures and clips (training reads these; it never runs CLIP or CLAP).


rule train_mixtures:
    input:
        "data/{dataset}/extract/manifest.parquet",
        code=code("train_mixtures"),
    output:
        "data/{dataset}/train_mixtures.parquet",
    params:
        mixing=config["mixing"],
        train={k: config["train"][k] for k in ("steps", "batch_size")},
        audio=config["audio"],
        seed=config["seed"],
        n_frames=config["model_defaults"]["n_frames"],
    log:
        "logs/train_mixtures/{dataset}.log",
        usage="logs/benchmarks/train_mixtures/{dataset}.tsv",
    conda:
        "../envs/embed.yaml"
    script:
        "../workflow_scripts/train_mixtures.py"


rule clip_cache:
    input:
        "data/{dataset}/extract/manifest.parquet",
        weights=local_weights(config["clip"]["pretrained"]),
        code=code("clip_cache"),
    output:
        npy="data/{dataset}/embed/clip_{split}.npy",
        index="data/{dataset}/embed/clip_{split}.parquet",
        meta="data/{dataset}/embed/clip_{split}.json",
    wildcard_constraints:
        split="train|val|test",
    params:
        clip=config["clip"],
        fps=config["audio"]["fps"],
        seed=config["seed"],
    log:
        "logs/clip_cache/{dataset}/{split}.log",
        usage="logs/benchmarks/clip_cache/{dataset}/{split}.tsv",
    priority: 1  # every CLIP variant's training waits for it
    threads: config["threads"]
    resources:
        mem_mb=4000,
    conda:
        "../envs/embed.yaml"
    script:
        "../workflow_scripts/clip_cache.py"


rule clap_cache:
    input:
        manifest="data/{dataset}/extract/manifest.parquet",
        mixtures="data/{dataset}/train_mixtures.parquet",
        weights=local_weights(config["clap"]["weights"]),
        code=code("clap_cache"),
    output:
        mixtures_npy="data/{dataset}/embed/clap_mixtures.npy",
        mixtures_idx="data/{dataset}/embed/clap_mixtures.parquet",
        mixtures_meta="data/{dataset}/embed/clap_mixtures.json",
        clips_npy="data/{dataset}/embed/clap_clips.npy",
        clips_idx="data/{dataset}/embed/clap_clips.parquet",
        clips_meta="data/{dataset}/embed/clap_clips.json",
    params:
        clap=config["clap"],
        audio=config["audio"],
        num_sources=config["mixing"]["num_sources"],
        seed=config["seed"],
    log:
        "logs/clap_cache/{dataset}.log",
        usage="logs/benchmarks/clap_cache/{dataset}.tsv",
    priority: 2  # the longest chain: CLAP cache -> aligned training -> its evaluation (benchmarks/README.md)
    threads: config["threads"]
    resources:
        mem_mb=4000,
    conda:
        "../envs/embed.yaml"
    script:
        "../workflow_scripts/clap_cache.py"
