"""The spectral targets of HFRA training mixtures, kept in memory when the mixtures repeat.

With ``mixing.train_mixtures.distinct_epochs`` set, the training-mixture manifest repeats its mixtures (the demo:
512 distinct mixtures for 2,560 draws), and each repeat would recompute the same STFTs, warps and masks
(:func:`avsep.audio.mixing.spectral_batch`: 14-28 % of a demo HFRA step on the CPU). :class:`SpectralCache`
computes each distinct mixture's targets once, from the same operations on the same rows (every one of them acts
on each mixture alone), so a batch from the cache equals the one computed from scratch value for value. It keeps
everything the losses and the network read; not the complex mixture STFT (``mix_spec`` is ``None`` in its
batches), which training never reads and which would double the memory.

It is used only where every distinct mixture fits in ``budget_bytes`` (1 GiB by default) and some mixture repeats:
an epoch of fresh mixtures (the papers' protocol) gets nothing from it and keeps nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from avsep.audio.frontend import FrontendConfig
from avsep.audio.mixing import SpectralBatch, mix_sources, spectral_batch

DEFAULT_BUDGET_BYTES = 1 << 30
_FIELDS = ("log_mag", "gt_masks", "weight", "mix_mag", "src_mag")


def item_bytes(frontend: FrontendConfig, num_sources: int) -> int:
    """Bytes one mixture takes in the cache: the (W, T) float32 maps of log_mag, weight, mix_mag and, per source,
    gt_masks and src_mag."""
    return frontend.warp_bins * frontend.n_frames * 4 * (3 + 2 * num_sources)


class SpectralCache:
    """Per-mixture spectral targets, keyed by the manifest's content key (``mixture_id``: equal keys, equal
    mixtures); ``keys(step, batch_size, rank_offset)`` gives a batch's keys."""

    def __init__(self, keys: Callable[[int, int, int], list[str]], capacity: int) -> None:
        self.keys = keys
        self.capacity = capacity
        self.items: dict[str, tuple[torch.Tensor, ...]] = {}
        self.hits = 0
        self.misses = 0

    @classmethod
    def for_draws(cls, keys: Callable[[int, int, int], list[str]], all_keys: Sequence[str], frontend: FrontendConfig,
                  num_sources: int, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> SpectralCache | None:
        """A cache for training on the draws ``all_keys`` (every step's keys, in order), or ``None`` where no
        mixture repeats or the distinct ones do not fit in ``budget_bytes``."""
        distinct = len(set(all_keys))
        if distinct == len(all_keys) or distinct * item_bytes(frontend, num_sources) > budget_bytes:
            return None
        return cls(keys, distinct)

    def spectral(self, step: int, batch_size: int, rank_offset: int, audio: torch.Tensor, gains: torch.Tensor,
                 frontend: FrontendConfig) -> SpectralBatch:
        """The batch's :class:`SpectralBatch` (``mix_spec=None``) for ``audio`` (B, N, L) and ``gains`` (B, N): the
        mixtures not yet kept are mixed and transformed together, the rest read back."""
        keys = self.keys(step, batch_size, rank_offset)
        if len(keys) != audio.shape[0]:
            raise ValueError(f"spectral cache: {len(keys)} keys for a batch of {audio.shape[0]} mixtures")
        new: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k not in self.items and k not in new:
                new[k] = i
        fresh: dict[str, tuple[torch.Tensor, ...]] = {}
        if new:
            rows = torch.tensor(list(new.values()))
            sources, mixture = mix_sources(audio[rows], gains[rows])
            sb = spectral_batch(sources, mixture, frontend)
            for j, k in enumerate(new):
                fresh[k] = tuple(getattr(sb, f)[j].clone() for f in _FIELDS)
                if len(self.items) < self.capacity:
                    self.items[k] = fresh[k]
        self.misses += len(new)
        self.hits += len(keys) - len(new)
        parts = [fresh[k] if k in fresh else self.items[k] for k in keys]
        fields = {f: torch.stack([p[i] for p in parts]) for i, f in enumerate(_FIELDS)}
        return SpectralBatch(mix_spec=None, **fields)
