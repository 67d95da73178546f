"""The `lavss:` section of params.yaml as typed configs: variants, training, sizes, checks."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from avsep.audio.config import FrontendConfig
from avsep.config.params import ConfigError, Params, check_milestones, check_sides, train_config
from avsep.data.mixtures import Crop
from avsep.engine.config import TrainConfig
from avsep.models.lavss.config import LAVSSConfig

LOG_EPS = 1e-10
MIX_GT = "mix_gt"  # the method name of the mixture-as-estimate row
MIXTURE_KINDS = ("different", "same_type")
EARS = ("left", "right")

#: Keys of a variant entry that are not architecture (LAVSSConfig) fields.
VARIANT_KEYS = ("label", "pretrain", "finetune")
#: ``lavss.labels``: where a clip's label comes from (the dataset's metadata | the detection stage, solo clips only).
LABEL_SOURCES = ("metadata", "detected")
#: ``lavss.split``: the dataset's own split | a seeded random split in ``lavss.seeded_split`` proportions.
SPLIT_SOURCES = ("dataset", "seeded")


@dataclass(frozen=True)
class DetectedLabels:
    """``lavss.detected_labels``: the rule that labels a clip from its boxes and tells solo from duet
    (:func:`avsep.detection.objects.label_clip`; defaults after rhgao/co-separation ``getTopDetections.py``)."""

    min_score: float = 0.9  # boxes with a score above this count
    nms_iou: float = 0.7  # per frame, a box overlapping a more confident one by more is dropped
    same_object_iou: float = 0.3  # boxes overlapping by less are different objects
    duet_fraction: float = 0.5  # a duet shows two objects in at least this fraction of its frames


@dataclass(frozen=True)
class LAVSSTrainConfig(TrainConfig):
    """The engine's training settings plus the LAVSS loss (eq. 8) and its data options."""

    weight_decay: float = 1e-4
    alpha: float = 0.5  # eq. 8 weight of the L2 mask term
    beta: float = 0.25  # eq. 8 weight of the time-domain term
    weighting: str = "none"  # none (eq. 8 as written) | magnitude (bins weighted by the mixture magnitude)
    mirror: float = 0.0  # probability that a training mixture is mirrored (ears swapped, frame flipped)


@dataclass(frozen=True)
class Variant:
    """One row of the LAVSS tables: an architecture, how it is initialised and trained."""

    name: str
    label: str
    arch: LAVSSConfig
    pretrain: str | None = None  # name of a lavss.pretrain entry, or None (random init)
    finetune: bool = True  # False: the pre-trained mono model as is (the paper's `*` rows)


@dataclass(frozen=True)
class LAVSSParams:
    """Typed view of ``params.yaml: lavss``."""

    dataset: str
    pretrain_dataset: str
    boxes: str
    test_mixtures: int
    same_type_mixtures: int
    same_type_min_dx: float
    train_same_type: float
    pretrain: dict[str, LAVSSConfig]
    variants: dict[str, Variant]
    train: LAVSSTrainConfig
    pretrain_train: LAVSSTrainConfig
    batch_size_eval: int
    mask_threshold: float | None
    tables: dict[str, list[str]]
    figure_methods: list[str]
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    fps: float = 8.0
    labels: str = "metadata"  # lavss.labels (LABEL_SOURCES)
    split: str = "dataset"  # lavss.split (SPLIT_SOURCES)
    seeded_split: tuple[int, ...] = (728, 103, 208)  # lavss.seeded_split: train / val / test (the paper's counts)
    detected_labels: DetectedLabels = field(default_factory=DetectedLabels)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def crop(self) -> Crop:
        """Crop geometry: the LAVSS clip length, one frame per source."""
        return Crop(self.frontend.clip_samples, self.frontend.sample_rate, self.fps, 1)

    def variant(self, name: str) -> Variant:
        try:
            return self.variants[name]
        except KeyError:
            raise ConfigError(f"params.yaml: lavss.models.{name} is not defined (known: {sorted(self.variants)})") from None

    def label(self, name: str) -> str:
        return "mix-gt" if name == MIX_GT else self.variant(name).label


def _train_config(t: dict[str, Any], p: Params) -> LAVSSTrainConfig:
    return train_config(  # type: ignore[return-value]
        t, p.seed, p.threads, LAVSSTrainConfig, weight_decay=float(t.get("weight_decay", 1e-4)),
        alpha=float(t.get("alpha", 0.5)), beta=float(t.get("beta", 0.25)), weighting=str(t.get("weighting", "none")),
        mirror=float(t.get("mirror", 0.0)),
    )


def enabled_section(params: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The ``lavss:`` section if its datasets are defined (checked), else ``(None, reason)``.

    A config whose ``lavss:`` names datasets that ``datasets:`` does not define (e.g. a micro config that keeps
    only synth-music) has no LAVSS jobs; asking for a LAVSS result then fails with the reason.
    """
    raw = params.get("lavss")
    if raw is None:
        return None, "params.yaml has no lavss section"
    undefined = [raw[k] for k in ("dataset", "pretrain_dataset") if raw[k] not in params["datasets"]]
    if undefined:
        return None, f"params.yaml: lavss names dataset(s) {undefined} that datasets: does not define"
    check_lavss(params)
    return raw, None


def trained_variants(raw: dict[str, Any]) -> list[str]:
    """The LAVSS variants trained on the binaural dataset (a `*` row scores its mono pre-trained model as is)."""
    return [m for m, e in raw["models"].items() if e.get("finetune", True)]


def _arch(defaults: dict[str, Any], entry: dict[str, Any], where: str) -> LAVSSConfig:
    d = {**defaults, **{k: v for k, v in entry.items() if k not in VARIANT_KEYS}}
    try:
        return LAVSSConfig(**{**d, "ipd_features": tuple(d.get("ipd_features", ("cos",)))})
    except (TypeError, ValueError) as e:
        raise ConfigError(f"params.yaml: {where}: {e}") from None


def lavss_params(p: Params) -> LAVSSParams:
    """Parse and cross-check ``params.yaml: lavss`` (the schema has checked the types)."""
    raw = p.raw.get("lavss")
    if raw is None:
        raise ConfigError("params.yaml: the lavss section is missing")
    check_lavss(p.raw)
    defaults = raw["defaults"]
    pre = {name: _arch(defaults, {**e, "position": False, "ipd": False}, f"lavss.pretrain.models.{name}")
           for name, e in raw["pretrain"]["models"].items()}  # mono: no IPD, no position
    for name, arch in pre.items():
        check_sides({**p.raw["audio"], **raw.get("audio", {})}, arch.num_downs, f"lavss.pretrain.models.{name}", "lavss.audio",
                    two_by_two=False)
    variants = {}
    for name, e in raw["models"].items():
        arch = _arch(defaults, e, f"lavss.models.{name}")
        variants[name] = Variant(name=name, label=e["label"], arch=arch, pretrain=e.get("pretrain"),
                                 finetune=bool(e.get("finetune", True)))
        check_sides({**p.raw["audio"], **raw.get("audio", {})}, arch.num_downs, f"lavss.models.{name}", "lavss.audio", two_by_two=False)
        if not variants[name].finetune and arch != pre[e["pretrain"]]:
            raise ConfigError(f"params.yaml: lavss.models.{name} is a `*` row (the pre-trained model as is) but its "
                              f"architecture differs from lavss.pretrain.models.{e['pretrain']}")
    return LAVSSParams(
        dataset=raw["dataset"], pretrain_dataset=raw["pretrain_dataset"], boxes=raw["boxes"],
        test_mixtures=int(raw["test_mixtures"]), same_type_mixtures=int(raw["same_type_mixtures"]),
        same_type_min_dx=float(raw["same_type_min_dx"]), train_same_type=float(raw["train_same_type"]),
        pretrain=pre, variants=variants,
        train=_train_config(raw["train"], p),
        pretrain_train=_train_config({**raw["train"], **raw["pretrain"]["train"]}, p),
        batch_size_eval=int(raw["evaluate"]["batch_size"]), mask_threshold=raw["evaluate"]["mask_threshold"],
        tables={k: list(v) for k, v in raw["tables"].items()}, figure_methods=list(raw["figures"]["methods"]),
        frontend=replace(p.frontend, **raw.get("audio", {})), fps=p.fps,
        labels=str(raw.get("labels", "metadata")), split=str(raw.get("split", "dataset")),
        seeded_split=tuple(int(c) for c in raw.get("seeded_split", (728, 103, 208))),
        detected_labels=DetectedLabels(**{k: float(v) for k, v in raw.get("detected_labels", {}).items()}), raw=raw,
    )


def check_lavss(params: dict[str, Any]) -> None:
    """Cross-references of ``lavss:`` that the schema cannot express; raises :class:`ConfigError` naming the key."""
    raw = params.get("lavss")
    if raw is None:
        return
    ds = params["datasets"]
    for key in ("dataset", "pretrain_dataset"):
        if raw[key] not in ds:
            raise ConfigError(f"params.yaml: lavss.{key} names unknown dataset {raw[key]!r}")
    if not ds[raw["dataset"]]["binaural"]:
        raise ConfigError(f"params.yaml: lavss.dataset {raw['dataset']!r} is not binaural")
    if raw["boxes"] == "ground_truth":
        for key in ("dataset", "pretrain_dataset"):
            if ds[raw[key]]["source"] != "synth":
                raise ConfigError(f"params.yaml: lavss.boxes=ground_truth needs synthetic datasets; lavss.{key} "
                                  f"{raw[key]!r} has no ground-truth boxes (use lavss.boxes=detected)")
    elif raw["boxes"] == "detected":
        missing = [raw[k] for k in ("dataset", "pretrain_dataset") if raw[k] not in params.get("detect", {}).get("datasets", [])]
        if missing:
            raise ConfigError(f"params.yaml: lavss.boxes=detected needs detection on {missing}: add them to detect.datasets")
    # labels: detected takes each clip's label (and solo/duet) from the detection stage's boxes, whichever boxes
    # (lavss.boxes) LAVSS then reads: the detection outputs are needed with ground-truth boxes too.
    if raw.get("labels", "metadata") == "detected" and raw["dataset"] not in params.get("detect", {}).get("datasets", []):
        raise ConfigError(f"params.yaml: lavss.labels=detected takes the labels of lavss.dataset {raw['dataset']!r} from "
                          "the detection stage: add it to detect.datasets (or set lavss.labels=metadata)")
    counts = list(raw.get("seeded_split", (728, 103, 208)))
    if raw.get("split", "dataset") == "seeded" and (counts[0] <= 0 or counts[2] <= 0):
        raise ConfigError(f"params.yaml: lavss.seeded_split {counts} (train, val, test) needs train and test counts "
                          "above 0 with lavss.split=seeded")
    pre = raw["pretrain"]["models"]
    for name, e in raw["models"].items():
        pn = e.get("pretrain")
        if pn is not None and pn not in pre:
            raise ConfigError(f"params.yaml: lavss.models.{name}.pretrain names unknown lavss.pretrain.models entry {pn!r}")
        if not e.get("finetune", True):
            if pn is None:
                raise ConfigError(f"params.yaml: lavss.models.{name}: finetune=false (a `*` row) needs a pretrain model")
            arch = {**raw["defaults"], **e}
            if arch.get("ipd") or arch.get("position"):
                raise ConfigError(f"params.yaml: lavss.models.{name}: a `*` row is the mono pre-trained model: set ipd and "
                                  "position to false")
    for tname, methods in raw["tables"].items():
        for m in methods:
            if m != MIX_GT and m not in raw["models"]:
                raise ConfigError(f"params.yaml: lavss.tables.{tname} names unknown lavss model {m!r} "
                                  f"(known: {sorted(raw['models'])} and {MIX_GT})")
    for m in raw["figures"]["methods"]:
        if m != MIX_GT and m not in raw["models"]:
            raise ConfigError(f"params.yaml: lavss.figures.methods names unknown lavss model {m!r}")
    check_milestones(raw["train"], "lavss.train")
    check_milestones({**raw["train"], **raw["pretrain"]["train"]}, "lavss.pretrain.train")
