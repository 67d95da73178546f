"""Glue for the Snakemake scripts: per-rule logs and typed params."""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from avsep.config.params import Params


class _Tee:
    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, s: str) -> int:
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self) -> None:
        for st in self.streams:
            st.flush()

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def rule_context(smk: Any) -> Iterator[Params]:
    """Send stdout/stderr of a rule to its log file (and the console), yield the validated params."""
    logs = list(getattr(smk, "log", []))
    if not logs:
        yield Params(smk.config)
        return
    path = Path(logs[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = _Tee(f, old_out)  # type: ignore[assignment]
        sys.stderr = _Tee(f, old_err)  # type: ignore[assignment]
        try:
            yield Params(smk.config)
        except BaseException:
            traceback.print_exc()
            raise
        finally:
            sys.stdout, sys.stderr = old_out, old_err
