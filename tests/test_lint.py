"""`snakemake --lint` has nothing to report on the workflow (every rule: log, benchmark, conda env, ...)."""

from __future__ import annotations

from workflow_helpers import copy_workflow, default_params, snakemake, write_params


def test_snakemake_lint_reports_nothing(tmp_path):
    copy_workflow(tmp_path)
    write_params(tmp_path, default_params())
    res = snakemake(tmp_path, "--lint", timeout=300)
    out = res.stdout + res.stderr
    lints = [line for line in out.splitlines() if line.startswith(("Lints for", "    * "))]
    assert res.returncode == 0 and not lints, "\n".join(lints) or out[-3000:]
    assert "Congratulations, your workflow is in a good condition!" in out
