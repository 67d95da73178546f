"""Seeding: every job is deterministic on CPU, without paying for imports it does not use."""

import subprocess
import sys

PROBE = """
import sys, torch
from avsep.core.seeding import seed_everything
assert not torch.are_deterministic_algorithms_enabled()
seed_everything(7, threads=1)
a = torch.rand(3)
seed_everything(7, threads=1)
print(torch.are_deterministic_algorithms_enabled(), torch.get_num_threads(), torch.equal(a, torch.rand(3)),
      "torch._inductor" in sys.modules)
"""


def test_seed_everything_turns_on_deterministic_algorithms_without_importing_inductor():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "1", "True", "False"]


def test_with_inductor_loaded_its_deterministic_flag_is_set_too():
    probe = ("import torch, torch._inductor.config as c\nfrom avsep.core.seeding import seed_everything\n"
             "seed_everything(1)\nprint(torch.are_deterministic_algorithms_enabled(), c.deterministic)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True"]


def test_jobs_import_only_what_they_use():
    """The mixture-list jobs read manifests only and start without torch; no training or evaluation job imports
    scipy.signal unless it resamples (each such import is 0.5-1.5 s of every one of ~145 jobs of the DAG)."""
    probe = ("import sys, avsep.stages.mix\nprint('torch' in sys.modules, 'scipy.signal' in sys.modules)\n"
             "import avsep.stages.train, avsep.stages.evaluate, avsep.stages.lavss\nprint('scipy.signal' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "False"]
