"""Class names: the Open Images V7 instrument classes and how a model's class names map to our labels.

OIV7 class names (of e.g. ``yolov8m-oiv7.pt``) are mapped to the dataset's labels by :func:`class_labels`
(:data:`LABEL_TO_OIV7`); a detector trained on the dataset has the labels themselves as classes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

#: The instrument classes of Open Images V7 (the classes of the ``yolov8*-oiv7.pt`` models).
OIV7_INSTRUMENTS: tuple[str, ...] = (
    "Accordion", "Banjo", "Cello", "Drum", "Flute", "French horn", "Guitar", "Harp", "Piano", "Saxophone",
    "Trombone", "Trumpet", "Violin",
)  # fmt: skip
#: The generic OIV7 class; instruments without their own class (tuba, clarinet, xylophone, erhu, ...) map here.
OIV7_GENERIC = "Musical instrument"

#: Our instrument labels (MUSIC / MUSIC-21 / FAIR-Play names, normalised by :func:`normalise_name`) whose
#: OIV7 class is not simply their own name. Any other label maps to its own name if that is an OIV7
#: instrument class, else to :data:`OIV7_GENERIC`.
LABEL_TO_OIV7: dict[str, str] = {
    "acoustic_guitar": "Guitar",
    "electric_guitar": "Guitar",
    "electric_bass": "Guitar",
    "ukulele": "Guitar",
    "congas": "Drum",
    "drums": "Drum",
    "drum_kit": "Drum",
    "grand_piano": "Piano",
    "tuba": OIV7_GENERIC,
    "clarinet": OIV7_GENERIC,
    "xylophone": OIV7_GENERIC,
    "erhu": OIV7_GENERIC,
}


def normalise_name(name: str) -> str:
    """``"French horn"`` / ``"acoustic-guitar"`` / ``"Acoustic Guitar"`` -> ``"french_horn"`` / ``"acoustic_guitar"``."""
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


_OIV7_BY_NORM = {normalise_name(c): c for c in (*OIV7_INSTRUMENTS, OIV7_GENERIC)}


def oiv7_class(label: str) -> str:
    """The Open Images V7 class that detects objects of our ``label`` (the generic class if none)."""
    norm = normalise_name(label)
    if norm in LABEL_TO_OIV7:
        return LABEL_TO_OIV7[norm]
    return _OIV7_BY_NORM.get(norm, OIV7_GENERIC)


def class_labels(names: Mapping[int, str] | Sequence[str], labels: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """For each class name of a model, the dataset labels it stands for (empty: not an instrument of ours).

    A class named like a label (a detector trained on the dataset) stands for that label. An OIV7
    instrument class stands for every label whose :func:`oiv7_class` it is; the generic
    ``Musical instrument`` also for the labels without their own class. Other classes (``Person``, ...)
    stand for nothing.
    """
    values = list(names.values()) if isinstance(names, Mapping) else list(names)
    by_norm: dict[str, list[str]] = {}
    for lab in sorted(set(labels)):
        by_norm.setdefault(normalise_name(lab), []).append(lab)
    out: dict[str, tuple[str, ...]] = {}
    for name in values:
        norm = normalise_name(name)
        if norm in by_norm:
            out[name] = tuple(by_norm[norm])
        elif norm in _OIV7_BY_NORM:
            cls = _OIV7_BY_NORM[norm]
            out[name] = tuple(lab for labs in by_norm.values() for lab in labs if oiv7_class(lab) == cls)
            if cls == OIV7_GENERIC and not out[name]:
                out[name] = (OIV7_GENERIC,)  # still an instrument, even if no label of ours maps to it
            elif not out[name]:
                out[name] = (cls,)
        else:
            out[name] = ()
    return out


def clip_labels(label: object) -> list[str]:
    """The instruments named by a clip label: ``"violin"`` -> one, a MUSIC duet ``"flute violin"`` -> two."""
    if label is None or (isinstance(label, float) and math.isnan(label)):
        return []
    return [t for t in str(label).split() if t]
