# Object detection (ultralytics YOLO): a small YOLO trained on a synthetic dataset's frames and ground-truth
# boxes, its scores on the held-out frames (results/detector.csv), and per-frame boxes / per-clip objects of
# every dataset in detect.datasets, with the trained detector or pretrained weights (detect.weights).
DETECT = config["detect"]
# Datasets with ground-truth boxes (synthetic) get a detector trained here.
TRAINED_DETECTORS = [d for d in DETECT["datasets"] if config["datasets"][d]["source"] == "synth"]

# The weights the detect rule runs per dataset: the detector trained on it, or the pretrained file / tag.
DETECT_WEIGHTS = {
    d: f"models/{d}/detector/weights.pt" if DETECT["weights"] == "trained" else DETECT["weights"] for d in DATASETS
}


rule train_detector:
    input:
        manifest="data/{dataset}/extract/manifest.parquet",
        boxes="data/{dataset}/raw/boxes.parquet",
        code=code("train_detector"),
    output:
        weights="models/{dataset}/detector/weights.pt",
    params:
        train=DETECT["train"],
        device=DETECT["device"],
        fps=config["audio"]["fps"],
        seed=config["seed"],
    log:
        "logs/train_detector/{dataset}.log",
        usage="logs/benchmarks/train_detector/{dataset}.tsv",
    threads: config["threads"]
    priority: 2  # every LAVSS job waits for the detected boxes
    resources:
        mem_mb=4000,
    conda:
        "../envs/detect.yaml"
    script:
        "../workflow_scripts/train_detector.py"


rule detector_report:
    input:
        weights=expand("models/{dataset}/detector/weights.pt", dataset=TRAINED_DETECTORS),
        code=code("detector_report"),
    output:
        report("results/detector.csv", caption="../report/detector.rst", category="Detection"),
    params:
        datasets=TRAINED_DETECTORS,
        train=DETECT["train"],
        device=DETECT["device"],
    log:
        "logs/detector_report/detector.log",
        usage="logs/benchmarks/detector_report/detector.tsv",
    threads: config["threads"]
    resources:
        mem_mb=4000,
    conda:
        "../envs/detect.yaml"
    script:
        "../workflow_scripts/detector_report.py"


rule detect:
    input:
        manifest="data/{dataset}/extract/manifest.parquet",
        weights=lambda w: [DETECT_WEIGHTS[w.dataset]] if DETECT["weights"] == "trained" else local_weights(DETECT["weights"]),
        code=code("detect"),
    output:
        boxes="data/{dataset}/detect/boxes.parquet",
        objects="data/{dataset}/detect/objects.parquet",
    params:
        weights=lambda w: DETECT_WEIGHTS[w.dataset],
        detect={k: v for k, v in DETECT.items() if k != "train"},
        fps=config["audio"]["fps"],
    log:
        "logs/detect/{dataset}.log",
        usage="logs/benchmarks/detect/{dataset}.tsv",
    threads: config["threads"]
    resources:
        mem_mb=4000,
    conda:
        "../envs/detect.yaml"
    script:
        "../workflow_scripts/detect.py"
