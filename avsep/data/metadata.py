"""Parsers of the real datasets' public metadata files into a uniform clip table.

Every parser returns a :class:`pandas.DataFrame` with one row per clip and at least the columns
``id, label, split`` (see :data:`META_COLUMNS`); it is the input of
:func:`avsep.data.download.download_dataset`.

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
  guitar"``, ``"vehicle horn, car horn, honking"``); use :func:`label_slug` to put a label in a path.
* The same clip id listed twice: the first occurrence (in file order; for MUSIC in sorted label order)
  is kept and a :class:`MetadataWarning` names the dropped duplicates.
"""

from __future__ import annotations

import csv
import json
import math
import re
import unicodedata
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from avsep.seeding import rng

#: Columns every parser's output has.
META_COLUMNS = ("id", "label", "split")
#: A YouTube video id: 11 characters of the URL-safe base64 alphabet (may start with ``-``).
YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
#: A clip id usable as a file name (``videos/{id}.mp4``): no separators, dots or spaces.
CLIP_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: FAIR-Play audio file names (``000001.wav``).
_WAV_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\.wav$")
_FOLD_DIR = re.compile(r"^split(\d+)$")
MAX_LABEL_LENGTH = 100
VGGSOUND_SPLITS = ("train", "test")
FAIRPLAY_SPLITS = ("train", "val", "test")
_VGG_HEADER = ("youtube_id", "start_seconds", "label", "split")

InvalidIds = Literal["raise", "keep"]


class MetadataError(ValueError):
    """A metadata file is malformed. The message names the file, where in it, and why."""

    def __init__(self, path: str | Path, where: str, reason: str) -> None:
        super().__init__(f"{path}: {where}: {reason}")
        self.path = Path(path)
        self.where = where
        self.reason = reason


class MetadataWarning(UserWarning):
    """Something in a metadata file was dropped (duplicates); the message says what."""


# --------------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------------


def is_youtube_id(value: object) -> bool:
    """True if ``value`` is a syntactically valid YouTube video id."""
    return isinstance(value, str) and YOUTUBE_ID.match(value) is not None


def is_clip_id(value: object) -> bool:
    """True if ``value`` can be used as a clip id and file name."""
    return isinstance(value, str) and CLIP_ID.match(value) is not None


def normalise_label(label: str) -> str:
    """NFC-normalise ``label``, strip it and collapse inner whitespace runs to one space."""
    return " ".join(unicodedata.normalize("NFC", label).split())


def label_problem(label: str) -> str | None:
    """Why the (normalised) ``label`` is not acceptable, or None if it is."""
    if not label:
        return "empty label"
    if len(label) > MAX_LABEL_LENGTH:
        return f"label longer than {MAX_LABEL_LENGTH} characters"
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in label):
        return "label contains control or unassigned characters"
    if "/" in label or "\\" in label:
        return "label contains a path separator"
    if ".." in label:
        return "label contains '..'"
    if label[0] in "-.":
        return f"label starts with {label[0]!r}"
    return None


def check_label(label: object, path: Path, where: str) -> str:
    """The normalised label, or :class:`MetadataError` if it is not a string or not acceptable."""
    if not isinstance(label, str):
        raise MetadataError(path, where, f"label must be a string, not {type(label).__name__}")
    norm = normalise_label(label)
    problem = label_problem(norm)
    if problem:
        raise MetadataError(path, where, f"{problem}: {label!r}")
    return norm


def label_slug(label: str) -> str:
    """A path-safe form of a label: runs of characters outside ``[A-Za-z0-9_-]`` become ``_``.

    >>> label_slug("vehicle horn, car horn, honking")
    'vehicle_horn_car_horn_honking'
    """
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", normalise_label(label)).strip("_")
    slug = slug.lstrip("-")
    return slug or "label"


def _check_youtube_id(value: object, path: Path, where: str, invalid_ids: InvalidIds) -> str:
    """Return ``value`` as an id; raise for an invalid one unless ``invalid_ids == "keep"``."""
    if not isinstance(value, str):
        raise MetadataError(path, where, f"YouTube id must be a string, not {type(value).__name__}")
    if not is_youtube_id(value) and invalid_ids == "raise":
        raise MetadataError(path, where, f"invalid YouTube id {value!r} (must match {YOUTUBE_ID.pattern})")
    return value


def _check_invalid_ids_arg(invalid_ids: str) -> None:
    if invalid_ids not in ("raise", "keep"):
        raise ValueError(f"invalid_ids must be 'raise' or 'keep', not {invalid_ids!r}")


def _drop_duplicates(rows: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    """Keep the first row of every id; warn (naming the file and ids) if any were dropped."""
    seen: set[str] = set()
    kept, dropped = [], []
    for row in rows:
        if row["id"] in seen:
            dropped.append(row["id"])
            continue
        seen.add(row["id"])
        kept.append(row)
    if dropped:
        shown = ", ".join(sorted(set(dropped))[:10])
        warnings.warn(
            f"{path}: {len(dropped)} duplicate clip id(s) dropped (first occurrence kept): {shown}",
            MetadataWarning,
            stacklevel=3,
        )
    return kept


def _frame(rows: Iterable[dict[str, Any]], columns: tuple[str, ...]) -> pd.DataFrame:
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
    _check_invalid_ids_arg(invalid_ids)
    if not 0.0 <= float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), not {test_fraction}")
    path = Path(path)
    videos = _music_videos(_load_json(path), path)
    rows: list[dict[str, Any]] = []
    for raw_label in sorted(videos):
        label = check_label(raw_label, path, f"key videos[{raw_label!r}]")
        ids = _music_ids(videos[raw_label], path, raw_label, invalid_ids)
        rows.extend({"id": v, "youtube_id": v, "label": label} for v in ids)
    rows = _drop_duplicates(rows, path)
    _assign_music_split(rows, split_seed, float(test_fraction))
    return _frame(rows, MUSIC_COLUMNS)


def _load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise MetadataError(path, "file", f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise MetadataError(path, f"line {e.lineno} column {e.colno}", f"invalid JSON: {e.msg}") from None


def _music_videos(obj: Any, path: Path) -> dict[str, Any]:
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
    ids = [_check_youtube_id(v, path, f"key videos[{label!r}][{i}]", invalid_ids) for i, v in enumerate(value)]
    return sorted(set(ids))


def _assign_music_split(rows: list[dict[str, Any]], seed: int, test_fraction: float) -> None:
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
    _check_invalid_ids_arg(invalid_ids)
    if not clip_seconds > 0:
        raise ValueError(f"clip_seconds must be positive, not {clip_seconds}")
    path = Path(path)
    rows = [_vggsound_row(fields, path, f"line {line}", clip_seconds, invalid_ids) for line, fields in _csv_rows(path)]
    return _frame(_drop_duplicates(rows, path), VGGSOUND_COLUMNS)


def _csv_rows(path: Path) -> Iterable[tuple[int, list[str]]]:
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


def _vggsound_row(
    fields: list[str], path: Path, where: str, clip_seconds: float, invalid_ids: InvalidIds
) -> dict[str, Any]:
    if len(fields) != 4:
        raise MetadataError(
            path, where, f"expected 4 fields (youtube_id, start_seconds, label, split), got {len(fields)}"
        )
    ytid, start_text, label, split = fields
    ytid = _check_youtube_id(ytid, path, where, invalid_ids)
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
    return _frame(_drop_duplicates(rows, path), FAIRPLAY_COLUMNS)


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


# --------------------------------------------------------------------------------------------------
# Clip tables: every entry of a metadata file becomes a row (the input of the download stage)
# --------------------------------------------------------------------------------------------------

#: Leading columns of a clip table; ``status`` is ``ok`` for an accepted entry and ``failed`` for one
#: rejected here (never fetched), with a short ``reason`` and the full message in ``error``.
CLIP_TABLE_COLUMNS = ("id", "status", "reason", "error", "label", "split")
REASON_INVALID_ID = "invalid id"
REASON_MALFORMED_ENTRY = "malformed entry"
REASON_INVALID_LABEL = "invalid label"
LOCAL_HEADER = ("id", "label", "split", "path")
LOCAL_SPLITS = ("train", "val", "test")


def _accepted(**row: Any) -> dict[str, Any]:
    return {"status": "ok", "reason": "", "error": "", **row}


def _rejected(rid: str, reason: str, error: str, label: str = "", **row: Any) -> dict[str, Any]:
    return {"id": rid, "status": "failed", "reason": reason, "error": error, "label": label, "split": "", **row}


def music_clip_table(
    paths: Iterable[str | Path], split_seed: int = 0, test_fraction: float = 0.0
) -> pd.DataFrame:
    """Clips of MUSIC-format jsons (``MUSIC_solo_videos.json``, ``MUSIC_duet_videos.json``, ``MUSIC21_...``).

    A file whose structure is wrong (not JSON, not ``{"videos": {...}}``, unknown top-level keys) raises
    :class:`MetadataError`: nothing in it can be trusted. A problem of one entry only rejects that entry,
    which becomes a ``failed`` row (never fetched) with one of these reasons:

    * ``invalid id``: a string that is not a YouTube id (``../../etc/x``, ``-oProxyCommand=...``);
    * ``malformed entry``: not a string (an object with its own fields, ``null``, a number), or a label
      whose value is not a list of ids (one row for the label);
    * ``invalid label``: a label that could escape a path (every entry under it).

    Rejected rows get an id naming where they are (``MUSIC_solo_videos.json:videos['violin'][3]``)
    unless the entry is a string. The same id listed twice keeps its first occurrence (files in the
    given order) with a :class:`MetadataWarning`.

    Split (HFRA's MUSIC protocol: test solos only): a label naming several instruments
    (``"flute violin"``) is a duet and all its clips are ``train``; each solo label gets the seeded
    per-label split of :func:`parse_music_json` over its accepted ids.

    Returns:
        columns :data:`CLIP_TABLE_COLUMNS` + ``youtube_id, kind, source_file``, sorted by id.
    """
    if not 0.0 <= float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), not {test_fraction}")
    files = [Path(p) for p in paths]
    rows = [row for path in files for row in _music_file_rows(path)]
    # one row per id: accepted entries first (a valid copy wins over a rejected one), then file order
    kept = _drop_duplicates(sorted(rows, key=lambda r: r["status"] != "ok"), Path(", ".join(map(str, files))))
    ok = [r for r in kept if r["status"] == "ok"]
    _assign_music_split([r for r in ok if r["kind"] == "solo"], split_seed, float(test_fraction))
    for r in ok:
        if r["kind"] == "duet":
            r["split"] = "train"
    bad = [r for r in kept if r["status"] != "ok"]
    columns = (*CLIP_TABLE_COLUMNS, "youtube_id", "kind", "source_file")
    return _frame(ok + bad, columns).sort_values("id", kind="stable").reset_index(drop=True)


def _music_file_rows(path: Path) -> list[dict[str, Any]]:
    videos = _music_videos(_load_json(path), path)
    rows: list[dict[str, Any]] = []
    for raw_label in sorted(videos):
        where = f"videos[{raw_label!r}]"
        value = videos[raw_label]
        try:
            label = check_label(raw_label, path, f"key {where}")
        except MetadataError as e:
            label, label_error = "", e
        else:
            label_error = None
        if not isinstance(value, list):
            msg = f"{path}: key {where}: expected a list of ids, got {type(value).__name__}"
            rows.append(_rejected(f"{path.name}:{where}", REASON_MALFORMED_ENTRY, msg, label, source_file=path.name))
            continue
        kind = "duet" if label and " " in label else "solo"
        for i, v in enumerate(value):
            loc = f"{path.name}:{where}[{i}]"
            common = {"youtube_id": v if isinstance(v, str) else "", "kind": kind, "source_file": path.name}
            if not isinstance(v, str):
                msg = f"{path}: key {where}[{i}]: expected a YouTube id string, got {json.dumps(v)[:100]}"
                rows.append(_rejected(loc, REASON_MALFORMED_ENTRY, msg, label, **common))
            elif label_error is not None:
                rows.append(_rejected(v, REASON_INVALID_LABEL, str(label_error), "", **common))
            elif not is_youtube_id(v):
                msg = f"{path}: key {where}[{i}]: invalid YouTube id {v!r} (must match {YOUTUBE_ID.pattern})"
                rows.append(_rejected(v, REASON_INVALID_ID, msg, label, **common))
            else:
                rows.append(_accepted(id=v, label=label, split="", **common))
    return rows


def vggsound_clip_table(path: str | Path, clip_seconds: float = 10.0) -> pd.DataFrame:
    """Clips of ``vggsound.csv``, every row a clip; a malformed row is a ``failed`` row, not an error.

    Accepted rows are those of :func:`parse_vggsound_csv`. A row with too few or too many fields, a bad
    start or split gets reason ``malformed entry``; an invalid YouTube id ``invalid id``; a label that
    could escape a path ``invalid label``. Rejected rows have the id ``vggsound.csv:line N``. A file that
    is not UTF-8 or has broken quoting still raises :class:`MetadataError`.

    Returns:
        columns :data:`CLIP_TABLE_COLUMNS` + ``youtube_id, start, end``, sorted by id.
    """
    if not clip_seconds > 0:
        raise ValueError(f"clip_seconds must be positive, not {clip_seconds}")
    path = Path(path)
    rows: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    for line, fields in _csv_rows(path):
        where = f"line {line}"
        try:
            row = _vggsound_row(fields, path, where, clip_seconds, "raise")
        except MetadataError as e:
            if len(fields) != 4:
                reason = REASON_MALFORMED_ENTRY
            elif not is_youtube_id(fields[0]):
                reason = REASON_INVALID_ID
            elif label_problem(normalise_label(fields[2])):
                reason = REASON_INVALID_LABEL
            else:
                reason = REASON_MALFORMED_ENTRY
            bad.append(_rejected(f"{path.name}:{where}", reason, str(e), youtube_id="", start=None, end=None))
            continue
        rows.append(_accepted(**row))
    rows = _drop_duplicates(rows, path)
    columns = (*CLIP_TABLE_COLUMNS, "youtube_id", "start", "end")
    return _frame(rows + bad, columns).sort_values("id", kind="stable").reset_index(drop=True)


def local_clip_table(path: str | Path, base: str | Path | None = None) -> pd.DataFrame:
    """Clips of your own videos: a CSV with the header ``id,label,split,path`` (in any column order).

    ``path`` is a video file, absolute or relative to ``base`` (default: the CSV's folder); it is
    stored absolute. Ids must match ``^[A-Za-z0-9_-]{1,64}$`` (they become file names), splits are
    ``train``, ``val`` or ``test``. A bad row is a ``failed`` row (``invalid id``, ``invalid label`` or
    ``malformed entry``); whether the file exists and plays is checked by the download stage.

    Returns:
        columns :data:`CLIP_TABLE_COLUMNS` + ``path``, sorted by id.
    """
    path = Path(path)
    base = Path(base) if base is not None else path.parent
    header: tuple[str, ...] | None = None
    rows: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    for line, fields in _csv_rows_raw(path):
        if header is None:
            header = tuple(f.lower() for f in fields)
            if sorted(header) != sorted(LOCAL_HEADER):
                raise MetadataError(path, "line 1", f"header must name the columns {list(LOCAL_HEADER)}, got {list(fields)}")
            continue
        where = f"line {line}"
        loc = f"{path.name}:{where}"
        if len(fields) != len(header):
            msg = f"{path}: {where}: expected {len(header)} fields, got {len(fields)}"
            bad.append(_rejected(loc, REASON_MALFORMED_ENTRY, msg, path=""))
            continue
        rec = dict(zip(header, fields, strict=True))
        if not is_clip_id(rec["id"]):
            msg = f"{path}: {where}: invalid clip id {rec['id']!r} (must match {CLIP_ID.pattern})"
            bad.append(_rejected(rec["id"] or loc, REASON_INVALID_ID, msg, path=""))
            continue
        try:
            label = check_label(rec["label"], path, where)
        except MetadataError as e:
            bad.append(_rejected(rec["id"], REASON_INVALID_LABEL, str(e), path=""))
            continue
        if rec["split"] not in LOCAL_SPLITS or not rec["path"]:
            why = "empty path" if rec["split"] in LOCAL_SPLITS else f"split must be one of {list(LOCAL_SPLITS)}"
            bad.append(_rejected(rec["id"], REASON_MALFORMED_ENTRY, f"{path}: {where}: {why}", label, path=""))
            continue
        video = Path(rec["path"]).expanduser()
        video = video if video.is_absolute() else (base / video)
        rows.append(_accepted(id=rec["id"], label=label, split=rec["split"], path=str(video.resolve())))
    if header is None:
        raise MetadataError(path, "file", "empty (expected the header id,label,split,path)")
    rows = _drop_duplicates(rows, path)
    return _frame(rows + bad, (*CLIP_TABLE_COLUMNS, "path")).sort_values("id", kind="stable").reset_index(drop=True)


def _csv_rows_raw(path: Path) -> Iterable[tuple[int, list[str]]]:
    """(line number, stripped fields) of every non-blank CSV row, header included."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh, strict=True)
            prev = 0
            for fields in reader:
                line, prev = prev + 1, reader.line_num
                fields = [f.strip() for f in fields]
                if any(fields):
                    yield line, fields
    except UnicodeDecodeError as e:
        raise MetadataError(path, "file", f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise MetadataError(path, "file", f"malformed CSV: {e}") from None
