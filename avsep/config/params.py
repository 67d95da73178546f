"""Loading and validating ``params.yaml`` into typed configs.

The JSON schema (``avsep/config/params.schema.yaml``) is the single definition of what is allowed; the
Snakefile checks it with ``snakemake.utils.validate`` and :func:`load_params` checks it here, with error
messages that name the offending key (``train.steps``). Cross-references the schema cannot express (a
table naming an unknown model or dataset) are checked by :func:`check_references`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import yaml

from avsep.audio.config import FrontendConfig
from avsep.data.mixtures import Crop
from avsep.engine.config import TrainConfig
from avsep.models.hfra.config import SeparatorConfig, UNetConfig, VisualConfig

if TYPE_CHECKING:
    from avsep.config.lavss import LAVSSParams

SCHEMA_PATH = Path(__file__).parent / "params.schema.yaml"


class ConfigError(ValueError):
    """params.yaml is invalid; the message names the key."""


def _key_path(path: Any) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(top level)"


def validate(params: dict[str, Any], origin: Callable[[Sequence[Any]], str] | None = None) -> None:
    """Raise :class:`ConfigError` naming the key of the first schema violation (best-matching error) and, with
    ``origin`` (:func:`avsep.config.sources.origin`), where its value came from (``--config``, a config file)."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        where = _key_path(err.absolute_path)
        src = origin(list(err.absolute_path)) if origin else "params.yaml"
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            keys = ", ".join(f"{where}.{k}" if err.absolute_path else k for k in extra)
            raise ConfigError(f"{src}: unknown key(s) {keys}")
        if err.validator == "not" and err.validator_value == {}:  # a key that does not apply (schema `not: {}`)
            raise ConfigError(f"{src}: {where} does not apply here (see its comment in {SCHEMA_PATH.name})")
        raise ConfigError(f"{src}: invalid value for {where}: {err.message}")
    check_references(params)


def model_entry(params: dict[str, Any], name: str) -> dict[str, Any]:
    """A registry entry of ``models:`` with ``model_defaults`` filled in (what a variant is built from)."""
    return {**params["model_defaults"], **params["models"][name]}


# --- training seeds (``seeds:``): a model variant is trained once per seed. The first seed's run keeps the variant's
# own name (``sop``: models/<dataset>/sop/, results/eval/<dataset>/sop.*); a further seed s is the run ``sop~s<s>``.
SEED_MARK = "~s"


def seeded_name(model: str, seed: int | None) -> str:
    """The run name of ``model`` trained with ``seed`` (``None``: the first seed's run, the bare name)."""
    return model if seed is None else f"{model}{SEED_MARK}{int(seed)}"


def split_seeded(name: str) -> tuple[str, int | None]:
    """``"sop~s1235"`` -> ``("sop", 1235)``; a bare name -> ``(name, None)``. Raises :class:`ConfigError` on a
    malformed run name (``sop~x``, ``sop~s``, ``sop~s12a``, ``~s3``)."""
    if "~" not in name:
        return name, None
    model, mark, digits = name.partition(SEED_MARK)
    if not mark or not model or "~" in model or not (digits.isascii() and digits.isdigit()):
        raise ConfigError(f"malformed model run name {name!r}: expected <model> or <model>{SEED_MARK}<seed>, "
                          f"e.g. 'sop' or 'sop{SEED_MARK}1235'")
    return model, int(digits)


def seed_list(params: dict[str, Any]) -> list[int]:
    """The training seeds (``seeds:``, default ``[seed]``)."""
    return [int(s) for s in params.get("seeds") or [params["seed"]]]


def model_runs(params: dict[str, Any], method: str) -> list[str]:
    """The run names a table row averages: one per seed for a trained variant, the name alone for a baseline."""
    if method not in params["models"]:
        return [method]
    return [method, *(seeded_name(method, s) for s in seed_list(params)[1:])]


def resolve_run(params: dict[str, Any], name: str) -> tuple[str, int]:
    """The registry variant and the training seed of a run name (``sop`` -> first seed, ``sop~s<s>`` -> s), with
    an error naming what is wrong: a malformed name, an unknown variant, a seed not in ``seeds`` or the first one."""
    model, seed = split_seeded(name)
    if model not in params["models"]:
        raise ConfigError(f"model run {name!r}: {model!r} is not defined under models (known: {sorted(params['models'])})")
    seeds = seed_list(params)
    if seed is None:
        return model, seeds[0]
    if seed not in seeds[1:]:
        why = (f"the first seed's run is named {model!r}" if seed == seeds[0]
               else f"{seed} is not one of seeds: {seeds}")
        raise ConfigError(f"model run {name!r}: {why}")
    return model, seed


def method_labels(params: dict[str, Any], methods: list[str]) -> list[str]:
    """The table label of each method: a model variant's or a baseline's ``label``."""
    entries = {**params.get("baselines", {}), **params["models"]}
    return [entries[m]["label"] for m in methods]


def check_sides(audio: dict[str, Any], num_downs: int, where: str, section: str = "audio",
                two_by_two: bool = True) -> None:
    """The spectrogram sides (``warp_bins`` rows, ``clip_samples // hop + 1`` frames) of an ``audio`` section
    must halve ``num_downs`` times in a U-Net (HFRA's and LAVSS's); with ``two_by_two`` (HFRA) down to exactly the
    papers' 2 x 2 bottleneck, so a larger spectrogram with the demo's depth is refused instead of silently
    giving a 4 x 4 one."""
    sides = {f"{section}.warp_bins": audio["warp_bins"],
             f"{section}.clip_samples // {section}.hop + 1": audio["clip_samples"] // audio["hop"] + 1}
    for key, side in sides.items():
        if side % 2**num_downs:
            raise ConfigError(f"params.yaml: {where}: {key} = {side} is not a multiple of 2^num_downs = {2**num_downs} "
                              "(the U-Net halves the spectrogram num_downs times)")
        if two_by_two and side // 2**num_downs != 2:
            fit = (side // 2).bit_length() - 1
            raise ConfigError(f"params.yaml: {where}: {key} = {side} halved num_downs = {num_downs} times leaves a "
                              f"{side // 2**num_downs}-wide bottleneck; the papers' U-Net ends at 2 x 2 (256 -> 2 with 7 "
                              f"levels): use num_downs = {fit} for this side")


def check_milestones(t: dict[str, Any], where: str) -> None:
    """The lr schedule of a training section fits: milestones inside its steps (``step``), a warm-up that ends
    before the decay does (``warmup_linear``)."""
    for s in t.get("lr_milestones", []):
        if s >= t["steps"]:
            raise ConfigError(f"params.yaml: {where}.lr_milestones has {s}, not below {where}.steps={t['steps']}")
    if t.get("lr_schedule", "step") == "warmup_linear":
        if t.get("lr_milestones"):
            raise ConfigError(f"params.yaml: {where}.lr_milestones is for lr_schedule=step; {where}.lr_schedule="
                              "warmup_linear decays linearly to lr_gamma x lr at decay_steps")
        w, d = int(t.get("warmup_steps", 0)), t.get("decay_steps")
        if d is None or w >= int(d):
            raise ConfigError(f"params.yaml: {where}.lr_schedule=warmup_linear needs {where}.decay_steps above "
                              f"{where}.warmup_steps={w}, got {d}")
    elif "warmup_steps" in t or "decay_steps" in t:
        raise ConfigError(f"params.yaml: {where}.warmup_steps/decay_steps apply to lr_schedule=warmup_linear only")


def train_config(t: dict[str, Any], seed: int, threads: int, cls: type[TrainConfig] = TrainConfig,
                 **extra: Any) -> TrainConfig:
    """The engine's settings of a training section (``train:``, ``lavss.train``); ``cls``/``extra`` add a family's own."""
    return cls(
        steps=int(t["steps"]), batch_size=int(t["batch_size"]), lr=float(t["lr"]),
        lr_milestones=tuple(int(s) for s in t.get("lr_milestones", [])), lr_gamma=float(t.get("lr_gamma", 0.1)),
        grad_clip=float(t.get("grad_clip", 5.0)), checkpoint_every=int(t["checkpoint_every"]),
        log_every=int(t["log_every"]), seed=seed, threads=threads, lr_schedule=str(t.get("lr_schedule", "step")),
        warmup_steps=int(t.get("warmup_steps", 0)), decay_steps=int(t.get("decay_steps", 0)),
        lr_visual=None if t.get("lr_visual") is None else float(t["lr_visual"]),
        prefetch=int(t.get("prefetch", 0)), loader_workers=int(t.get("loader_workers", 0)),
        amp=str(t.get("amp", "fp32")), channels_last=bool(t.get("channels_last", False)), **extra,
    )


def check_references(params: dict[str, Any]) -> None:
    """Cross-checks: tables name existing datasets and models; lr milestones fall inside training."""
    for tname, t in params.get("tables", {}).items():
        if t["dataset"] not in params["datasets"]:
            raise ConfigError(f"params.yaml: tables.{tname}.dataset names unknown dataset {t['dataset']!r}")
        baselines = params.get("baselines", {})
        for m in t["methods"]:
            if m not in params["models"] and m not in baselines:
                raise ConfigError(
                    f"params.yaml: tables.{tname}.methods names unknown model variant or baseline {m!r} "
                    f"(models: {sorted(params['models'])}; baselines: {sorted(baselines)})"
                )
        if tname in ("table4", "table5", "table6", "tableA1"):
            bad = [m for m in t["methods"] if m not in params["models"]]
            if bad:
                raise ConfigError(f"params.yaml: tables.{tname}.methods must name trained model variants, not {bad}")
    figs = params.get("figures", {})
    for fname, f in figs.items():
        if f["dataset"] not in params["datasets"]:
            raise ConfigError(f"params.yaml: figures.{fname}.dataset names unknown dataset {f['dataset']!r}")
        for m in f.get("methods", []):
            if m not in params["models"]:
                raise ConfigError(f"params.yaml: figures.{fname}.methods names unknown model variant {m!r}")
    if "figure1" in figs and "tableA1" not in params.get("tables", {}):
        raise ConfigError("params.yaml: figures.figure1 colours classes by their best fusion: it needs tables.tableA1")
    for d in params.get("detect", {}).get("datasets", []):
        if d not in params["datasets"]:
            raise ConfigError(f"params.yaml: detect.datasets names unknown dataset {d!r}")
    overlap = set(params["models"]) & set(params.get("baselines", {}))
    if overlap:
        raise ConfigError(f"params.yaml: {sorted(overlap)} named both under models and baselines")
    check_milestones(params["train"], "train")
    lo, hi = params["mixing"]["gain_range"]
    if lo > hi:
        raise ConfigError("params.yaml: mixing.gain_range must be [low, high] with low <= high")
    a = params["audio"]
    for name, v in params["models"].items():
        check_sides(a, v.get("num_downs", params["model_defaults"].get("num_downs", 7)), f"models.{name}")
    if "clip" in params and params["clip"]["fps"] > params["audio"]["fps"]:
        raise ConfigError(f"params.yaml: clip.fps={params['clip']['fps']} exceeds audio.fps={params['audio']['fps']} (the extracted frame rate)")


@dataclass(frozen=True)
class DatasetConfig:
    """One entry of ``datasets:``. Synthetic datasets use ``classes``/``clips_per_class``; real ones
    (``source`` music, music21, vggsound, fairplay, local) the rest (see params/paper.yaml)."""

    name: str
    source: str
    binaural: bool
    classes: str = ""
    clips_per_class: dict[str, int] = field(default_factory=dict)
    metadata: tuple[str, ...] = ()
    url_template: str | None = None
    split: dict[str, Any] = field(default_factory=dict)
    clip_seconds: float = 10.0
    download: dict[str, Any] = field(default_factory=dict)
    archives: dict[str, str] = field(default_factory=dict)
    fold: int = 1
    audio_rate: int | None = None
    extract_rate: int | None = None  # None: audio.sample_rate

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", tuple(self.metadata))

    @property
    def channels(self) -> int:
        return 2 if self.binaural else 1

    @property
    def synthetic(self) -> bool:
        return self.source == "synth"


#: Dimension of the cached CLIP ViT-B/32 image embeddings and of the CLAP audio embeddings.
CLIP_DIM = 512
CLAP_DIM = 512


@dataclass(frozen=True)
class ModelVariant:
    name: str
    label: str
    separator: SeparatorConfig
    align_lambda: float = 0.0  # HFRA eq. 8 weight of the CLAP alignment loss

    @property
    def aligned(self) -> bool:
        return self.align_lambda > 0

    @property
    def uses_embeddings(self) -> bool:
        return self.separator.visual.kind == "embedding"


@dataclass(frozen=True)
class Baseline:
    name: str
    label: str
    method: str


class Params:
    """Typed view of a validated params dict."""

    def __init__(self, raw: dict[str, Any]) -> None:
        validate(raw)
        self.raw = raw
        self.seed: int = raw["seed"]
        self.seeds: list[int] = seed_list(raw)  # training seeds; data and mixtures use `seed`
        self.threads: int = raw["threads"]
        a = raw["audio"]
        self.frontend = FrontendConfig(
            sample_rate=a["sample_rate"], clip_samples=a["clip_samples"], n_fft=a["n_fft"], hop=a["hop"],
            warp_bins=a["warp_bins"],
        )
        self.fps: float = float(a["fps"])
        self.synth: dict[str, Any] = raw["synth"]
        self.datasets = {k: DatasetConfig(name=k, **v) for k, v in raw["datasets"].items()}
        self.mixing: dict[str, Any] = raw["mixing"]
        self.models = {k: self._variant(k, v) for k, v in raw["models"].items()}
        self.baselines = {k: Baseline(name=k, **v) for k, v in raw.get("baselines", {}).items()}
        t = raw["train"]
        self.train = train_config(t, self.seed, self.threads)
        self.train_processes: int = int(t.get("processes", 1))
        if t["batch_size"] % self.train_processes:
            raise ConfigError(
                f"params.yaml: train.batch_size={t['batch_size']} must be divisible by train.processes={self.train_processes}"
            )
        self.evaluate: dict[str, Any] = raw["evaluate"]
        self.tables: dict[str, Any] = raw["tables"]
        self.figures: dict[str, Any] = raw.get("figures", {})

    @cached_property
    def lavss(self) -> LAVSSParams:
        """The ``lavss:`` section, typed and cross-checked (:mod:`avsep.config.lavss`)."""
        from avsep.config.lavss import lavss_params

        return lavss_params(self)

    def _variant(self, name: str, v: dict[str, Any]) -> ModelVariant:
        d = model_entry(self.raw, name)
        frames = d["visual"] == "frames"
        if d["align_lambda"] > 0 and d.get("align_head", "linear") == "none" and 8 * d["ngf"] != CLAP_DIM:
            raise ConfigError(f"params.yaml: models.{name}.align_head=none aligns the U-Net bottleneck itself (8 x ngf = "
                              f"{8 * d['ngf']} channels) to the {CLAP_DIM}-d CLAP embedding: set ngf={CLAP_DIM // 8} or "
                              "align_head=linear")
        sep = SeparatorConfig(
            fusion=d["fusion"],
            k=d["k"],
            # Sound-of-Pixels frame heads tile the k-channel visual vector; CLIP variants use middle_dim.
            middle_dim=d["k"] if frames and d["fusion"] == "middle" else d["middle_dim"],
            align_dim=CLAP_DIM if d["align_lambda"] > 0 else 0,
            align_head=d.get("align_head", "linear"),
            sep_loss=d.get("sep_loss", "bce"),
            unet=UNetConfig(ngf=d["ngf"], num_downs=d.get("num_downs", 7)),
            visual=VisualConfig(
                kind=d["visual"], width=d["visual_width"], frame_size=d["frame_size"], n_frames=d["n_frames"],
                embedding_dim=CLIP_DIM,
                weights=d["visual_weights"] if frames else "clip",
            ),
        )
        return ModelVariant(name=name, label=d["label"], separator=sep, align_lambda=float(d["align_lambda"]))

    def runs(self, method: str) -> list[str]:
        """The run names of a table row, one per training seed (a baseline: its name; :func:`model_runs`)."""
        return model_runs(self.raw, method)

    def run(self, name: str) -> tuple[ModelVariant, TrainConfig]:
        """The variant and the training settings of a run name (``sop``, ``sop~s1235``): the training seed is the
        run's (:func:`resolve_run`), everything else ``train:``'s."""
        model, seed = resolve_run(self.raw, name)
        return self.model(model), replace(self.train, seed=seed)

    def method_label(self, name: str) -> str:
        """Row label of a table method: a model variant or a non-learned baseline."""
        if name in self.baselines:
            return self.baselines[name].label
        return self.model(name).label

    def crop(self, n_frames: int) -> Crop:
        """Crop geometry of a source: the front-end clip length and rate, the frame rate, ``n_frames``."""
        return Crop(self.frontend.clip_samples, self.frontend.sample_rate, self.fps, n_frames)

    def extract_rate(self, name: str) -> int:
        """The rate the extract stage writes ``name``'s audio at (``datasets.<name>.extract_rate``, else the
        front-end's); a family reading it at another rate resamples (:class:`avsep.data.store.ClipStore`)."""
        return self.dataset(name).extract_rate or self.frontend.sample_rate

    def dataset(self, name: str) -> DatasetConfig:
        try:
            return self.datasets[name]
        except KeyError:
            raise ConfigError(f"params.yaml: datasets.{name} is not defined (known: {sorted(self.datasets)})") from None

    def model(self, name: str) -> ModelVariant:
        try:
            return self.models[name]
        except KeyError:
            raise ConfigError(f"params.yaml: models.{name} is not defined (known: {sorted(self.models)})") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    return Params(raw)
