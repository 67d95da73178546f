"""CLAP audio embeddings (LAION CLAP, HTSAT audio branch), HFRA's representation-alignment target.

The backend is transformers' ``ClapAudioModelWithProjection`` with ``ClapFeatureExtractor``: the audio
branch of LAION's CLAP checkpoints (e.g. ``laion/clap-htsat-unfused``) loaded from a local directory in
``save_pretrained`` format, offline. (``laion_clap`` 1.1.7 fetches text tokenizers from the Hugging Face
hub at import and ``roberta-base`` at construction, pins ``numpy<2`` and needs an extra key to load its
own checkpoints; the audio branch alone needs none of that.)

``weights`` selects the model:

- ``random``: a seeded initialisation of ``ClapAudioConfig()`` (the full-size unfused HTSAT audio branch
  of ``laion/clap-htsat-unfused``: 28.2 M parameters), labelled ``random(seed=N)``; the offline default;
- a local directory holding ``config.json`` and the weights (a full ``ClapModel`` directory works too:
  only its audio branch is read), labelled ``dir:<name>@sha256:<first 12 hex of config + weights>``;
- ``hf:<repo id>`` (e.g. ``hf:laion/clap-htsat-unfused``): downloaded by transformers (needs internet),
  labelled ``hf:<repo>@<commit>``.

A directory whose ``config.json`` names its provenance (key ``avsep_weights``, written by
:mod:`avsep.encoders.pretrain_clap`: a small CLAP pre-trained on the synthetic clips, with its own shorter
feature extractor saved beside it) is labelled ``<provenance>@sha256:<12 hex>`` instead.

Input audio (any rate) is resampled to 48 kHz (polyphase, exact ratio) and featurised as the checkpoint
expects: ``truncation="rand_trunc"`` for unfused models (``"fusion"`` if the config enables fusion),
``padding="repeatpad"``. Inputs longer than the extractor's 10 s are centre-cropped to 10 s first, so
the extractor's random crop never runs and embeddings are deterministic. Embeddings are the audio
projection L2-normalised, as ``ClapModel.get_audio_features`` and ``laion_clap`` return them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avsep.audio.resample import resample_exact
from avsep.core.weights import sha256_files

CLAP_RATE = 48000
EMBED_DIM = 512
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")


def resample(x: np.ndarray, rate_in: int, rate_out: int = CLAP_RATE) -> np.ndarray:
    """Polyphase resampling of a 1-D signal by the exact ratio ``rate_out / rate_in`` (float32)."""
    return np.asarray(resample_exact(x, rate_in, rate_out), dtype=np.float32)


@dataclass
class ClapEncoder:
    """A frozen CLAP audio branch with its feature extractor and weights label."""

    model: torch.nn.Module
    feature_extractor: Any
    weights: str

    @property
    def encoder(self) -> str:
        return "CLAP HTSAT (transformers ClapAudioModelWithProjection)"

    @property
    def truncation(self) -> str:
        return "fusion" if self.model.config.enable_fusion else "rand_trunc"

    @property
    def max_samples(self) -> int:
        return int(self.feature_extractor.nb_max_samples)

    def features(self, waves48k: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        """Feature-extractor output of mono 48 kHz waveforms (each centre-cropped to at most 10 s)."""
        n = self.max_samples
        crops = []
        for w in waves48k:
            w = np.asarray(w, dtype=np.float32)
            if w.ndim != 1:
                raise ValueError(f"CLAP input must be mono 1-D audio, got shape {w.shape}")
            if len(w) > n:
                s = (len(w) - n) // 2
                w = w[s : s + n]
            crops.append(w)
        return dict(
            self.feature_extractor(
                crops, sampling_rate=CLAP_RATE, truncation=self.truncation, padding="repeatpad", return_tensors="pt"
            )
        )

    @torch.no_grad()
    def embed(self, waves: Sequence[np.ndarray], sample_rate: int, batch_size: int = 8) -> np.ndarray:
        """(N, 512) L2-normalised float32 embeddings of mono waveforms at ``sample_rate``."""
        device = next(self.model.parameters()).device
        out = [np.zeros((0, EMBED_DIM), dtype=np.float32)]
        for i in range(0, len(waves), batch_size):
            feats = self.features([resample(w, sample_rate) for w in waves[i : i + batch_size]])
            emb = self.model(**{k: v.to(device) for k, v in feats.items()}).audio_embeds
            out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy())
        return np.concatenate(out)


#: config.json key naming where the weights come from (their label, before the hash).
PROVENANCE_KEY = "avsep_weights"


def _dir_label(path: Path) -> str:
    files = [path / "config.json"] + [path / f for f in _WEIGHT_FILES if (path / f).is_file()]
    files += sorted(p for p in path.glob("*.safetensors") if p.name not in _WEIGHT_FILES)
    digest = sha256_files(files)[:12]
    try:
        provenance = json.loads((path / "config.json").read_text()).get(PROVENANCE_KEY)
    except (OSError, ValueError):
        provenance = None
    return f"{provenance}@sha256:{digest}" if provenance else f"dir:{path.name}@sha256:{digest}"


def load_clap(weights: str = "random", seed: int = 0, config: Any = None, device: str = "cpu",
              feature_extractor: Any = None) -> ClapEncoder:
    """The CLAP audio encoder with ``weights`` (see the module docstring), in eval mode.

    ``config`` (a ``ClapAudioConfig``) overrides the architecture of ``random`` (tests use a small one), and
    ``feature_extractor`` its ``ClapFeatureExtractor()`` (needed when ``config`` has other mel bands).
    """
    from transformers import ClapAudioConfig, ClapAudioModelWithProjection, ClapFeatureExtractor

    if weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = ClapAudioModelWithProjection(config if config is not None else ClapAudioConfig())
        fe = feature_extractor if feature_extractor is not None else ClapFeatureExtractor()
        label = f"random(seed={seed})"
    elif weights.startswith("hf:"):
        repo = weights[3:]
        model = ClapAudioModelWithProjection.from_pretrained(repo)
        fe = ClapFeatureExtractor.from_pretrained(repo)
        commit = getattr(model.config, "_commit_hash", None) or "unknown"
        label = f"hf:{repo}@{commit[:12]}"
    else:
        path = Path(weights)
        if not path.is_dir():
            raise FileNotFoundError(
                f"clap.weights: {path} is not a directory (expected 'random', 'hf:<repo id>' or a local "
                f"save_pretrained directory with config.json and the weights)"
            )
        if not (path / "config.json").is_file() or not any((path / f).is_file() for f in _WEIGHT_FILES):
            raise FileNotFoundError(f"clap.weights: {path} lacks config.json or a weights file ({', '.join(_WEIGHT_FILES)})")
        model = ClapAudioModelWithProjection.from_pretrained(path, local_files_only=True)
        has_fe = (path / "preprocessor_config.json").is_file()
        fe = ClapFeatureExtractor.from_pretrained(path, local_files_only=True) if has_fe else ClapFeatureExtractor()
        label = _dir_label(path)
    if int(fe.sampling_rate) != CLAP_RATE:
        raise ValueError(f"clap.weights {weights}: feature extractor expects {fe.sampling_rate} Hz, not {CLAP_RATE}")
    model = model.to(device).eval()
    for prm in model.parameters():
        prm.requires_grad_(False)
    return ClapEncoder(model=model, feature_extractor=fe, weights=label)
