"""The environment the Snakefile gives every job (avsep.core.job_env)."""

import json
import os
import platform
import subprocess
import sys

import pytest

from avsep.core.job_env import JOB_ENV, apply_job_env

# A training step's pattern: ten 4 MiB tensors made, written and freed, twenty times over.
_STEPS = """
import json, resource
import numpy as np
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step = [np.ones(4 * 1024 * 1024 // 8) for _ in range(10)]
    del step
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before))
"""
PER_STEP_PAGES = 10 * 4 * 1024 * 1024 // 4096


def _faults(extra: dict[str, str]) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(extra)
    out = subprocess.run([sys.executable, "-c", _STEPS], env=env, capture_output=True, text=True, check=True)
    return int(json.loads(out.stdout))


def test_apply_sets_what_is_missing_and_keeps_what_is_set():
    env = {"OMP_NUM_THREADS": "4"}
    added = apply_job_env(env)
    assert env["OMP_NUM_THREADS"] == "4" and "OMP_NUM_THREADS" not in added
    assert env["MALLOC_TRIM_THRESHOLD_"] == JOB_ENV["MALLOC_TRIM_THRESHOLD_"] == str(512 * 1024 * 1024)
    assert set(added) == set(JOB_ENV) - {"OMP_NUM_THREADS"}


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc malloc tunables")
def test_freed_blocks_stay_in_the_process_instead_of_being_faulted_in_again():
    default = _faults({})
    kept = _faults({k: v for k, v in JOB_ENV.items() if k.startswith("MALLOC_")})
    assert kept < 2 * PER_STEP_PAGES  # the first step's pages, then reused (measured: 0.5 step's worth)
    assert default > 5 * kept  # glibc's default hands them back and faults them in again (measured: 20 x)
