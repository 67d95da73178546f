"""Captions of the synthetic classes for contrastive pre-training and zero-shot evaluation, and a word-level
tokenizer for the small CLAP text tower.

A class label becomes words (``acoustic_guitar`` -> ``acoustic guitar``); a caption is a template filled with
them. Images and sounds have their own templates, and musical instruments and sound events theirs ("a photo
of a cello being played", "the sound of rain"). Pre-training draws one template per pair; zero-shot
classification averages the text embeddings of all templates of a class (CLIP's prompt ensembling).

CLIP's text side uses open_clip's own BPE tokenizer (its vocabulary ships inside the package). CLAP's RoBERTa
tokenizer files come from the Hugging Face hub, so the small CLAP text tower reads :class:`WordTokenizer` ids
instead: one id per word of the templates and class names, RoBERTa's special-token ids (``<s>`` 0, ``<pad>``
1, ``</s>`` 2, ``<unk>`` 3), saved as ``vocab.json`` beside the model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from avsep.core.io import write_json
from avsep.data.prepare.instruments import INSTRUMENTS, get_instrument

IMAGE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "music": (
        "a photo of a {} being played",
        "a video frame showing a {}",
        "a picture of a {}",
        "a {} on screen",
        "a video of someone playing the {}",
    ),
    "sound": (
        "a photo of {}",
        "a video frame showing {}",
        "a picture of {}",
        "{} on screen",
        "a video of {}",
    ),
}
AUDIO_TEMPLATES: dict[str, tuple[str, ...]] = {
    "music": (
        "the sound of a {}",
        "a recording of a {} being played",
        "music played on a {}",
        "a {} can be heard",
        "someone playing the {}",
    ),
    "sound": (
        "the sound of {}",
        "a recording of {}",
        "an audio clip of {}",
        "{} can be heard",
        "the noise of {}",
    ),
}

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
BOS, PAD, EOS, UNK = range(4)


def label_words(label: str) -> str:
    """A class label as words: ``acoustic_guitar`` -> ``acoustic guitar``."""
    return label.replace("_", " ")


def templates(label: str, modality: str) -> tuple[str, ...]:
    """The caption templates of a class for ``modality`` ``image`` or ``audio`` (by the class's kind)."""
    table = {"image": IMAGE_TEMPLATES, "audio": AUDIO_TEMPLATES}[modality]
    kind = get_instrument(label).kind if label in INSTRUMENTS else "sound"
    return table.get(kind, table["sound"])


def captions(label: str, modality: str) -> list[str]:
    """Every caption of a class: its templates filled with its words."""
    return [t.format(label_words(label)) for t in templates(label, modality)]


class WordTokenizer:
    """Whitespace word-level tokenizer with a fixed vocabulary: ``<s> w1 ... wn </s> <pad> ...``."""

    def __init__(self, vocab: Sequence[str], max_length: int = 16) -> None:
        if tuple(vocab[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"vocabulary must start with {SPECIALS}")
        self.vocab = list(vocab)
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.max_length = int(max_length)

    @classmethod
    def from_captions(cls, texts: Iterable[str], max_length: int = 16) -> WordTokenizer:
        words = sorted({w for t in texts for w in t.lower().split()})
        return cls(list(SPECIALS) + words, max_length)

    @classmethod
    def for_classes(cls, labels: Iterable[str] | None = None, max_length: int = 16) -> WordTokenizer:
        """The vocabulary of every audio and image caption of ``labels`` (default: every registered class)."""
        labels = list(INSTRUMENTS) if labels is None else list(labels)
        return cls.from_captions([c for lb in labels for m in ("audio", "image") for c in captions(lb, m)], max_length)

    def __len__(self) -> int:
        return len(self.vocab)

    def __call__(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` (B, max_length) int64; raises if a caption is too long."""
        ids = torch.full((len(texts), self.max_length), PAD, dtype=torch.long)
        mask = torch.zeros((len(texts), self.max_length), dtype=torch.long)
        for i, t in enumerate(texts):
            toks = [BOS] + [self.ids.get(w, UNK) for w in t.lower().split()] + [EOS]
            if len(toks) > self.max_length:
                raise ValueError(f"caption {t!r} has {len(toks)} tokens, more than max_length={self.max_length}")
            ids[i, : len(toks)] = torch.tensor(toks)
            mask[i, : len(toks)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / "vocab.json"
        write_json({"vocab": self.vocab, "max_length": self.max_length}, path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> WordTokenizer:
        d = json.loads((Path(directory) / "vocab.json").read_text())
        return cls(d["vocab"], int(d["max_length"]))
