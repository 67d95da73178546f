"""Memory layout of 4-D feature maps, kept through the copies a network makes.

With ``train.channels_last`` the model's convolutions run on channels-last (NHWC) maps. A copy made by ``reshape``
or ``contiguous()`` comes out NCHW, and every convolution then converts it back (on the CPU such a conversion of
the LAVSS decoder's last maps cost more than the convolution itself). These helpers copy in the source's layout.
"""

from __future__ import annotations

import torch


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """``torch.channels_last`` for a 4-D tensor laid out NHWC (and not also NCHW), else ``torch.contiguous_format``."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def repeat_groups(x: torch.Tensor, outer: int, inner: int, times: int) -> torch.Tensor:
    """``x`` (outer * inner, ...) -> (outer * inner * times, ...): row ``(o, i)`` repeated ``times`` times, in
    (outer, inner, times) order and in ``x``'s memory layout (``expand(...).reshape(...)`` would make it NCHW)."""
    shape = x.shape[1:]
    out = torch.empty((outer * inner * times, *shape), dtype=x.dtype, device=x.device, memory_format=memory_format_of(x))
    out.view(outer, inner, times, *shape).copy_(x.view(outer, inner, 1, *shape))
    return out
