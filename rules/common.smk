# Shared wiring: wildcard constraints and the params each rule depends on (so a change reruns it).
import re

DATASETS = list(config["datasets"])
MODELS = list(config["models"])


wildcard_constraints:
    dataset="|".join(re.escape(d) for d in DATASETS),
    model="|".join(re.escape(m) for m in MODELS),
    baseline="|".join(re.escape(b) for b in config.get("baselines", {})) or "(?!)",


def model_params(model):
    return {**config["model_defaults"], **config["models"][model]}


def code(*modules):
    """Package modules a job runs: editing them reruns its jobs (Snakemake tracks only script files)."""
    return [f"avsep/{m}" for m in ("__init__.py", "config.py", "io.py", "stages.py", "workflow.py", *modules)]


DATA_CODE = ("media.py", "progress.py", "seeding.py", "data/synth.py", "data/instruments.py", "data/spatial.py", "data/extract.py")
REAL_DATA_CODE = (
    "media.py", "progress.py", "seeding.py", "data/fetch.py", "data/metadata.py", "data/download.py",
    "data/fairplay.py", "data/sources.py",
)


# Where data/{dataset}/raw/manifest.parquet comes from (datasets.<name>.source): rule synth for `synth`,
# rules metadata -> clips -> checkpoint download for the real sources (rules/data.smk).
def datasets_regex(*sources):
    """A wildcard constraint matching the datasets of the given sources (matching nothing if none)."""
    names = [d for d, v in config["datasets"].items() if v["source"] in sources]
    return "|".join(re.escape(n) for n in names) or "(?!)"


SYNTH_DATASETS = datasets_regex("synth")
REAL_DATASETS = datasets_regex("music", "music21", "vggsound", "fairplay", "local")


def raw_manifest(wildcards):
    """The raw manifest of a dataset. For a real one this goes through its download checkpoint, so the
    DAG after it is re-planned on what actually arrived (an input function may then read the manifest)."""
    d = wildcards.dataset
    if config["datasets"][d]["source"] == "synth":
        return f"data/{d}/raw/manifest.parquet"
    return checkpoints.download.get(dataset=d).output[0]
MODEL_CODE = (
    "frontend.py", "mixing.py", "checkpoint.py", "seeding.py", "progress.py", "data/mixtures.py", "data/store.py",
    "models/unet.py", "models/visual.py", "models/separator.py",
)


def clip_cache(dataset, split):
    """The cached CLIP image embeddings of a dataset split (array + index)."""
    return {f"clip_{split}_npy": f"data/{dataset}/embed/clip_{split}.npy", f"clip_{split}_idx": f"data/{dataset}/embed/clip_{split}.parquet"}


def train_inputs(w):
    """Inputs of a training job: the clips, the training mixtures, and the caches its variant uses."""
    m = model_params(w.model)
    ins = {"manifest": f"data/{w.dataset}/extract/manifest.parquet", "mixtures": f"data/{w.dataset}/train_mixtures.parquet"}
    if m["visual"] == "embedding":
        ins.update(clip_cache(w.dataset, "train"))
    if m["align_lambda"] > 0:
        ins.update(clap_npy=f"data/{w.dataset}/embed/clap_mixtures.npy", clap_idx=f"data/{w.dataset}/embed/clap_mixtures.parquet")
    return ins


def eval_inputs(w):
    """Extra inputs of an evaluation job: the test-split CLIP cache for embedding variants."""
    return clip_cache(w.dataset, "test") if model_params(w.model)["visual"] == "embedding" else {}


BASELINES = list(config.get("baselines", {}))


def local_weights(spec):
    """A local weights file, or the files of a weights directory, as inputs (new weights rerun the cache)."""
    import os

    if not os.path.exists(spec):
        return []  # random, a tag or a hub id (the loader names a missing path)
    if os.path.isdir(spec):
        return sorted(os.path.join(spec, f) for f in os.listdir(spec) if os.path.isfile(os.path.join(spec, f)))
    return [spec]


# --- report (tables and figures) ---
SEPARATION_TABLES = [t for t in ("table1", "table2", "table3", "table6") if t in config["tables"]]


def table_summaries(w):
    t = config["tables"][w.table]
    return expand("results/eval/{dataset}/{method}.json", dataset=t["dataset"], method=t["methods"])


def table_checkpoints(name):
    t = config["tables"][name]
    return expand("models/{dataset}/{model}/checkpoint.pt", dataset=t["dataset"], model=t["methods"])


def figure3_inputs(w):
    f = config["figures"]["figure3"]
    ins = {
        "manifest": f"data/{f['dataset']}/extract/manifest.parquet",
        "mixtures": f"data/{f['dataset']}/test_mixtures.parquet",
        "checkpoints": expand("models/{dataset}/{model}/checkpoint.pt", dataset=f["dataset"], model=f["methods"]),
    }
    if any(model_params(m)["visual"] == "embedding" for m in f["methods"]):
        ins.update(clip_cache(f["dataset"], "test"))
    return ins
