"""The code inputs of a rule are the transitive closure of its script's avsep imports (avsep.core.codedeps)."""

from pathlib import Path

import pytest
from workflow_helpers import ROOT

from avsep.core.codedeps import code_files


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_closure_follows_absolute_relative_and_function_level_imports(tmp_path):
    _write(tmp_path, {
        "avsep/__init__.py": "",
        "avsep/pkg/__init__.py": "",
        "avsep/pkg/a.py": "from avsep.pkg import b\n",
        "avsep/pkg/b.py": "def f():\n    from .c import g\n    return g()\n",
        "avsep/pkg/c.py": "import os\nfrom . import d as _d\n",
        "avsep/pkg/d.py": "X = 1\n",
        "avsep/other.py": "Y = 2\n",  # imported by nobody
        "workflow_scripts/s.py": "from avsep.pkg.a import b\n",
    })
    assert code_files(["workflow_scripts/s.py"], root=tmp_path) == [
        "avsep/__init__.py", "avsep/pkg/__init__.py", "avsep/pkg/a.py", "avsep/pkg/b.py", "avsep/pkg/c.py",
        "avsep/pkg/d.py",
    ]


def test_an_import_of_a_missing_module_names_the_importer(tmp_path):
    _write(tmp_path, {"avsep/__init__.py": "", "workflow_scripts/s.py": "from avsep.gone import x\n"})
    with pytest.raises(ImportError, match=r"s\.py: imports avsep\.gone"):
        code_files(["workflow_scripts/s.py"], root=tmp_path)


def test_every_workflow_script_resolves_and_the_train_rule_reaches_the_engine():
    scripts = sorted(p.relative_to(ROOT) for p in (ROOT / "workflow_scripts").glob("*.py"))
    for s in scripts:
        assert code_files([s], root=ROOT), s
    train = code_files(["workflow_scripts/train.py"], root=ROOT)
    assert {"avsep/engine/distributed.py", "avsep/engine/trainer.py", "avsep/stages/train.py"} <= set(train)
    assert not any(f.startswith("avsep/detection/") for f in train)
