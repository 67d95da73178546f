# Shared wiring: wildcard constraints and the params each rule depends on (so a change reruns it).
import re

DATASETS = list(config["datasets"])
MODELS = list(config["models"])


wildcard_constraints:
    dataset="|".join(re.escape(d) for d in DATASETS),
    model="|".join(re.escape(m) for m in MODELS),


def model_params(model):
    return {**config["model_defaults"], **config["models"][model]}
