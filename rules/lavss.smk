# LAVSS (binaural, location-guided separation; params `lavss:`): seeded test lists, monaural pre-training on
# the mono dataset, training of every table row on the binaural dataset, per-ear evaluation, tables 1-4 with
# the paper's numbers beside them, and spectrogram figures. The logic is in avsep/stages/lavss.py.
from avsep.config.lavss import MIXTURE_KINDS, enabled_section, trained_variants

# The lavss section, checked; None with the reason when it cannot run here (rule lavss_disabled then explains).
LAVSS, LAVSS_DISABLED = enabled_section(config)

if LAVSS is not None:
    LAVSS_DS = LAVSS["dataset"]
    LAVSS_PRE_DS = LAVSS["pretrain_dataset"]
    LAVSS_BOXES = LAVSS["boxes"]
    LAVSS_MODELS = LAVSS["models"]
    LAVSS_TRAINED = trained_variants(LAVSS)
    LAVSS_METHODS = [*LAVSS_MODELS, MIX_GT]
    LAVSS_SHARED = {  # what every LAVSS job depends on
        "seed": config["seed"], "audio": {**config["audio"], **LAVSS.get("audio", {})}, "boxes": LAVSS_BOXES,
        "defaults": LAVSS["defaults"],
    }
    LAVSS_LABELS = LAVSS.get("labels", "metadata")

    # The clip pool of the binaural dataset (the label and split LAVSS gives each clip: lavss.labels, lavss.split)
    # and its duet list (labels: detected). The rule that labels a clip is avsep.detection.objects.label_clip.
    rule lavss_clips:
        input:
            manifest=f"data/{LAVSS_DS}/extract/manifest.parquet",
            detections=box_inputs("detected", LAVSS_DS) if LAVSS_LABELS == "detected" else [],
            code=code("lavss_clips"),
        output:
            clips=f"data/{LAVSS_DS}/lavss/clips.parquet",
            duets=f"data/{LAVSS_DS}/lavss/duets.parquet",
        params:
            shared={k: LAVSS_SHARED[k] for k in ("seed", "boxes")},
            pool={k: LAVSS.get(k) for k in ("labels", "split", "seeded_split", "detected_labels")},
        log:
            "logs/lavss/clips.log",
            usage="logs/benchmarks/lavss/clips.tsv",
        conda:
            "../envs/train.yaml"
        script:
            "../workflow_scripts/lavss_clips.py"

    rule lavss_mixtures:
        input:
            manifest=f"data/{LAVSS_DS}/extract/manifest.parquet",
            boxes=box_inputs(LAVSS_BOXES, LAVSS_DS),
            pool=f"data/{LAVSS_DS}/lavss/clips.parquet",
            code=code("lavss_mixtures"),
        output:
            different=f"data/{LAVSS_DS}/lavss/mixtures_different.parquet",
            same_type=f"data/{LAVSS_DS}/lavss/mixtures_same_type.parquet",
        params:
            shared={k: LAVSS_SHARED[k] for k in ("seed", "audio", "boxes")},
            lists={k: LAVSS[k] for k in ("test_mixtures", "same_type_mixtures", "same_type_min_dx")},
            fps=config["audio"]["fps"],
        log:
            "logs/lavss/mixtures.log",
            usage="logs/benchmarks/lavss/mixtures.tsv",
        conda:
            "../envs/train.yaml"
        script:
            "../workflow_scripts/lavss_mixtures.py"

    rule lavss_pretrain:
        input:
            manifest=f"data/{LAVSS_PRE_DS}/extract/manifest.parquet",
            boxes=box_inputs(LAVSS_BOXES, LAVSS_PRE_DS),
            visual_weights=lambda w: local_weights(
                {**LAVSS["defaults"], **LAVSS["pretrain"]["models"][w.pre]}.get("visual_weights", "random")
            ),
            code=code("lavss_pretrain"),
        output:
            checkpoint=f"models/{LAVSS_PRE_DS}/lavss_pretrain/{{pre}}/checkpoint.pt",
        wildcard_constraints:
            pre="|".join(re.escape(m) for m in LAVSS["pretrain"]["models"]),
        params:
            shared=LAVSS_SHARED,
            arch=lambda w: LAVSS["pretrain"]["models"][w.pre],
            train={**LAVSS["train"], **LAVSS["pretrain"]["train"]},
            gain_range=config["mixing"]["gain_range"],
            fps=config["audio"]["fps"],
        log:
            "logs/lavss/pretrain/{pre}.log",
            usage="logs/benchmarks/lavss/pretrain/{pre}.tsv",
        threads: 1
        priority: 2  # the pre-trained LAVSS variants wait for it
        resources:
            mem_mb=3000,
        conda:
            "../envs/train.yaml"
        script:
            "../workflow_scripts/lavss_pretrain.py"

    rule lavss_train:
        input:
            unpack(lambda w: lavss_train_inputs(w.variant)),
            code=code("lavss_train"),
        output:
            checkpoint=f"models/{LAVSS_DS}/lavss/{{variant}}/checkpoint.pt",
        wildcard_constraints:
            variant="|".join(re.escape(m) for m in LAVSS_TRAINED) or "(?!)",
        params:
            shared=LAVSS_SHARED,
            variant=lambda w: LAVSS_MODELS[w.variant],
            train=LAVSS["train"],
            mixing={"gain_range": config["mixing"]["gain_range"], "train_same_type": LAVSS["train_same_type"],
                    "same_type_min_dx": LAVSS["same_type_min_dx"]},
            fps=config["audio"]["fps"],
        log:
            "logs/lavss/train/{variant}.log",
            usage="logs/benchmarks/lavss/train/{variant}.tsv",
        threads: 1
        priority: 1  # long jobs before the short evaluations, so that no training is left to run alone at the end
        resources:
            mem_mb=3000,
        conda:
            "../envs/train.yaml"
        script:
            "../workflow_scripts/lavss_train.py"

    # Both test lists of a method in one job (the clips, the model and the imports loaded once).
    rule lavss_evaluate:
        input:
            unpack(lambda w: lavss_eval_inputs(w.method)),
            manifest=f"data/{LAVSS_DS}/extract/manifest.parquet",
            boxes=box_inputs(LAVSS_BOXES, LAVSS_DS),
            mixtures=expand("data/{ds}/lavss/mixtures_{kind}.parquet", ds=LAVSS_DS, kind=MIXTURE_KINDS),
            code=code("lavss_evaluate"),
        output:
            per_mixture=expand("results/lavss_eval/{ds}/{kind}/{{method}}.parquet", ds=LAVSS_DS, kind=MIXTURE_KINDS),
            summary=expand("results/lavss_eval/{ds}/{kind}/{{method}}.json", ds=LAVSS_DS, kind=MIXTURE_KINDS),
        wildcard_constraints:
            method="|".join(re.escape(m) for m in LAVSS_METHODS),
        params:
            shared=LAVSS_SHARED,
            method=lambda w: LAVSS_MODELS.get(w.method, MIX_GT),
            evaluate=LAVSS["evaluate"],
        log:
            "logs/lavss/evaluate/{method}.log",
            usage="logs/benchmarks/lavss/evaluate/{method}.tsv",
        threads: 1
        resources:
            mem_mb=3000,
        conda:
            "../envs/train.yaml"
        script:
            "../workflow_scripts/lavss_evaluate.py"

    rule lavss_table:
        input:
            unpack(lambda w: lavss_table_inputs(w.ltable)),
            code=code("lavss_table"),
        output:
            table="results/{ltable}.csv",
            vs_paper="results/{ltable}_vs_paper.csv",
        wildcard_constraints:
            ltable="|".join(re.escape(t) for t in LAVSS["tables"]) or "(?!)",
        params:
            methods=lambda w: LAVSS["tables"][w.ltable],
            rows=lambda w: {m: LAVSS_MODELS.get(m, MIX_GT) for m in LAVSS["tables"][w.ltable]},
        log:
            "logs/lavss/{ltable}.log",
            usage="logs/benchmarks/lavss/{ltable}.tsv",
        conda:
            "../envs/train.yaml"
        script:
            "../workflow_scripts/lavss_table.py"

    rule lavss_figure:
        input:
            manifest=f"data/{LAVSS_DS}/extract/manifest.parquet",
            boxes=box_inputs(LAVSS_BOXES, LAVSS_DS),
            mixtures=f"data/{LAVSS_DS}/lavss/mixtures_{{kind}}.parquet",
            checkpoints=[lavss_checkpoint(m) for m in LAVSS["figures"]["methods"] if m != MIX_GT],
            code=code("lavss_figure"),
        output:
            png="results/lavss_figure_{kind}.png",
        wildcard_constraints:
            kind="different|same_type",
        params:
            shared=LAVSS_SHARED,
            methods=LAVSS["figures"]["methods"],
            evaluate=LAVSS["evaluate"],
        log:
            "logs/lavss/figure_{kind}.log",
            usage="logs/benchmarks/lavss/figure_{kind}.tsv",
        conda:
            "../envs/train.yaml"
        script:
            "../workflow_scripts/lavss_figure.py"

elif LAVSS_DISABLED is not None:

    rule lavss_disabled:
        input:
            code=code("lavss_disabled"),
        output:
            "results/lavss_{anything}",
        params:
            reason=LAVSS_DISABLED,
        log:
            "logs/lavss/disabled_{anything}.log",
            usage="logs/benchmarks/lavss/disabled_{anything}.tsv",
        conda:
            "../envs/train.yaml"
        script:
            "../workflow_scripts/lavss_disabled.py"
