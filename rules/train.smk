# Training of every model variant (GPU rule on clusters).


rule train:
    input:
        unpack(train_inputs),
        code=code("train"),
    output:
        checkpoint="models/{dataset}/{model}/checkpoint.pt",
        train_log="models/{dataset}/{model}/train_log.csv",
    params:
        model=lambda w: model_params(w.model),
        train=config["train"],
        mixing=config["mixing"],
        seed=lambda w: train_seed(w.model),  # the run's training seed (params seeds:); data and mixtures use `seed`
    log:
        "logs/train/{dataset}/{model}.log",
        usage="logs/benchmarks/train/{dataset}/{model}.tsv",
    threads: config["threads"]
    priority: 1  # long jobs before the short evaluations, so that no training is left to run alone at the end
    resources:
        mem_mb=4000,
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/train.py"
