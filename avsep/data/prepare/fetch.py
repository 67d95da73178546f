"""Fetching a dataset's files (metadata, archives) from a URL or a local path, atomically.

Used by the ``metadata`` stage (MUSIC jsons, the VGGSound csv, the FAIR-Play split tarball) and by the
FAIR-Play import (the video and audio tarballs). A source is either an ``http(s)://`` / ``file://`` URL or
a local path (absolute, or relative to the working directory), so a user without internet on the
machine that runs the pipeline can fetch the files elsewhere and list their paths instead.

The file is streamed to a temporary name beside its destination and renamed only when complete (its
size is checked against ``Content-Length`` when the server sends one), so an interrupted fetch never
leaves a file that looks finished.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from avsep.core.io import atomic_path
from avsep.core.progress import progress as progress_bar

CHUNK = 1 << 20
USER_AGENT = "avsep-dataset-fetch"


class FetchError(RuntimeError):
    """A file could not be fetched; the message names the source, the destination and the reason."""


@dataclass(frozen=True)
class Fetched:
    """What was fetched: the source as configured, the file written, its size and SHA-256."""

    source: str
    path: Path
    bytes: int
    sha256: str


def is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme in ("http", "https", "file")


def source_name(source: str) -> str:
    """The file name a source is stored under: the last path component of the URL or path."""
    path = urllib.parse.urlsplit(source).path if is_url(source) else source
    name = urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1])
    if not name or name in (".", "..") or name.startswith(".") or "\\" in name:
        raise FetchError(f"{source!r}: cannot take a safe file name from it")
    return name


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def fetch(
    source: str,
    dest: str | Path,
    timeout: float = 30.0,
    retries: int = 2,
    what: str = "file",
    progress: bool = True,
    copy_local: bool = True,
) -> Fetched:
    """Copy ``source`` (URL or local path) to ``dest`` atomically and return what was written.

    Args:
        source: ``http(s)://`` or ``file://`` URL, or a local path.
        dest: destination file.
        timeout: socket timeout of the HTTP connection (seconds).
        retries: further attempts after a network error (not after an HTTP error status).
        what: how the file is named in error messages (e.g. ``datasets.music.metadata[0]``).
        copy_local: copy a local source to ``dest`` (small files); if False a local file is used where it
            is (large archives) and the result's ``path`` is the source itself (``sha256`` is then "").

    Raises:
        FetchError: the source is missing, the server answered with an error, the connection failed or
            the body was shorter than announced. The message says that the stage needs internet access
            and how to do without it.
    """
    dest = Path(dest)
    if not is_url(source):
        return _copy_local(Path(source), dest, what, copy_local)
    attempt = 0
    while True:
        try:
            return _download(source, dest, timeout, progress)
        except urllib.error.HTTPError as e:
            raise FetchError(f"{what}: {source} answered HTTP {e.code} {e.reason}; nothing written to {dest}") from None
        except (urllib.error.URLError, OSError, _Incomplete) as e:
            attempt += 1
            if attempt > retries:
                reason = getattr(e, "reason", e)
                raise FetchError(
                    f"{what}: cannot fetch {source} ({reason}). This stage needs internet access; without it, "
                    f"fetch the file on another machine and list its local path instead of the URL "
                    f"(nothing was written to {dest})"
                ) from None
            time.sleep(min(2.0**attempt, 10.0))


class _Incomplete(OSError):
    pass


def _download(url: str, dest: Path, timeout: float, progress: bool) -> Fetched:
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    h = hashlib.sha256()
    n = 0
    with urllib.request.urlopen(req, timeout=timeout) as resp, atomic_path(dest) as tmp:
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        bar = progress_bar(total=expected, desc=f"fetch {dest.name}", unit="B", unit_scale=True, disable=not progress)
        with bar, open(tmp, "wb") as out:
            for block in iter(lambda: resp.read(CHUNK), b""):
                out.write(block)
                h.update(block)
                n += len(block)
                bar.update(len(block))
        if expected is not None and n != expected:
            raise _Incomplete(f"got {n} of {expected} bytes")
    return Fetched(url, dest, n, h.hexdigest())


def _copy_local(src: Path, dest: Path, what: str, copy: bool) -> Fetched:
    if not src.is_file():
        raise FetchError(f"{what}: local file {src} does not exist")
    if not copy:
        return Fetched(str(src), src, src.stat().st_size, "")
    if src.resolve() != dest.resolve():
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
    return Fetched(str(src), dest, dest.stat().st_size, sha256_of(dest))
