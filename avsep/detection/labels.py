"""Class names: the Open Images V7 instrument classes and how a model's class names map to our labels.

OIV7 class names (of e.g. ``yolov8m-oiv7.pt``) are mapped to the dataset's labels by :func:`class_labels`
(:data:`LABEL_TO_OIV7`); a detector trained on the dataset has the labels themselves as classes.
:func:`detected_label` names the instrument of one detection in a dataset's vocabulary
(:func:`instrument_names`); for FAIR-Play, which ships no labels, that is the only label a clip has.
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


#: FAIR-Play's instrument types as the LAVSS paper lists them (section 4.1). FAIR-Play ships no labels (its
#: metadata label is the placeholder :data:`FAIRPLAY_PLACEHOLDER`), so a clip's instrument can only come from a
#: detector. **Ukulele and upright bass have no class of their own in Open Images V7, nor among the 15 Open
#: Images v4 classes of the Faster R-CNN that LAVSS uses** (rhgao/co-separation: Banjo, Cello, Drum, Guitar, Harp,
#: Harmonica, Oboe, Piano, Saxophone, Trombone, Trumpet, Violin, Flute, Accordion, Horn): a ukulele is found as
#: ``Guitar`` (labelled ``guitar``), an upright bass as whatever class fires (``Cello``, ``Violin`` or the
#: generic class), so no clip is ever labelled ``ukulele`` or ``upright_bass`` by :func:`detected_label`.
FAIRPLAY_INSTRUMENTS: tuple[str, ...] = (
    "banjo", "cello", "drum", "guitar", "harp", "piano", "trumpet", "ukulele", "upright_bass",
)  # fmt: skip
#: The label every FAIR-Play clip gets from its metadata (:func:`avsep.data.prepare.metadata.parse_fairplay_split`).
FAIRPLAY_PLACEHOLDER = "fairplay"
#: Instrument vocabularies of the sources whose metadata has no instrument labels (``datasets.<name>.source``).
SOURCE_INSTRUMENTS: dict[str, tuple[str, ...]] = {"fairplay": FAIRPLAY_INSTRUMENTS}


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


def instrument_names(source: str, metadata_labels: Iterable[object]) -> tuple[str, ...]:
    """The instrument names a detection of a dataset is labelled with (:func:`detected_label`).

    The instruments named by its metadata labels (a synthetic dataset's classes, MUSIC's instruments), plus, for a
    source without labels (FAIR-Play: :data:`SOURCE_INSTRUMENTS`), its instrument types; the FAIR-Play
    placeholder label is not an instrument.
    """
    names = {t for lab in metadata_labels for t in clip_labels(lab)} - {FAIRPLAY_PLACEHOLDER}
    return tuple(sorted(names | set(SOURCE_INSTRUMENTS.get(source, ()))))


def detected_label(class_name: str, vocabulary: Iterable[str]) -> str:
    """The instrument a detection of class ``class_name`` is labelled with, in the dataset's ``vocabulary``.

    * a class named like a vocabulary label is that label (a detector trained on the dataset: its classes ARE
      the labels; OIV7 ``Cello`` -> ``cello``, ``Guitar`` -> FAIR-Play's ``guitar``);
    * a specific OIV7 instrument class is the one vocabulary label it stands for (:func:`oiv7_class`;
      ``Guitar`` -> MUSIC's ``acoustic_guitar``), or, when several do, the one whose name contains the class
      name (``Guitar`` -> ``acoustic_guitar``, not ``ukulele``);
    * otherwise, and always for the generic ``Musical instrument`` (it cannot tell which of the labels without
      a class of their own it saw), the normalised class name itself (``violin``, ``musical_instrument``).
    """
    norm = normalise_name(class_name)
    vocab = {normalise_name(v): str(v) for v in vocabulary}
    if norm in vocab:
        return vocab[norm]
    cls = _OIV7_BY_NORM.get(norm)
    if cls is not None and cls != OIV7_GENERIC:
        cands = sorted(v for n, v in vocab.items() if oiv7_class(n) == cls)
        if len(cands) == 1:
            return cands[0]
        named = [v for v in cands if norm in normalise_name(v).split("_")]
        if len(named) == 1:
            return named[0]
    return norm
