"""Pre-train a small CLAP (transformers ``ClapModel``) on the synthetic pre-training clips (audio-caption pairs).

The architecture (:func:`small_clap_config`) is LAION CLAP's, shrunk: an HTSAT audio branch with 32 mel bins on
a 64 x 64 spectrogram image (``spec_size`` 64: 128 time frames folded twice), patch 4, window 4, three Swin
stages of width 32-64-128 and depths 1-2-1 (0.35 M parameters instead of 28 M), and a 2-layer, 64-wide RoBERTa
text tower over a word-level vocabulary (:class:`~avsep.encoders.captions.WordTokenizer`: RoBERTa's BPE files
come from the hub). Both project to 512-d, the size HFRA's alignment head targets.

The feature extractor is ``ClapFeatureExtractor`` at CLAP's 48 kHz, with a maximum length of the front-end's
clip (``audio.clip_samples``, rounded up to whole seconds) instead of 10 s, a hop chosen so that the clip
fills the 128 frames HTSAT takes, and mel bands up to the data's Nyquist frequency (the clips are extracted at
``audio.sample_rate``); it is saved beside the model, so :func:`avsep.encoders.clap.load_clap` featurises the
caches exactly as training's held-out check does.

Training: each batch holds one 3-s window of a ``train`` clip of every class (windows of the clip's whole log-mel
spectrogram at random frame offsets, computed once per clip) with a random caption template of its class;
the loss is ``ClapModel``'s own (symmetric InfoNCE over the text-audio similarities with the learned logit
scale). Seeded and deterministic on CPU. Writes a ``save_pretrained`` directory (model, feature extractor,
``vocab.json``; atomically) whose ``config.json`` names its provenance ``synth-pretrained(<dataset>, seed=N)``,
and ``pretrain_log.csv`` (per epoch: loss, zero-shot accuracy on the ``heldout`` clips' centre crops).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from avsep.core.io import atomic_dir, write_json
from avsep.core.progress import progress
from avsep.core.seeding import rng
from avsep.encoders.captions import WordTokenizer, captions
from avsep.encoders.clap import CLAP_RATE, resample
from avsep.encoders.pretraining import class_batches, epoch_row, lr_at, provenance, split_clips, write_log

#: HTSAT input: ``SPEC_SIZE * (SPEC_SIZE // MEL_BINS)`` time frames x ``MEL_BINS`` mel bands.
SPEC_SIZE = 64
MEL_BINS = 32


@dataclass(frozen=True)
class ClapPretrainConfig:
    """How the CLAP encoder is pre-trained (``encoders.clap`` params)."""

    epochs: int = 24
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 30
    width: int = 32  # HTSAT patch-embedding width (stage widths width, 2 width, 4 width)
    depths: tuple[int, ...] = (1, 2, 1)
    batch_classes: int | None = None
    seed: int = 0
    dataset: str = "synth-pretrain"


def small_clap_config(vocab_size: int, width: int = 32, depths: tuple[int, ...] = (1, 2, 1)) -> Any:
    """The ``ClapConfig`` of the small CLAP (see the module docstring)."""
    from transformers import ClapAudioConfig, ClapConfig, ClapTextConfig

    n = len(depths)
    audio = ClapAudioConfig(
        spec_size=SPEC_SIZE, num_mel_bins=MEL_BINS, window_size=4, patch_size=4, patch_stride=[4, 4],
        patch_embeds_hidden_size=width, depths=list(depths), num_attention_heads=[2 * 2**i for i in range(n)],
        hidden_size=width * 2 ** (n - 1), projection_dim=512, enable_fusion=False,
    )
    text = ClapTextConfig(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=128, max_position_embeddings=32, projection_dim=512)
    return ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=512)


def feature_extractor(clip_samples: int, sample_rate: int) -> Any:
    """``ClapFeatureExtractor`` at 48 kHz for clips of ``clip_samples`` at ``sample_rate`` (see the module docstring)."""
    from transformers import ClapFeatureExtractor

    seconds = max(1, math.ceil(clip_samples / sample_rate))
    frames = SPEC_SIZE * (SPEC_SIZE // MEL_BINS)
    hop = math.ceil(seconds * CLAP_RATE / (frames - 1))
    fft = 1 << max(10, (hop - 1).bit_length())
    return ClapFeatureExtractor(
        feature_size=MEL_BINS, sampling_rate=CLAP_RATE, hop_length=hop, max_length_s=seconds, fft_window_size=fft,
        frequency_min=0, frequency_max=min(14000, sample_rate // 2), truncation="rand_trunc", padding="repeatpad",
    )


def _mel(fe: Any, wave48k: np.ndarray) -> np.ndarray:
    """(T, mel) log-mel of a whole 48 kHz waveform, as ``fe`` computes it for a clip of exactly its length."""
    full = copy.deepcopy(fe)
    full.nb_max_samples = len(wave48k)
    out = full([wave48k], sampling_rate=CLAP_RATE, truncation="rand_trunc", padding="repeatpad", return_tensors="np")
    return np.asarray(out["input_features"][0, 0], dtype=np.float32)


def crop_features(fe: Any, waves: list[np.ndarray], sample_rate: int) -> torch.Tensor:
    """(B, 1, T, mel) features of crops at ``sample_rate``, exactly as :class:`~avsep.encoders.clap.ClapEncoder` makes them."""
    crops = [resample(w, sample_rate) for w in waves]
    return torch.as_tensor(fe(crops, sampling_rate=CLAP_RATE, truncation="rand_trunc", padding="repeatpad",
                              return_tensors="np")["input_features"])


def _read(path: Path) -> tuple[np.ndarray, int]:
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    return x[:, 0], int(sr)


@torch.no_grad()
def heldout_accuracy(model: Any, tok: WordTokenizer, feats: torch.Tensor, labels: list[str], classes: list[str]) -> float:
    from avsep.encoders.zeroshot import ClapText

    was = model.training
    model.eval()
    protos = torch.from_numpy(ClapText(model, tok).prototypes(classes))
    emb = torch.nn.functional.normalize(model.get_audio_features(input_features=feats), dim=-1)
    pred = (emb @ protos.T).argmax(dim=1).numpy()
    model.train(was)
    return float((pred == np.array([classes.index(lb) for lb in labels])).mean())


def pretrain_clap(manifest_path: str | Path, out_dir: str | Path, out_log: str | Path, clip_samples: int,
                  sample_rate: int, cfg: ClapPretrainConfig = ClapPretrainConfig(), bar: bool = True) -> dict[str, Any]:
    """Pre-train the small CLAP on the extracted pre-training set (clips read at ``sample_rate``, the front-end
    rate, cropped to ``clip_samples``); write the model directory and the log."""
    from transformers import ClapModel

    t0, c0 = time.time(), time.process_time()
    manifest_path = Path(manifest_path)
    fe = feature_extractor(clip_samples, sample_rate)
    train = split_clips(manifest_path, "train")
    held = split_clips(manifest_path, "heldout")
    classes = sorted(train["label"].astype(str).unique())
    tok = WordTokenizer.for_classes(classes)
    mels, labels = [], []
    for r in train.to_dict("records"):
        x, sr = _read(manifest_path.parent / str(r["audio"]))
        if sr != sample_rate:
            x = resample(x, sr, sample_rate)
        mels.append(torch.from_numpy(_mel(fe, resample(x, sample_rate))))
        labels.append(str(r["label"]))
    n_frames = int(crop_features(fe, [np.zeros(clip_samples, np.float32)], sample_rate).shape[2])
    short = [i for i, m in enumerate(mels) if m.shape[0] < n_frames]
    if short:
        raise ValueError(f"{manifest_path}: {len(short)} training clip(s) shorter than audio.clip_samples")
    held_waves, held_labels = [], []
    for r in held.to_dict("records"):
        x, sr = _read(manifest_path.parent / str(r["audio"]))
        if sr != sample_rate:
            x = resample(x, sr, sample_rate)
        s = (len(x) - clip_samples) // 2
        if s >= 0:
            held_waves.append(x[s : s + clip_samples])
            held_labels.append(str(r["label"]))
    held_feats = crop_features(fe, held_waves, sample_rate)
    y = np.array([classes.index(lb) for lb in labels])
    k = len(classes) if cfg.batch_classes is None else min(cfg.batch_classes, len(classes))
    steps_per_epoch = max(1, len(mels) // k)
    total = cfg.epochs * steps_per_epoch
    cap_tokens = {c: tok(captions(c, "audio")) for c in classes}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = ClapModel(small_clap_config(len(tok), cfg.width, tuple(cfg.depths)))
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
                                 {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                                lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
        gen = rng(cfg.seed, "clap-pretrain", "batches")
        batches = class_batches(y, len(classes), total, gen, cfg.batch_classes)
        log: list[dict[str, Any]] = []
        pbar = progress(total=total, desc="pretrain clap", unit="step", disable=not bar)
        step, lr = 0, cfg.lr
        model.train()
        for epoch in range(cfg.epochs):
            losses = []
            for _ in range(steps_per_epoch):
                idx = next(batches)
                feats = []
                for i in idx:
                    s = int(gen.integers(0, mels[i].shape[0] - n_frames + 1))
                    feats.append(mels[i][s : s + n_frames])
                picks = [int(gen.integers(len(cap_tokens[labels[i]]["input_ids"]))) for i in idx]
                ids = torch.stack([cap_tokens[labels[i]]["input_ids"][j] for i, j in zip(idx, picks)])
                mask = torch.stack([cap_tokens[labels[i]]["attention_mask"][j] for i, j in zip(idx, picks)])
                lr = lr_at(step, total, cfg.lr, cfg.warmup_steps)
                for g in opt.param_groups:
                    g["lr"] = lr
                out = model(input_ids=ids, attention_mask=mask, input_features=torch.stack(feats)[:, None],
                            return_loss=True)
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                opt.step()
                with torch.no_grad():
                    model.logit_scale_t.clamp_(0, math.log(100.0))
                    model.logit_scale_a.clamp_(0, math.log(100.0))
                losses.append(float(out.loss.detach()))
                step += 1
                pbar.update(1)
            acc = heldout_accuracy(model, tok, held_feats, held_labels, classes)
            log.append(epoch_row(epoch + 1, step, losses, acc, len(held_labels), len(classes), lr,
                                 model.logit_scale_t.exp().item(), t0, c0))
            pbar.set_postfix(loss=f"{np.mean(losses):.3f}", heldout=f"{acc:.3f}", refresh=False)
        pbar.close()
    model.eval()
    label = provenance(cfg.dataset, cfg.seed)
    model.config.avsep_weights = label
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        fe.save_pretrained(tmp)
        tok.save(tmp)
        write_json({"weights": label, "classes": classes, "config": asdict(cfg), "clip_samples": int(clip_samples),
                    "sample_rate": int(sample_rate)}, Path(tmp) / "pretrain.json")
    write_log(log, out_log)
    return {"model": model, "classes": classes, "log": log, "provenance": label, "seconds": time.time() - t0,
            "cpu_seconds": time.process_time() - c0,
            "train_clips": len(mels)}
