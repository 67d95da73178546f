"""Validation of metadata entries: YouTube and clip ids, labels, duplicates, and the errors they raise.

These are the rules every metadata reader applies (see the validation policy in
:mod:`avsep.data.prepare.metadata`): what a valid id or label is, how a label is normalised and made
path-safe, the :class:`MetadataError` that names the file, row and reason, and the first-occurrence-wins
handling of duplicate clip ids (:class:`MetadataWarning`).
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from pathlib import Path
from typing import Any, Literal

#: A YouTube video id: 11 characters of the URL-safe base64 alphabet (may start with ``-``).
YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
#: A clip id usable as a file name (``videos/{id}.mp4``): no separators, dots or spaces.
CLIP_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_LABEL_LENGTH = 100

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


def check_youtube_id(value: object, path: Path, where: str, invalid_ids: InvalidIds) -> str:
    """Return ``value`` as an id; raise for an invalid one unless ``invalid_ids == "keep"``."""
    if not isinstance(value, str):
        raise MetadataError(path, where, f"YouTube id must be a string, not {type(value).__name__}")
    if not is_youtube_id(value) and invalid_ids == "raise":
        raise MetadataError(path, where, f"invalid YouTube id {value!r} (must match {YOUTUBE_ID.pattern})")
    return value


def check_invalid_ids_arg(invalid_ids: str) -> None:
    if invalid_ids not in ("raise", "keep"):
        raise ValueError(f"invalid_ids must be 'raise' or 'keep', not {invalid_ids!r}")


def drop_duplicates(rows: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
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
