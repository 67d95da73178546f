"""Progress bars that stay readable in log files.

On a terminal, a normal tqdm bar. Elsewhere (a Snakemake log, a SLURM output file) each update is a new
line, and updates are spaced out so logs stay short.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


class _LineWriter:
    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, s: str) -> None:
        s = s.replace("\r", "").replace("\x1b[A", "").strip()
        if s:
            self.stream.write(s + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> tqdm:
    """tqdm, or a line-per-update bar (every 10 s at most) when stderr is not a terminal."""
    stream = sys.stderr
    if not (hasattr(stream, "isatty") and stream.isatty()):
        kwargs.setdefault("file", _LineWriter(stream))
        kwargs.setdefault("mininterval", 10.0)
        kwargs.setdefault("ascii", True)
        kwargs.setdefault("ncols", 100)
    return tqdm(iterable, **kwargs)
