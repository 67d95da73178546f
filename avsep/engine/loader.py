"""The batches of a run's steps, made in order on the spot or ahead in the background.

Every batch is a pure function of its step (a task's ``batch(step, ...)``: the step's mixtures, read, mixed and
turned into the network's inputs and targets, nothing that depends on the weights or on a random generator's
state), so a run whose batches are made ahead trains on exactly the batches of a synchronous one, and a resumed
run continues with the batch of its next step.

* ``prefetch = 0``: each batch is made when its step starts (the plain loop).
* ``prefetch = k > 0, workers = 0``: one background thread of the training process makes the next ``k`` batches
  while the current step runs (torch, numpy, soundfile and PIL release the GIL in their work). The thread runs
  torch's CPU ops with the training process's thread count, so its results are those of the main thread.
* ``workers = w > 0``: a :class:`torch.utils.data.DataLoader` with ``w`` worker processes, each holding up to
  ``max(k, 1)`` batches ahead (one torch thread each), batches delivered in step order.

With ``pin`` the batches' tensors are put in pinned memory (for asynchronous copies to a GPU).
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Self

import torch
from torch.utils.data import DataLoader, Dataset

from avsep.data.tensors import pin as pin_tensors


class _StepDataset(Dataset):
    """Map-style dataset whose item ``step`` is the batch of that step."""

    def __init__(self, make: Callable[[int], Any]) -> None:
        self.make = make

    def __getitem__(self, step: int) -> Any:
        return self.make(int(step))


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)


class StepBatches:
    """Iterator of ``(step, batch)`` over ``steps`` (see the module docstring); :meth:`close` (or ``with``) stops
    the background work (a run that ends early leaves no thread or worker behind)."""

    def __init__(self, make: Callable[[int], Any], steps: Sequence[int], prefetch: int = 0, workers: int = 0,
                 pin: bool = False) -> None:
        if prefetch < 0 or workers < 0:
            raise ValueError(f"prefetch ({prefetch}) and loader workers ({workers}) must be >= 0")
        self.steps = list(steps)
        self.make = (lambda s: pin_tensors(make(s))) if pin and workers == 0 else make
        self.prefetch = prefetch
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[tuple[int, Future]] = deque()
        self._next = 0
        self._loader_iter: Iterator[Any] | None = None
        if workers > 0:
            # fork where there is one: the workers start with the task's data already loaded (and never touch a GPU)
            context = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
            loader = DataLoader(_StepDataset(make), batch_size=None, sampler=self.steps, num_workers=workers,
                                prefetch_factor=max(1, prefetch), pin_memory=pin, worker_init_fn=_one_thread,
                                multiprocessing_context=context)
            self._loader_iter = iter(loader)
        elif prefetch > 0:
            threads = torch.get_num_threads()
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="avsep-batches",
                                            initializer=torch.set_num_threads, initargs=(threads,))
            for _ in range(prefetch):
                self._submit()

    def _submit(self) -> None:
        if self._pool is not None and self._next < len(self.steps):
            step = self.steps[self._next]
            self._pending.append((step, self._pool.submit(self.make, step)))
            self._next += 1

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> tuple[int, Any]:
        if self._loader_iter is not None:
            if self._next >= len(self.steps):
                raise StopIteration
            step = self.steps[self._next]
            self._next += 1
            return step, next(self._loader_iter)
        if self._pool is not None:
            if not self._pending:
                raise StopIteration
            step, fut = self._pending.popleft()
            self._submit()  # the next batch queues behind this one: made while this step runs
            return step, fut.result()
        if self._next >= len(self.steps):
            raise StopIteration
        step = self.steps[self._next]
        self._next += 1
        return step, self.make(step)

    def close(self) -> None:
        if self._pool is not None:
            for _, fut in self._pending:
                fut.cancel()
            self._pending.clear()
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._loader_iter is not None:
            shutdown = getattr(self._loader_iter, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
            self._loader_iter = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
