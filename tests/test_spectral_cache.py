"""The HFRA spectral cache (avsep.engine.spectral_cache): batches from it equal the ones computed from scratch, and
training with it ends in the same weights."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from workflow_helpers import micro_clips, micro_params

from avsep.config.params import Params
from avsep.core.io import read_manifest
from avsep.data.inputs import FrameInputs, TableSampler
from avsep.data.mixtures import make_train_mixtures
from avsep.data.store import ClipStore
from avsep.engine import checkpoint
from avsep.engine.hfra import HFRATask, TrainData, make_batch
from avsep.engine.spectral_cache import SpectralCache, item_bytes
from avsep.engine.trainer import fit

STEPS, BATCH = 12, 3


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    p = Params(micro_params())
    manifest = micro_clips(p, tmp_path_factory.mktemp("micro"))
    v = p.models["sop"].separator.visual
    # 5 mixtures an epoch, 2 distinct epochs: 10 distinct mixtures for 36 draws; 5 is not a multiple of the batch,
    # so batches mix kept and new mixtures. 2 mixtures an epoch, 1 distinct: each batch of 3 holds one of them twice
    tables = {(pe, de): make_train_mixtures(read_manifest(manifest), STEPS, BATCH, 2, p.seed, p.crop(v.n_frames),
                                            (0.5, 1.5), per_epoch=pe, distinct_epochs=de) for pe, de in ((5, 2), (2, 1))}
    return p, manifest, tables


def _data(p: Params, manifest: Path, table, cached: bool) -> TrainData:
    sampler = TableSampler(table, 2)
    store = ClipStore(manifest, 11025)
    cache = SpectralCache.for_draws(sampler.content_keys, sampler.content, p.frontend, 2) if cached else None
    if cached:
        assert cache is not None and cache.capacity == len(set(table["mixture_id"]))
    return TrainData(store, sampler, FrameInputs(store, p.models["sop"].separator.visual.frame_size), p.frontend,
                     spectral_cache=cache)


@pytest.mark.parametrize("epochs", [(5, 2), (2, 1)], ids=["kept-and-new", "twice-in-a-batch"])
def test_batches_from_the_cache_equal_the_computed_ones(micro, epochs):
    p, manifest, tables = micro
    table = tables[epochs]
    distinct = epochs[0] * epochs[1]
    plain, cached = _data(p, manifest, table, False), _data(p, manifest, table, True)
    twice = 0
    for step in range(STEPS):
        a, b = make_batch(plain, step, BATCH), make_batch(cached, step, BATCH)
        keys = cached.sampler.content_keys(step, BATCH)
        twice += len(set(keys)) < len(keys)
        for f in ("log_mag", "gt_masks", "weight", "mix_mag", "src_mag"):
            x, y = getattr(a.spectral, f), getattr(b.spectral, f)
            assert x.shape == y.shape and torch.equal(x, y), (step, f)
        assert b.spectral.mix_spec is None
        assert torch.equal(a.audio, b.audio) and torch.equal(a.visual, b.visual)
    cache = cached.spectral_cache
    assert cache.misses == distinct and cache.hits == STEPS * BATCH - distinct and len(cache.items) == distinct
    assert (twice > 0) == (epochs == (2, 1))


def test_training_with_the_cache_ends_in_the_same_weights(micro, tmp_path):
    p, manifest, tables = micro
    table = tables[(5, 2)]
    cfg = replace(p.train, steps=STEPS, batch_size=BATCH, checkpoint_every=1000)
    sep = p.models["sop"].separator
    a = fit(HFRATask(sep, _data(p, manifest, table, False)), cfg, tmp_path / "a", meta={"model": "sop"})
    b = fit(HFRATask(sep, _data(p, manifest, table, True)), cfg, tmp_path / "b", meta={"model": "sop"})
    wa, wb = checkpoint.load(a)["model"], checkpoint.load(b)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_no_cache_without_repeats_or_over_budget(micro):
    p, _, tables = micro
    table = tables[(5, 2)]
    sampler = TableSampler(table, 2)
    fresh = [f"k{i}" for i in range(len(sampler.content))]
    assert SpectralCache.for_draws(sampler.content_keys, fresh, p.frontend, 2) is None
    need = 10 * item_bytes(p.frontend, 2)
    assert SpectralCache.for_draws(sampler.content_keys, sampler.content, p.frontend, 2, budget_bytes=need - 1) is None
    assert SpectralCache.for_draws(sampler.content_keys, sampler.content, p.frontend, 2, budget_bytes=need) is not None
