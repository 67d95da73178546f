"""Process-group context for training under ``torchrun`` (DistributedDataParallel).

Without torchrun's environment (``WORLD_SIZE`` unset or 1) everything is a single process on the first
GPU if there is one, else the CPU. Under torchrun the process group is initialised once with NCCL on
GPUs and gloo on CPU; each rank uses GPU ``LOCAL_RANK``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    device: torch.device

    def mean(self, values: list[float]) -> list[float]:
        """The mean over ranks of each value (the values themselves in a single process)."""
        if self.world_size == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return (t / self.world_size).tolist()

    def mean_tensor(self, t: torch.Tensor) -> torch.Tensor:
        """The mean over ranks of a tensor on this rank's device (``t`` itself in a single process); no host
        synchronisation on a GPU."""
        if self.world_size == 1:
            return t
        t = t.clone()
        dist.all_reduce(t)
        return t / self.world_size

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def dist_context() -> DistContext:
    """Initialise (once) and describe this process's place in the job."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world <= 1:
        return DistContext(0, 1, torch.device("cuda", 0) if cuda else torch.device("cpu"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    return DistContext(dist.get_rank(), dist.get_world_size(), device)
