"""Clip tables, the download stage's input: every entry of a metadata file becomes one row.

Unlike the strict parsers of :mod:`avsep.data.prepare.metadata`, a problem of one entry (invalid id,
malformed entry, invalid label) does not stop the run: the entry becomes a ``failed`` row with a short
``reason`` and the full message, which later stages carry through to the manifests untouched. Only a
file whose structure cannot be trusted raises :class:`avsep.data.prepare.metadata_checks.MetadataError`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from avsep.data.prepare.metadata import assign_music_split, csv_rows, load_json, music_videos, rows_frame, vggsound_row
from avsep.data.prepare.metadata_checks import (
    CLIP_ID,
    YOUTUBE_ID,
    MetadataError,
    check_label,
    is_clip_id,
    is_youtube_id,
    label_problem,
    normalise_label,
)

#: Leading columns of a clip table; ``status`` is ``ok`` for an accepted entry and ``failed`` for one
#: rejected here (never fetched), with a short ``reason`` and the full message in ``error``.
CLIP_TABLE_COLUMNS = ("id", "status", "reason", "error", "label", "split")
REASON_INVALID_ID = "invalid id"
REASON_MALFORMED_ENTRY = "malformed entry"
REASON_INVALID_LABEL = "invalid label"
REASON_DUPLICATE_ID = "duplicate id"
LOCAL_HEADER = ("id", "label", "split", "path")
LOCAL_SPLITS = ("train", "val", "test")


def _accepted(**row: Any) -> dict[str, Any]:
    return {"status": "ok", "reason": "", "error": "", **row}


def _rejected(rid: str, reason: str, error: str, label: str = "", **row: Any) -> dict[str, Any]:
    return {"id": rid, "status": "failed", "reason": reason, "error": error, "label": label, "split": "", **row}


def _unique_ids(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every id once: a row whose id an earlier row has becomes a ``failed`` row named by where it is.

    Rows carry their place in the file under ``_where`` (``local.csv:line 7``); an accepted repeat gets the
    reason ``duplicate id`` and an error naming both places, an already rejected one keeps its reason. The
    first occurrence is kept, so nothing disappears without a row saying why.
    """
    first: dict[str, str] = {}
    out = []
    for r in rows:
        where = r.pop("_where", r["id"])
        if r["id"] not in first:
            first[r["id"]] = where
            out.append(r)
        elif r["status"] == "ok":
            msg = f"{where}: id {r['id']!r} is listed again (first at {first[r['id']]}); the first is kept"
            out.append({**r, "id": where, "status": "failed", "reason": REASON_DUPLICATE_ID, "error": msg, "split": ""})
        else:
            out.append({**r, "id": where})
    return out


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
    given order); the repeat is a ``failed`` row with reason ``duplicate id``, named by where it is.

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
    kept = _unique_ids(sorted(rows, key=lambda r: r["status"] != "ok"))
    ok = [r for r in kept if r["status"] == "ok"]
    assign_music_split([r for r in ok if r["kind"] == "solo"], split_seed, float(test_fraction))
    for r in ok:
        if r["kind"] == "duet":
            r["split"] = "train"
    bad = [r for r in kept if r["status"] != "ok"]
    columns = (*CLIP_TABLE_COLUMNS, "youtube_id", "kind", "source_file")
    return rows_frame(ok + bad, columns).sort_values("id", kind="stable").reset_index(drop=True)


def _music_file_rows(path: Path) -> list[dict[str, Any]]:
    videos = music_videos(load_json(path), path)
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
                rows.append(_rejected(v, REASON_INVALID_LABEL, str(label_error), "", _where=loc, **common))
            elif not is_youtube_id(v):
                msg = f"{path}: key {where}[{i}]: invalid YouTube id {v!r} (must match {YOUTUBE_ID.pattern})"
                rows.append(_rejected(v, REASON_INVALID_ID, msg, label, _where=loc, **common))
            else:
                rows.append(_accepted(id=v, label=label, split="", _where=loc, **common))
    return rows


def vggsound_clip_table(path: str | Path, clip_seconds: float = 10.0) -> pd.DataFrame:
    """Clips of ``vggsound.csv``, every row a clip; a malformed row is a ``failed`` row, not an error.

    Accepted rows are those of :func:`parse_vggsound_csv`. A row with too few or too many fields, a bad
    start or split gets reason ``malformed entry``; an invalid YouTube id ``invalid id``; a label that
    could escape a path ``invalid label``; a clip listed again ``duplicate id``. Rejected rows have the id
    ``vggsound.csv:line N``. A file that
    is not UTF-8 or has broken quoting still raises :class:`MetadataError`.

    Returns:
        columns :data:`CLIP_TABLE_COLUMNS` + ``youtube_id, start, end``, sorted by id.
    """
    if not clip_seconds > 0:
        raise ValueError(f"clip_seconds must be positive, not {clip_seconds}")
    path = Path(path)
    rows: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    for line, fields in csv_rows(path):
        where = f"line {line}"
        try:
            row = vggsound_row(fields, path, where, clip_seconds, "raise")
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
        rows.append(_accepted(**row, _where=f"{path.name}:{where}"))
    rows = _unique_ids(rows)
    columns = (*CLIP_TABLE_COLUMNS, "youtube_id", "start", "end")
    return rows_frame(rows + bad, columns).sort_values("id", kind="stable").reset_index(drop=True)


def local_clip_table(path: str | Path, base: str | Path | None = None) -> pd.DataFrame:
    """Clips of your own videos: a CSV with the header ``id,label,split,path`` (in any column order).

    ``path`` is a video file, absolute or relative to ``base`` (default: the CSV's folder); it is
    stored absolute. Ids must match ``^[A-Za-z0-9_-]{1,64}$`` (they become file names), splits are
    ``train``, ``val`` or ``test``. A bad row is a ``failed`` row (``invalid id``, ``invalid label``,
    ``malformed entry``, or ``duplicate id`` for an id already listed: the row gets the id ``local.csv:line N``);
    whether the file exists and plays is checked by the download stage.

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
        rows.append(_accepted(id=rec["id"], label=label, split=rec["split"], path=str(video.resolve()), _where=loc))
    if header is None:
        raise MetadataError(path, "file", "empty (expected the header id,label,split,path)")
    rows = _unique_ids(rows)
    return rows_frame(rows + bad, (*CLIP_TABLE_COLUMNS, "path")).sort_values("id", kind="stable").reset_index(drop=True)


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
