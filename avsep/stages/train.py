"""The training stage (rules/train.smk): one HFRA-family variant through the engine, or several processes under torchrun."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from avsep.config.params import ModelVariant, Params
from avsep.data.inputs import ClapTargets, TableSampler, visual_inputs
from avsep.data.store import ClipStore
from avsep.encoders.cache import cache_meta, cache_weights_label
from avsep.engine.checkpoint import inference_meta
from avsep.engine.hfra import HFRATask, TrainData
from avsep.engine.spectral_cache import SpectralCache
from avsep.engine.trainer import fit


def train(
    p: Params, dataset: str, model: str, manifest: str | Path, out_ckpt: str | Path,
    train_mixtures: str | Path, clip_caches: list[tuple[str, str]] | None = None,
    clap_cache: tuple[str, str] | None = None, launch: bool = True,
) -> Path:
    """Train one model variant on one dataset, on the seeded training-mixture manifest. ``model`` is a run name
    (:meth:`Params.run`): ``sop`` trains with the first of ``seeds``, ``sop~s<s>`` with seed s.

    With ``train.processes`` > 1 (and ``launch``) this starts ``torchrun`` with that many processes, each
    running this function through ``python -m avsep.cli train`` (DistributedDataParallel).
    """
    if launch and p.train_processes > 1:
        return _launch_distributed(p, dataset, model, manifest, out_ckpt, train_mixtures, clip_caches, clap_cache)
    v, cfg = p.run(model)  # the variant and train: with the run's seed (the data and mixtures keep `seed`)
    d = p.dataset(dataset)
    store = ClipStore(manifest, p.frontend.sample_rate, d.channels)
    sampler = TableSampler(pd.read_parquet(train_mixtures), int(p.mixing["num_sources"]), where=str(train_mixtures))
    visual, visual_label = visual_inputs(v, store, clip_caches)
    clap = None
    meta = {"model": model, "label": v.label, "dataset": dataset, "visual_weights": visual_label, "align_lambda": v.align_lambda}
    meta.update(_inference_meta(p, v, store, clip_caches))
    if v.aligned:
        if clap_cache is None:
            raise ValueError(f"model {model} has align_lambda={v.align_lambda} but no CLAP cache was given")
        clap = ClapTargets(*clap_cache)
        meta["clap_weights"] = cache_weights_label(clap_cache[0])
    cache = SpectralCache.for_draws(sampler.content_keys, sampler.content, p.frontend, int(p.mixing["num_sources"]))
    data = TrainData(store=store, sampler=sampler, visual=visual, frontend=p.frontend, clap=clap, spectral_cache=cache)
    out = Path(out_ckpt)
    final = fit(HFRATask(v.separator, data, v.align_lambda), cfg, out.parent, meta)
    if final != out:
        raise RuntimeError(f"training wrote {final}, expected {out}")
    return final


def _inference_meta(p: Params, v: ModelVariant, store: ClipStore, clip_caches: list[tuple[str, str]] | None) -> dict:
    """What ``avsep separate`` reads from the checkpoint (:func:`avsep.engine.checkpoint.inference_meta`): the
    front-end, frame rate, mono input, the train clips' labels and, for CLIP variants, the encoder of the cache."""
    labels = [str(r["label"]) for r in store.rows.values() if str(r.get("split")) == "train"]
    clip = None
    if v.uses_embeddings and clip_caches:
        c = p.raw.get("clip", {})
        clip = {"model": str(c.get("model", "ViT-B-32")), "pretrained": str(c.get("pretrained", "random")),
                "seed": p.seed, "weights": str(cache_meta(clip_caches[0][0]).get("weights", "unknown"))}
    return inference_meta(p.frontend, p.fps, 1, labels, clip)


def _launch_distributed(
    p: Params, dataset: str, model: str, manifest: str | Path, out_ckpt: str | Path, train_mixtures: str | Path,
    clip_caches: list[tuple[str, str]] | None, clap_cache: tuple[str, str] | None,
) -> Path:
    """Run training under torchrun with ``train.processes`` processes (argument list, no shell)."""
    import subprocess
    import sys
    import tempfile

    import yaml

    out = Path(out_ckpt)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=out.parent, prefix=".params.", delete=False) as f:
        yaml.safe_dump(p.raw, f, sort_keys=False)
        params_file = f.name
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={p.train_processes}",
        "-m", "avsep.cli", "train", "--params", params_file, "--dataset", dataset, "--model", model,
        "--manifest", str(manifest), "--mixtures", str(train_mixtures), "--out", str(out),
    ]
    if clip_caches:
        cmd += ["--clip", *map(str, clip_caches[0])]
    if clap_cache:
        cmd += ["--clap", *map(str, clap_cache)]
    try:
        res = subprocess.run(cmd, check=False)
    finally:
        Path(params_file).unlink(missing_ok=True)
    if res.returncode != 0:
        raise RuntimeError(f"distributed training of {dataset}/{model} failed (torchrun exit code {res.returncode})")
    if not out.exists():
        raise RuntimeError(f"distributed training of {dataset}/{model} ended without writing {out}")
    return out
