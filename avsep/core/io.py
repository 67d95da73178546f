"""Atomic file output and manifests (the parquet contract between stages).

Every artefact is written under a temporary name in its destination directory and renamed into place,
so a stage killed mid-write never leaves a file that a rerun could mistake for a finished one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

#: Columns every manifest carries, whatever the stage.
MANIFEST_COLUMNS = ("id", "status", "reason")
STATUS_OK = "ok"
STATUS_FAILED = "failed"


def _file_mode() -> int:
    """The mode a normal ``open()`` would give a new file under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block succeeds.

    The temporary file keeps the destination's suffix (``suffix`` overrides it) so that tools that pick a
    format from the extension (ffmpeg, soundfile, PIL) still work. On error the temporary is removed.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    sfx = dest.suffix if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=f".tmp{sfx}", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600 files; outputs should be readable like any other
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; it replaces ``path`` when the block succeeds."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_parquet(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a DataFrame to parquet atomically (no index)."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def write_csv(df: pd.DataFrame, path: str | os.PathLike[str], float_format: str = "%.4f") -> None:
    """Write a DataFrame to CSV atomically, with a fixed float format so tables are byte-stable."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format=float_format, lineterminator="\n")


def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write JSON atomically with sorted keys (byte-stable)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(text: str, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_manifest(path: str | os.PathLike[str], ok_only: bool = False) -> pd.DataFrame:
    """Read a manifest, checking it has the contract's columns; optionally keep only ``ok`` rows."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"manifest {p} does not exist (did the stage that writes it run?)")
    df = pd.read_parquet(p)
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"manifest {p} lacks required column(s) {missing}")
    if ok_only:
        df = df[df["status"] == STATUS_OK].reset_index(drop=True)
    return df


def status_counts(df: pd.DataFrame) -> str:
    """A one-line summary such as ``ok=12 failed=1`` for logs and progress bars."""
    ok = int((df["status"] == STATUS_OK).sum())
    failed = int((df["status"] == STATUS_FAILED).sum())
    return f"ok={ok} failed={failed}"
