"""Pre-train a small open_clip CLIP on the synthetic pre-training clips (image-caption pairs).

The model is open_clip's own ``CLIP`` class built from a small config of the ViT-B-32 family shipped in
``avsep/encoders/configs/`` (default :data:`MODEL_NAME`: a 64-px ViT, patch 8, width 128, 3 layers; a
2-layer, 128-wide text transformer over open_clip's BPE tokens, context 16; ``embed_dim`` 512 because the
separators' Linear layers take 512-d CLIP vectors). It trains with open_clip's ``ClipLoss`` (symmetric
InfoNCE with the learned, clamped logit scale) on frames of the ``train`` clips, each paired with a random
caption template of its class; a batch holds one frame of every class (:func:`~avsep.encoders.pretraining.class_batches`).
Frames go through the model's own evaluation transform (resize to 64 px, centre crop, CLIP mean/std), the one
:func:`avsep.encoders.clip.load_clip` applies, so training and the caches see the same pixels. The token
embedding table (49,408 BPE tokens, of which the captions use a few dozen) gets sparse gradients and a lazy
Adam (``SparseAdam``) on the rows a batch uses; a dense AdamW step over the whole table would cost 40 % of a
step.

Seeded and deterministic on CPU (same weights bit for bit on a rerun with the same thread count). Writes a
``.safetensors`` file (atomically) whose metadata carries the provenance
``synth-pretrained(<dataset>, seed=N)``, so the caches label it ``synth-pretrained(...)@sha256:<12 hex>``,
and ``pretrain_log.csv`` (per epoch: loss, zero-shot accuracy on the ``heldout`` clips).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from avsep.core.io import atomic_path
from avsep.core.progress import progress
from avsep.core.seeding import rng
from avsep.encoders.captions import captions
from avsep.encoders.pretraining import class_batches, epoch_row, lr_at, provenance, split_clips, write_log

MODEL_NAME = "avsep-ViT-Ti-8-64"


@dataclass(frozen=True)
class ClipPretrainConfig:
    """How the CLIP encoder is pre-trained (``encoders.clip`` params)."""

    model: str = MODEL_NAME
    epochs: int = 3
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 30
    frame_stride: int = 1  # every frame of a training clip is a training image (the set has 2 per second)
    batch_classes: int | None = None  # classes per batch (one frame each); None: all
    seed: int = 0
    dataset: str = "synth-pretrain"


def split_transform(preprocess: Any) -> tuple[Callable[[Image.Image], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    """Split open_clip's evaluation ``Compose`` at its to-tensor step: (PIL -> uint8 (3, H, W), uint8 -> pixels).

    Composing the two gives exactly ``preprocess(image)`` (to-tensor is ``uint8 / 255``), while the frames
    are held as uint8 (a quarter of the memory)."""
    steps = list(preprocess.transforms)
    k = next(i for i, t in enumerate(steps) if "ToTensor" in type(t).__name__)
    pil, rest = steps[:k], steps[k + 1 :]

    def to_uint8(im: Image.Image) -> torch.Tensor:
        for t in pil:
            im = t(im)
        return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()

    def to_pixels(x: torch.Tensor) -> torch.Tensor:
        y = x.float().div(255)
        for t in rest:
            y = t(y)
        return y

    return to_uint8, to_pixels


def load_frames(manifest_path: str | Path, split: str, stride: int, to_uint8: Callable[[Image.Image], torch.Tensor],
                offset: int = 0) -> tuple[torch.Tensor, list[str], list[str]]:
    """uint8 (N, 3, H, W) frames ``offset, offset + stride, ...`` of every ok clip of ``split``, with labels and clip ids."""
    manifest_path = Path(manifest_path)
    clips = split_clips(manifest_path, split)
    images, labels, ids = [], [], []
    for r in clips.to_dict("records"):
        folder = manifest_path.parent / str(r["frames"])
        for f in range(offset, int(r["n_frames"]), max(1, stride)):
            with Image.open(folder / f"{f + 1:06d}.jpg") as im:
                images.append(to_uint8(im.convert("RGB")))
            labels.append(str(r["label"]))
            ids.append(str(r["id"]))
    return torch.stack(images), labels, ids


def build_model(model_name: str, seed: int) -> tuple[Any, Any]:
    """A seeded open_clip model of ``model_name`` and its evaluation transform."""
    from avsep.encoders.clip import _random_init

    model, _, preprocess = _random_init(model_name, seed)
    return model, preprocess


@torch.no_grad()
def heldout_accuracy(model: Any, tokenizer: Any, pixels: torch.Tensor, labels: list[str], classes: list[str],
                     batch: int = 256) -> float:
    """Zero-shot accuracy (image -> class prototype) on preprocessed pixels."""
    from avsep.encoders.zeroshot import clip_text_prototypes

    was = model.training
    model.eval()
    protos = torch.from_numpy(clip_text_prototypes(model, tokenizer, classes))
    emb = torch.cat([model.encode_image(pixels[i : i + batch], normalize=True) for i in range(0, len(pixels), batch)])
    pred = (emb @ protos.T).argmax(dim=1).numpy()
    idx = {c: i for i, c in enumerate(classes)}
    model.train(was)
    return float((pred == np.array([idx[lb] for lb in labels])).mean())


def pretrain_clip(manifest_path: str | Path, out_weights: str | Path, out_log: str | Path,
                  cfg: ClipPretrainConfig = ClipPretrainConfig(), bar: bool = True) -> dict[str, Any]:
    """Pre-train the CLIP model of ``cfg`` on the extracted pre-training set; write weights and log."""
    import open_clip
    from safetensors.torch import save_file

    from avsep.encoders.clip import PROVENANCE_KEY

    t0, c0 = time.time(), time.process_time()
    with torch.random.fork_rng(devices=[]):
        model, preprocess = build_model(cfg.model, cfg.seed)
        torch.manual_seed(cfg.seed)
        tokenizer = open_clip.get_tokenizer(cfg.model)
        to_uint8, to_pixels = split_transform(preprocess)
        frames, labels, _ = load_frames(manifest_path, "train", cfg.frame_stride, to_uint8)
        classes = sorted(set(labels))
        # held-out clips: every other frame a training clip would give, from the second one
        held_frames, held_labels, _ = load_frames(manifest_path, "heldout", 2 * cfg.frame_stride, to_uint8,
                                                  offset=cfg.frame_stride)
        held_pixels = to_pixels(held_frames)
        cap_sets = {c: captions(c, "image") for c in classes}
        cap_tokens = {c: tokenizer(cap_sets[c]) for c in classes}
        y = np.array([classes.index(lb) for lb in labels])
        k = len(classes) if cfg.batch_classes is None else min(cfg.batch_classes, len(classes))
        steps_per_epoch = max(1, len(frames) // k)
        total = cfg.epochs * steps_per_epoch
        # the token table gets sparse gradients (only the captions' rows) and a lazy Adam on those rows
        model.token_embedding.sparse = True
        table = model.token_embedding.weight
        params = [p for p in model.parameters() if p.requires_grad and p is not table]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        opts = [torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6),
                torch.optim.SparseAdam([table], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)]
        loss_fn = open_clip.ClipLoss()
        gen = rng(cfg.seed, "clip-pretrain", "batches")
        batches = class_batches(y, len(classes), total, gen, cfg.batch_classes)
        log: list[dict[str, Any]] = []
        pbar = progress(total=total, desc="pretrain clip", unit="step", disable=not bar)
        step = 0
        model.train()
        for epoch in range(cfg.epochs):
            losses = []
            for _ in range(steps_per_epoch):
                idx = next(batches)
                lbs = [labels[i] for i in idx]
                picks = [int(gen.integers(len(cap_sets[lb]))) for lb in lbs]
                text = torch.stack([cap_tokens[lb][j] for lb, j in zip(lbs, picks)])
                lr = lr_at(step, total, cfg.lr, cfg.warmup_steps)
                for opt in opts:
                    for g in opt.param_groups:
                        g["lr"] = lr
                    opt.zero_grad(set_to_none=True)
                img_f, txt_f, scale = model(to_pixels(frames[torch.from_numpy(idx)]), text)
                loss = loss_fn(img_f, txt_f, scale)
                loss.backward()
                for opt in opts:
                    opt.step()
                with torch.no_grad():
                    model.logit_scale.clamp_(0, np.log(100.0))
                losses.append(float(loss.detach()))
                step += 1
                pbar.update(1)
            acc = heldout_accuracy(model, tokenizer, held_pixels, held_labels, classes)
            log.append(epoch_row(epoch + 1, step, losses, acc, len(held_labels), len(classes), lr,
                                 model.logit_scale.exp().item(), t0, c0))
            pbar.set_postfix(loss=f"{np.mean(losses):.3f}", heldout=f"{acc:.3f}", refresh=False)
        pbar.close()
    model.token_embedding.sparse = False
    model.eval()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    label = provenance(cfg.dataset, cfg.seed)
    with atomic_path(out_weights) as tmp:
        # one metadata key only: safetensors writes several in a random order (the file's bytes would vary)
        save_file(state, str(tmp), metadata={PROVENANCE_KEY: label})
    write_log(log, out_log)
    return {"model": model, "classes": classes, "log": log, "provenance": label, "seconds": time.time() - t0,
            "cpu_seconds": time.process_time() - c0,
            "train_frames": len(frames)}
