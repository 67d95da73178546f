"""Parsers of the real datasets' public metadata files into a uniform clip table.

Every parser returns a :class:`pandas.DataFrame` with one row per clip and at least the columns
``id, label, split`` (see :data:`META_COLUMNS`); it is the input of
:func:`avsep.data.prepare.download.download_dataset`. The id and label checks they apply are in
:mod:`avsep.data.prepare.metadata_checks`; the clip tables that keep a rejected entry as a ``failed`` row
instead of raising are in :mod:`avsep.data.prepare.clip_tables`.

=========== ================================== ==================================================
dataset     file                               columns
=========== ================================== ==================================================
MUSIC(-21)  ``MUSIC*_videos.json``             id, youtube_id, label, split (seeded per-label split)
VGGSound    ``vggsound.csv``                   id, youtube_id, label, split, start, end
FAIR-Play   ``splits/splitN/{train,val,test}`` id, label, split, fold, audio_name
            ``.h5``
=========== ================================== ==================================================

Validation policy
-----------------
* A structurally malformed file (invalid JSON, wrong JSON shape, unexpected or missing keys, a CSV row
  with too few/many fields, a non-numeric start, an unknown split, an unreadable HDF5 file, a label that
  could escape a path) raises :class:`MetadataError`, whose message names the file, the row/key and the
  reason. Nothing is silently guessed.
* A YouTube id must match ``^[A-Za-z0-9_-]{11}$``. By default an invalid id raises
  :class:`MetadataError` too (``invalid_ids="raise"``). With ``invalid_ids="keep"`` the row is kept as
  is; the download stage then records it as ``failed`` with reason ``"invalid id"`` without any network
  call (so a corrupt line does not stop a 200k-row download, and it stays visible in the manifest).
* Labels are normalised (Unicode NFC, surrounding whitespace stripped, inner whitespace runs collapsed to
  one space) and then must be 1..100 printable characters without ``/``, ``\\``, ``..``, control
  characters, and must not start with ``-`` or ``.``. They are still free text (``"playing bass
  guitar"``, ``"vehicle horn, car horn, honking"``); use
  :func:`avsep.data.prepare.metadata_checks.label_slug` to put a label in a path.
* The same clip id listed twice: the first occurrence (in file order; for MUSIC in sorted label order)
  is kept and a :class:`MetadataWarning` names the dropped duplicates.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from avsep.core.seeding import rng
from avsep.data.prepare.metadata_checks import (
    InvalidIds,
    MetadataError,
    check_invalid_ids_arg,
    check_label,
    check_youtube_id,
    drop_duplicates,
)

#: Columns every parser's output has.
META_COLUMNS = ("id", "label", "split")
#: FAIR-Play audio file names (``000001.wav``).
_WAV_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\.wav$")
_FOLD_DIR = re.compile(r"^split(\d+)$")
VGGSOUND_SPLITS = ("train", "test")
FAIRPLAY_SPLITS = ("train", "val", "test")
_VGG_HEADER = ("youtube_id", "start_seconds", "label", "split")


def rows_frame(rows: Iterable[dict[str, Any]], columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(columns))


# --------------------------------------------------------------------------------------------------
# MUSIC / MUSIC-21
# --------------------------------------------------------------------------------------------------

MUSIC_COLUMNS = ("id", "youtube_id", "label", "split")
#: Top-level keys of a MUSIC json: the published files also carry ``"version": 1.0`` (2.0 for MUSIC-21).
_MUSIC_TOP_KEYS = ("videos", "version")


def parse_music_json(
    path: str | Path,
    split_seed: int = 0,
    test_fraction: float = 0.1,
    invalid_ids: InvalidIds = "raise",
) -> pd.DataFrame:
    """Parse ``MUSIC_solo_videos.json`` / ``MUSIC_duet_videos.json`` / ``MUSIC21_solo_videos.json``.

    The file is ``{"videos": {label: [youtube_id, ...], ...}}`` plus an optional ``"version"`` and
    nothing else. MUSIC ships no split
    file, so each label's ids (sorted, de-duplicated) are shuffled with a generator seeded by
    ``(split_seed, label)`` and the first ``round(n * test_fraction)`` become ``test`` (at least one
    when ``test_fraction > 0`` and the label has two or more ids, never all of them), the rest
    ``train``. The split of one label therefore does not depend on the other labels or on file order.

    Returns:
        columns ``id, youtube_id, label, split`` (``id == youtube_id``), sorted by label then id.

    Raises:
        MetadataError: invalid JSON, wrong shape, extra/missing keys, a non-string id, a bad label, or
            (with ``invalid_ids="raise"``) an invalid YouTube id.
    """
    check_invalid_ids_arg(invalid_ids)
    if not 0.0 <= float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), not {test_fraction}")
    path = Path(path)
    videos = music_videos(load_json(path), path)
    rows: list[dict[str, Any]] = []
    for raw_label in sorted(videos):
        label = check_label(raw_label, path, f"key videos[{raw_label!r}]")
        ids = _music_ids(videos[raw_label], path, raw_label, invalid_ids)
        rows.extend({"id": v, "youtube_id": v, "label": label} for v in ids)
    rows = drop_duplicates(rows, path)
    assign_music_split(rows, split_seed, float(test_fraction))
    return rows_frame(rows, MUSIC_COLUMNS)


def load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise MetadataError(path, "file", f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise MetadataError(path, f"line {e.lineno} column {e.colno}", f"invalid JSON: {e.msg}") from None


def music_videos(obj: Any, path: Path) -> dict[str, Any]:
    """The ``videos`` mapping of a MUSIC json, after checking the top-level shape."""
    if not isinstance(obj, dict):
        raise MetadataError(path, "top level", f'expected an object {{"videos": {{...}}}}, got {type(obj).__name__}')
    if "videos" not in obj:
        raise MetadataError(path, "top level", "missing key 'videos'")
    extra = sorted(k for k in obj if k not in _MUSIC_TOP_KEYS)
    if extra:
        raise MetadataError(path, "top level", f"unexpected key(s) {extra}")
    version = obj.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, (int, float, str)):
        raise MetadataError(path, "key 'version'", f"expected a number or a string, got {type(version).__name__}")
    videos = obj["videos"]
    if not isinstance(videos, dict):
        raise MetadataError(
            path, "key 'videos'", f"expected an object {{label: [id, ...]}}, got {type(videos).__name__}"
        )
    return videos


def _music_ids(value: Any, path: Path, label: str, invalid_ids: InvalidIds) -> list[str]:
    """The ids listed under one label, validated; duplicates inside the label are dropped silently."""
    if not isinstance(value, list):
        raise MetadataError(path, f"key videos[{label!r}]", f"expected a list of ids, got {type(value).__name__}")
    ids = [check_youtube_id(v, path, f"key videos[{label!r}][{i}]", invalid_ids) for i, v in enumerate(value)]
    return sorted(set(ids))


def assign_music_split(rows: list[dict[str, Any]], seed: int, test_fraction: float) -> None:
    """Set ``split`` of every row: a seeded, per-label train/test split (in place)."""
    by_label: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    for label, group in by_label.items():
        group.sort(key=lambda r: r["id"])
        n = len(group)
        n_test = round(n * test_fraction)
        if test_fraction > 0 and n >= 2:
            n_test = min(max(n_test, 1), n - 1)
        order = rng(seed, "music-split", label).permutation(n)
        test = {int(i) for i in order[:n_test]}
        for i, row in enumerate(group):
            row["split"] = "test" if i in test else "train"


# --------------------------------------------------------------------------------------------------
# VGGSound
# --------------------------------------------------------------------------------------------------

VGGSOUND_COLUMNS = ("id", "youtube_id", "label", "split", "start", "end")


def parse_vggsound_csv(
    path: str | Path,
    clip_seconds: float = 10.0,
    invalid_ids: InvalidIds = "raise",
) -> pd.DataFrame:
    """Parse ``vggsound.csv``: rows ``youtube_id, start_seconds, label, split``, no header.

    Fields are parsed with :mod:`csv` (labels with commas are quoted) and stripped of surrounding
    spaces; blank lines are skipped, and a first line equal to ``youtube_id,start_seconds,label,split``
    is accepted as a header. ``start_seconds`` must be a whole, non-negative number; the clip is
    ``[start, start + clip_seconds)``. Splits are ``train`` or ``test``.

    A YouTube video may contribute several clips, so the clip id is ``{youtube_id}_{start:06d}`` (e.g.
    ``---g-f_I2yQ_000001``) and the video id is in ``youtube_id``.

    Returns:
        columns ``id, youtube_id, label, split, start, end`` in file order.

    Raises:
        MetadataError: a row with the wrong number of fields, a bad start or split, a bad label, or
            (with ``invalid_ids="raise"``) an invalid YouTube id; the message gives the line number.
    """
    check_invalid_ids_arg(invalid_ids)
    if not clip_seconds > 0:
        raise ValueError(f"clip_seconds must be positive, not {clip_seconds}")
    path = Path(path)
    rows = [vggsound_row(fields, path, f"line {line}", clip_seconds, invalid_ids) for line, fields in csv_rows(path)]
    return rows_frame(drop_duplicates(rows, path), VGGSOUND_COLUMNS)


def csv_rows(path: Path) -> Iterable[tuple[int, list[str]]]:
    """(first line number, stripped fields) of every non-blank CSV row, without an optional header."""
    prev = 0  # physical lines consumed so far (a quoted field may span lines)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh, strict=True)
            first = True
            for fields in reader:
                line, prev = prev + 1, reader.line_num
                fields = [f.strip() for f in fields]
                if not any(fields):
                    continue
                is_header = first and tuple(f.lstrip("#").strip().lower() for f in fields) == _VGG_HEADER
                first = False
                if not is_header:
                    yield line, fields
    except UnicodeDecodeError as e:
        raise MetadataError(path, "file", f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise MetadataError(path, f"line {prev + 1}", f"malformed CSV: {e}") from None


def vggsound_row(
    fields: list[str], path: Path, where: str, clip_seconds: float, invalid_ids: InvalidIds
) -> dict[str, Any]:
    if len(fields) != 4:
        raise MetadataError(
            path, where, f"expected 4 fields (youtube_id, start_seconds, label, split), got {len(fields)}"
        )
    ytid, start_text, label, split = fields
    ytid = check_youtube_id(ytid, path, where, invalid_ids)
    start = _whole_seconds(start_text, path, where)
    label = check_label(label, path, where)
    if split not in VGGSOUND_SPLITS:
        raise MetadataError(path, where, f"split must be one of {list(VGGSOUND_SPLITS)}, not {split!r}")
    return {
        "id": f"{ytid}_{start:06d}",
        "youtube_id": ytid,
        "label": label,
        "split": split,
        "start": float(start),
        "end": float(start + clip_seconds),
    }


def _whole_seconds(text: str, path: Path, where: str) -> int:
    """A start time field as a whole, non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise MetadataError(path, where, f"start_seconds {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise MetadataError(path, where, f"start_seconds {text!r} is not a whole non-negative number")
    return int(value)


# --------------------------------------------------------------------------------------------------
# FAIR-Play
# --------------------------------------------------------------------------------------------------

FAIRPLAY_COLUMNS = ("id", "label", "split", "fold", "audio_name")


def parse_fairplay_split(h5_path: str | Path, label: str = "fairplay", split: str | None = None) -> pd.DataFrame:
    """Parse one FAIR-Play split file, e.g. ``splits/split1/train.h5``.

    The file holds a dataset ``audio`` of wav paths on the authors' machine
    (``/.../binaural_audios/000001.wav``); only the file name is kept (``audio_name``), and the clip id
    is its stem (``000001``, also the name of the video in the FAIR-Play archive). ``split`` defaults
    to the file's stem (``train``/``val``/``test``); ``fold`` is N of a parent directory ``splitN``
    (or -1). FAIR-Play has no classes: every row gets ``label``.

    Requires ``h5py`` (``pip install 'avsep[real]'``); it is imported only here.

    Raises:
        MetadataError: not an HDF5 file, no ``audio`` dataset, an entry that is not a ``.wav`` path
            with a safe file name, or an unknown split.
        ImportError: h5py is not installed.
    """
    path = Path(h5_path)
    split = path.stem if split is None else split
    if split not in FAIRPLAY_SPLITS:
        raise MetadataError(path, "file name", f"split must be one of {list(FAIRPLAY_SPLITS)}, not {split!r}")
    label = check_label(label, path, "label argument")
    m = _FOLD_DIR.match(path.parent.name)
    fold = int(m.group(1)) if m else -1
    rows = [
        {"id": name[: -len(".wav")], "label": label, "split": split, "fold": fold, "audio_name": name}
        for name in _fairplay_audio_names(path)
    ]
    return rows_frame(drop_duplicates(rows, path), FAIRPLAY_COLUMNS)


def _fairplay_audio_names(path: Path) -> list[str]:
    """File names of the ``audio`` dataset's entries, validated."""
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("parsing FAIR-Play splits needs h5py: pip install 'avsep[real]'") from e
    if not path.is_file():
        raise MetadataError(path, "file", "does not exist")
    try:
        with h5py.File(path, "r") as f:
            if "audio" not in f:
                raise MetadataError(path, "dataset 'audio'", f"missing (datasets: {sorted(f.keys())})")
            ds = f["audio"]
            if not isinstance(ds, h5py.Dataset):
                raise MetadataError(path, "dataset 'audio'", "is a group, not a dataset")
            values = ds[()]
    except OSError as e:
        raise MetadataError(path, "file", f"not a readable HDF5 file ({e})") from None
    ndim = getattr(values, "ndim", 0)
    if ndim > 2 or (ndim == 2 and values.shape[1] != 1):
        raise MetadataError(path, "dataset 'audio'", f"expected one path per row, got shape {values.shape}")
    flat = values.reshape(-1) if ndim else [values.item() if hasattr(values, "item") else values]
    return [_wav_name(v, path, f"audio[{i}]") for i, v in enumerate(flat)]


def _wav_name(value: object, path: Path, where: str) -> str:
    """The file name of one ``audio`` entry (a path on the authors' machine)."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise MetadataError(path, where, "entry is not UTF-8") from None
    if not isinstance(value, str):
        raise MetadataError(path, where, f"expected a path string, got {type(value).__name__}")
    name = re.split(r"[/\\]", value.strip())[-1]
    if not _WAV_NAME.match(name):
        raise MetadataError(path, where, f"entry {value!r} is not a .wav path with a safe file name")
    return name
