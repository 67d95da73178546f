# Shared wiring: wildcard constraints and the params each rule depends on (so a change reruns it).
import re

from avsep.config.lavss import MIX_GT
from avsep.config.params import SEED_MARK, method_labels, model_entry, model_runs, resolve_run
from avsep.core.codedeps import code_files
from avsep.data.boxes import box_inputs

DATASETS = list(config["datasets"])
MODELS = list(config["models"])


wildcard_constraints:
    dataset="|".join(re.escape(d) for d in DATASETS),
    # a variant (its first seed's run) or a further seed's run of it, `<model>~s<seed>` (params `seeds:`)
    model="(?:" + "|".join(re.escape(m) for m in MODELS) + f")(?:{re.escape(SEED_MARK)}[0-9]+)?",
    baseline="|".join(re.escape(b) for b in config.get("baselines", {})) or "(?!)",


def model_params(model):
    """The registry entry of a run's variant (``sop~s1235`` -> ``sop``; a malformed run name is an error)."""
    return model_entry(config, resolve_run(config, model)[0])


def train_seed(model):
    """The training seed of a run: the first of ``seeds`` for ``sop``, s for ``sop~s<s>``."""
    return resolve_run(config, model)[1]


def table_runs(methods):
    """The run names a table reads: every training seed of each trained method, a baseline once."""
    return [r for m in methods for r in model_runs(config, m)]


def code(script):
    """The package files the rule's script runs (computed from the import graph, avsep.core.codedeps): editing
    any of them reruns the rule's jobs (Snakemake tracks only the script file itself)."""
    return code_files([f"workflow_scripts/{script}.py"], root=workflow.basedir)


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


def clip_cache(dataset, split):
    """The cached CLIP image embeddings of a dataset split (array + index)."""
    base = f"data/{dataset}/embed/clip_{split}"
    # the .json beside the array is the cache's metadata (its encoder weights label, read for the tables)
    return {f"clip_{split}_npy": f"{base}.npy", f"clip_{split}_idx": f"{base}.parquet", f"clip_{split}_meta": f"{base}.json"}


def train_inputs(w):
    """Inputs of a training job: the clips, the training mixtures, and the caches its variant uses."""
    m = model_params(w.model)
    ins = {"manifest": f"data/{w.dataset}/extract/manifest.parquet", "mixtures": f"data/{w.dataset}/train_mixtures.parquet"}
    if m["visual"] == "embedding":
        ins.update(clip_cache(w.dataset, "train"))
    else:  # a local ResNet-18 weights file it starts from
        ins["visual_weights"] = local_weights(m["visual_weights"])
    if m["align_lambda"] > 0:
        ins.update(clap_npy=f"data/{w.dataset}/embed/clap_mixtures.npy", clap_idx=f"data/{w.dataset}/embed/clap_mixtures.parquet",
                   clap_meta=f"data/{w.dataset}/embed/clap_mixtures.json")
    return ins


def eval_inputs(w):
    """Extra inputs of an evaluation job: the test-split CLIP cache for embedding variants."""
    return clip_cache(w.dataset, "test") if model_params(w.model)["visual"] == "embedding" else {}


BASELINES = list(config.get("baselines", {}))


PRETRAINED_ENCODERS = ("models/encoders/clip/", "models/encoders/clap/")  # outputs of rules/encoders.smk
# whether the CLIP or CLAP caches load the encoders pre-trained by rules/encoders.smk
USES_DOMAIN_ENCODERS = str(config["clip"].get("pretrained", "")).startswith(PRETRAINED_ENCODERS) or str(
    config["clap"].get("weights", "")).startswith(PRETRAINED_ENCODERS)


def local_weights(spec):
    """A local weights file, or the files of a weights directory, as inputs (new weights rerun the cache)."""
    import os

    if spec.startswith(PRETRAINED_ENCODERS):
        return [spec]  # made by rules/encoders.smk: the cache waits for the pre-training
    if not os.path.exists(spec):
        return []  # random, a tag or a hub id (the loader names a missing path)
    if os.path.isdir(spec):
        return sorted(os.path.join(spec, f) for f in os.listdir(spec) if os.path.isfile(os.path.join(spec, f)))
    return [spec]


# --- report (tables and figures) ---
SEPARATION_TABLES = [t for t in ("table1", "table2", "table3", "table6") if t in config["tables"]]


def table_summaries(w):
    t = config["tables"][w.table]
    return expand("results/eval/{dataset}/{run}.json", dataset=t["dataset"], run=table_runs(t["methods"]))


def table_per_mixture(w):
    t = config["tables"][w.table]
    return expand("results/eval/{dataset}/{run}.parquet", dataset=t["dataset"], run=table_runs(t["methods"]))


def table_checkpoints(name):
    t = config["tables"][name]
    return expand("models/{dataset}/{run}/checkpoint.pt", dataset=t["dataset"], run=table_runs(t["methods"]))


def figure3_inputs(w):
    f = config["figures"]["figure3"]
    ins = {
        "manifest": f"data/{f['dataset']}/extract/manifest.parquet",
        "mixtures": f"data/{f['dataset']}/test_mixtures.parquet",
        # the figures show the first seed's run of each method (the tables average the seeds)
        "checkpoints": expand("models/{dataset}/{model}/checkpoint.pt", dataset=f["dataset"], model=f["methods"]),
    }
    if any(model_params(m)["visual"] == "embedding" for m in f["methods"]):
        ins.update(clip_cache(f["dataset"], "test"))
    return ins


# --- LAVSS (rules/lavss.smk): the files each job reads
def lavss_checkpoint(method):
    """The checkpoint ``method`` is scored with: its own, or for a `*` row its mono pre-trained model."""
    lv = config["lavss"]
    e = lv["models"][method]
    if not e.get("finetune", True):
        return f"models/{lv['pretrain_dataset']}/lavss_pretrain/{e['pretrain']}/checkpoint.pt"
    return f"models/{lv['dataset']}/lavss/{method}/checkpoint.pt"


def lavss_train_inputs(variant):
    """Inputs of a training job: the clips, their pool (label and split per clip), the boxes and (if it starts from
    one) the pre-trained model."""
    lv = config["lavss"]
    ins = {"manifest": f"data/{lv['dataset']}/extract/manifest.parquet", "boxes": box_inputs(lv["boxes"], lv["dataset"]),
           "pool": f"data/{lv['dataset']}/lavss/clips.parquet"}
    pre = lv["models"][variant].get("pretrain")
    if pre is not None:
        ins["init"] = f"models/{lv['pretrain_dataset']}/lavss_pretrain/{pre}/checkpoint.pt"
    ins["visual_weights"] = local_weights({**lv["defaults"], **lv["models"][variant]}.get("visual_weights", "random"))
    return ins


def lavss_eval_inputs(method):
    """The checkpoint input of an evaluation job (none for mix-gt)."""
    return {} if method == MIX_GT else {"checkpoint": lavss_checkpoint(method)}


def lavss_eval_files(kind, methods, ext="json"):
    """The evaluation outputs (summary .json or per-mixture .parquet) of ``methods`` on one test list."""
    return [f"results/lavss_eval/{config['lavss']['dataset']}/{kind}/{m}.{ext}" for m in methods]


def lavss_table_inputs(table):
    """Inputs of a table job: evaluation summaries and per-mixture scores of its test list (same-type mixtures
    for table 2, different-instrument ones otherwise), and the same-type summaries for tables 3 and 4."""
    methods = config["lavss"]["tables"][table]
    kind = "same_type" if table == "lavss_table2" else "different"
    ins = {"summaries": lavss_eval_files(kind, methods), "per_mixture": lavss_eval_files(kind, methods, "parquet")}
    if table in ("lavss_table3", "lavss_table4"):
        ins["same_type"] = lavss_eval_files("same_type", methods)
    return ins
