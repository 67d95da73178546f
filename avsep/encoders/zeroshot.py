"""Zero-shot classification of a dataset's clips by a CLIP or CLAP encoder: does it know the domain?

Each class gets a text prototype: the mean of the L2-normalised text embeddings of all its caption templates
(:mod:`avsep.encoders.captions`), renormalised (CLIP's prompt ensembling). An input is assigned the class
whose prototype has the highest cosine similarity with its embedding; chance is ``1 / classes``.

- CLIP (:func:`clip_zeroshot`): image -> text on the frames the CLIP cache embeds (``clip.fps`` frames of
  every clip of the split, :func:`avsep.encoders.cache.clip_frame_table`), scored per frame and per clip
  (the mean of a clip's frame embeddings);
- CLAP (:func:`clap_zeroshot`): audio -> text on each clip's centre crop of ``audio.clip_samples`` samples
  (the crop the CLAP cache and the test mixtures use), through the project's audio loader
  (:func:`avsep.encoders.clap.load_clap`); the text side is the same checkpoint's text tower
  (:func:`load_clap_text`).

Both work for pre-trained and random weights (random: a seeded initialisation of the same architecture, at
chance up to sampling noise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from avsep.core.io import read_manifest
from avsep.encoders.captions import WordTokenizer, captions


def _accuracy(emb: np.ndarray, protos: np.ndarray, labels: Sequence[str], classes: Sequence[str]) -> tuple[float, np.ndarray]:
    pred = np.argmax(emb @ protos.T, axis=1)
    idx = {c: i for i, c in enumerate(classes)}
    truth = np.array([idx[str(lb)] for lb in labels])
    return float((pred == truth).mean()), pred


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


# --------------------------------------------------------------------------------------------------
# CLIP
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def clip_text_prototypes(model: Any, tokenizer: Any, classes: Sequence[str]) -> np.ndarray:
    """(C, 512) class prototypes of an open_clip model (image captions, templates averaged)."""
    device = next(model.parameters()).device
    out = []
    for c in classes:
        t = model.encode_text(tokenizer(captions(c, "image")).to(device), normalize=True).float().cpu().numpy()
        out.append(t.mean(axis=0))
    return _normalize(np.stack(out)).astype(np.float32)


def clip_zeroshot(encoder: Any, manifest_path: str | Path, split: str = "test", classes: Sequence[str] | None = None,
                  extract_fps: float = 8.0, clip_fps: float = 1.0, batch_size: int = 32) -> dict[str, Any]:
    """Zero-shot accuracy of a :class:`~avsep.encoders.clip.ClipEncoder` on the frames of ``split``."""
    import open_clip

    from avsep.encoders.cache import clip_frame_table
    from avsep.encoders.clip import register_configs

    register_configs()
    manifest_path = Path(manifest_path)
    m = read_manifest(manifest_path)
    classes = sorted(m.loc[m["status"] == "ok", "label"].astype(str).unique()) if classes is None else list(classes)
    table = clip_frame_table(m, split, extract_fps, clip_fps)
    if table.empty:
        raise ValueError(f"{manifest_path}: no ok clip in split {split!r}")
    folders = dict(zip(m["id"].astype(str), m["frames"].astype(str)))
    images = []
    for r in table.to_dict("records"):
        with Image.open(manifest_path.parent / folders[r["clip"]] / f"{r['frame'] + 1:06d}.jpg") as im:
            images.append(im.convert("RGB"))
    emb = encoder.embed_images(images, batch_size=batch_size)
    protos = clip_text_prototypes(encoder.model, open_clip.get_tokenizer(encoder.model_name), classes)
    acc, _ = _accuracy(emb, protos, table["label"], classes)
    per_clip = table.assign(row=np.arange(len(table))).groupby("clip", sort=True)
    clip_emb = _normalize(np.stack([emb[g["row"].to_numpy()].mean(axis=0) for _, g in per_clip]))
    clip_labels = [g["label"].iloc[0] for _, g in per_clip]
    clip_acc, _ = _accuracy(clip_emb, protos, clip_labels, classes)
    return {"encoder": "CLIP", "architecture": encoder.model_name, "weights": encoder.weights, "split": split,
            "accuracy": acc, "n": len(table), "unit": "frame", "clip_accuracy": clip_acc, "n_clips": len(clip_labels),
            "classes": len(classes), "chance": 1.0 / len(classes)}


# --------------------------------------------------------------------------------------------------
# CLAP
# --------------------------------------------------------------------------------------------------


@dataclass
class ClapText:
    """The text tower of a CLAP checkpoint (a ``ClapModel``) with its word-level tokenizer."""

    model: Any
    tokenizer: WordTokenizer

    @torch.no_grad()
    def prototypes(self, classes: Sequence[str]) -> np.ndarray:
        """(C, 512) class prototypes (audio captions, templates averaged)."""
        out = []
        for c in classes:
            t = self.model.get_text_features(**self.tokenizer(captions(c, "audio")))
            out.append(torch.nn.functional.normalize(t.float(), dim=-1).mean(dim=0).numpy())
        return _normalize(np.stack(out)).astype(np.float32)


def load_clap_text(weights: str, seed: int = 0, config: Any = None, tokenizer: WordTokenizer | None = None) -> ClapText:
    """The text side for zero-shot CLAP: a pre-trained directory's ``ClapModel`` and ``vocab.json``, or for
    ``random`` a seeded ``ClapModel`` of ``config`` (default: :func:`avsep.encoders.pretrain_clap.small_clap_config`)
    with ``tokenizer`` (default: the words of every class's captions; pass a pre-trained one's with its config)."""
    from transformers import ClapModel

    if weights == "random":
        from avsep.encoders.pretrain_clap import small_clap_config

        tok = tokenizer if tokenizer is not None else WordTokenizer.for_classes()
        cfg = config if config is not None else small_clap_config(len(tok))
        if len(tok) > cfg.text_config.vocab_size:
            raise ValueError(f"random CLAP text tower: {len(tok)} words do not fit its vocabulary of "
                             f"{cfg.text_config.vocab_size} (pass the tokenizer that goes with the config)")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)  # not the audio branch's stream
            model = ClapModel(cfg)
        return ClapText(model.eval(), tok)
    path = Path(weights)
    if not (path / "vocab.json").is_file():
        raise FileNotFoundError(f"{path}: no vocab.json: zero-shot CLAP needs a checkpoint with its word tokenizer "
                                "(one written by pretrain_clap)")
    model = ClapModel.from_pretrained(path, local_files_only=True).eval()
    return ClapText(model, WordTokenizer.load(path))


def clap_zeroshot(encoder: Any, text: ClapText, manifest_path: str | Path, sample_rate: int, clip_samples: int,
                  split: str = "test", classes: Sequence[str] | None = None, batch_size: int = 8) -> dict[str, Any]:
    """Zero-shot accuracy of a :class:`~avsep.encoders.clap.ClapEncoder` on the centre crops of ``split``."""
    from avsep.data.mixtures import usable_clips
    from avsep.data.store import ClipStore, read_clips

    m = read_clips(manifest_path, sample_rate)
    classes = sorted(m.loc[m["status"] == "ok", "label"].astype(str).unique()) if classes is None else list(classes)
    clips = usable_clips(m, split, clip_samples)
    if clips.empty:
        raise ValueError(f"{manifest_path}: no ok clip of split {split!r} has {clip_samples} samples")
    channels = int(clips["channels"].iloc[0]) if "channels" in clips.columns else 1
    store = ClipStore(manifest_path, sample_rate, channels)
    starts = (clips["n_samples"].astype(int) - clip_samples) // 2
    waves = [store.audio(c, int(s), clip_samples)[0] for c, s in zip(clips["id"].astype(str), starts)]
    emb = encoder.embed(waves, sample_rate, batch_size=batch_size)
    acc, _ = _accuracy(emb, text.prototypes(classes), clips["label"].astype(str), classes)
    return {"encoder": "CLAP", "architecture": architecture(encoder.model.config), "weights": encoder.weights,
            "split": split, "accuracy": acc, "n": len(clips), "unit": "clip", "clip_accuracy": acc,
            "n_clips": len(clips), "classes": len(classes), "chance": 1.0 / len(classes)}


def architecture(audio_config: Any) -> str:
    """A short name of a CLAP audio branch: ``HTSAT(d=96, depths=2-2-6-2, 64 mel, spec 256)``."""
    c = audio_config
    depths = "-".join(str(d) for d in c.depths)
    return f"HTSAT(d={c.patch_embeds_hidden_size}, depths={depths}, {c.num_mel_bins} mel, spec {c.spec_size})"
