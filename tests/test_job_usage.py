"""A job's resource usage (avsep.stages.context): what rule_context writes to a rule's `usage` log."""

import json
import subprocess
import sys

import pandas as pd
import pytest
from snakemake.iocontainers import Log  # the class of a script's snakemake.log

from avsep.stages.context import rule_context


class _Smk:
    def __init__(self, tmp_path, usage=True):
        self.log = Log([str(tmp_path / "job.log")] + ([str(tmp_path / "bench/job.tsv")] if usage else []))
        if usage:
            self.log._set_name("usage", 1)  # as Snakemake names `usage="..."` in a rule's log:
        self.config = {}


_COUNT = """
import json, subprocess, sys
from avsep.stages.context import job_usage, process_start
start = process_start()
before = job_usage(start)
x = bytearray(300 * 1024 * 1024)  # 300 MiB touched in this process
for i in range(0, len(x), 4096):
    x[i] = 1
subprocess.run([sys.executable, "-c", "sum(range(3 * 10**7))"], check=True)  # CPU in a waited-for child
print(json.dumps([before, job_usage(start)]))
"""


def test_usage_counts_this_process_and_its_children():
    # in a process of its own: the test runner's own peak RSS (GBs after other tests) would hide the 300 MiB
    out = subprocess.run([sys.executable, "-c", _COUNT], capture_output=True, text=True, check=True)
    before, after = json.loads(out.stdout)
    assert after["max_rss"] >= before["max_rss"] + 250
    assert after["cpu_time"] >= before["cpu_time"] + 0.3
    assert after["s"] >= before["s"] and after["cpu_time"] == pytest.approx(after["user"] + after["system"], abs=0.02)


def test_rule_context_writes_the_usage_log_beside_the_text_log(tmp_path, monkeypatch):
    monkeypatch.setattr("avsep.stages.context.Params", lambda cfg: cfg)
    smk = _Smk(tmp_path)
    with rule_context(smk):
        print("working")
    assert "working" in (tmp_path / "job.log").read_text()
    u = pd.read_csv(tmp_path / "bench/job.tsv", sep="\t")
    assert list(u.columns) == ["s", "h:m:s", "max_rss", "cpu_time", "user", "system"] and len(u) == 1
    assert u["max_rss"].iloc[0] > 10 and u["s"].iloc[0] > 0
    assert not list((tmp_path / "bench").glob(".*tmp"))  # written through a temporary file, none left


def test_a_failed_job_writes_no_usage(tmp_path, monkeypatch):
    monkeypatch.setattr("avsep.stages.context.Params", lambda cfg: cfg)
    with pytest.raises(RuntimeError), rule_context(_Smk(tmp_path)):
        raise RuntimeError("bad input")
    assert "bad input" in (tmp_path / "job.log").read_text()
    assert not (tmp_path / "bench/job.tsv").exists()


def test_the_start_is_the_process_start_not_a_second_early():
    """psutil's create_time rounds the boot time down to the second: measured 0.97 s early on every job."""
    code = "import time; t = time.time(); from avsep.stages.context import process_start; print(t - process_start())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 0.0 <= float(out.stdout) < 0.5  # the interpreter's own start, a few tens of ms
