"""Training batches as plain dataclasses of tensors, moved to a device or pinned as a whole."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch


def map_tensors(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``obj`` with ``fn`` applied to every tensor in it (dataclass fields, dicts, lists and tuples, recursively);
    anything else is passed through."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: map_tensors(getattr(obj, f.name), fn)
                                           for f in dataclasses.fields(obj) if f.init})
    if isinstance(obj, dict):
        return {k: map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(map_tensors(v, fn) for v in obj)
    return obj


def to_device(obj: Any, device: torch.device) -> Any:
    """``obj``'s tensors on ``device`` (unchanged where they are there already; asynchronous from pinned memory)."""
    return map_tensors(obj, lambda t: t.to(device, non_blocking=t.is_pinned()))


def pin(obj: Any) -> Any:
    """``obj``'s tensors in pinned (page-locked) memory, for asynchronous copies to a GPU."""
    return map_tensors(obj, lambda t: t.pin_memory())


class TensorBatch:
    """A dataclass batch that a DataLoader (``pin_memory=True``) can pin as a whole."""

    def pin_memory(self) -> Any:
        return pin(self)
