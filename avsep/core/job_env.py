"""The environment every pipeline job starts with: the Snakefile sets it before any job runs (jobs inherit it;
values already in the environment win).

* One BLAS / OpenMP thread per job: metrics are bit-reproducible and jobs do not oversubscribe the cores
  (``threads:`` sets torch's own thread count).
* glibc's malloc keeps freed memory up to 512 MiB in the process (``MALLOC_MMAP_THRESHOLD_``,
  ``MALLOC_TRIM_THRESHOLD_``). By default it maps a large block afresh for each allocation above a moving
  threshold and returns it on free, so every training step faulted its large tensors in again, page by page:
  a demo HFRA training (``hfra_align``) made 7.2 million page faults and spent 12.4 of its 51.6 s in the
  kernel; with these settings 0.28 million, 1.6 s, 41.7 s in all, and the same weights bit for bit
  (benchmarks/README.md). Peak RSS grows by about 0.1 GB. Other C libraries ignore the two variables.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

MALLOC_KEEP_BYTES = 512 << 20

JOB_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_MMAP_THRESHOLD_": str(MALLOC_KEEP_BYTES),
    "MALLOC_TRIM_THRESHOLD_": str(MALLOC_KEEP_BYTES),
}


def apply_job_env(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set :data:`JOB_ENV` in ``environ`` (``os.environ``) where not set already; returns what was set."""
    env = os.environ if environ is None else environ
    added = {k: v for k, v in JOB_ENV.items() if k not in env}
    env.update(added)
    return added
