# Shared wiring: wildcard constraints and the params each rule depends on (so a change reruns it).
import re

DATASETS = list(config["datasets"])
MODELS = list(config["models"])


wildcard_constraints:
    dataset="|".join(re.escape(d) for d in DATASETS),
    model="|".join(re.escape(m) for m in MODELS),


def model_params(model):
    return {**config["model_defaults"], **config["models"][model]}


def code(*modules):
    """Package modules a rule runs: editing them reruns the rule (Snakemake tracks only script files)."""
    return [f"avsep/{m}" for m in ("__init__.py", "config.py", "io.py", "stages.py", "workflow.py", *modules)]


DATA_CODE = ("media.py", "progress.py", "seeding.py", "data/synth.py", "data/instruments.py", "data/spatial.py", "data/extract.py")
MODEL_CODE = (
    "frontend.py", "mixing.py", "checkpoint.py", "seeding.py", "progress.py", "data/mixtures.py", "data/store.py",
    "models/unet.py", "models/visual.py", "models/separator.py",
)
