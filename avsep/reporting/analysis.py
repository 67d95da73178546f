"""Representation analyses of HFRA Section 4.3 and Appendix A3.

* :func:`clip_features` -- the mean-pooled U-Net bottleneck (``z_a``, before any visual concat) of the
  centre crop of each solo clip, the representation HFRA aligns to CLAP.
* :func:`linear_probe` -- Table 4: accuracy of a linear (softmax) classifier fitted on the train-split
  features and scored on the test-split features.
* :func:`modality_gap` -- Table 5: ||mean of L2-normalised audio vectors - mean of L2-normalised visual
  vectors|| (HFRA eq. 9 with the normalisation of Liang et al., 2022). Audio = the U-Net bottleneck of the
  clip, visual = the CLIP image embedding of the clip's centre frame. At the papers' width (ngf 64) both
  are 512-d; at a smaller demo width the bottleneck (ngf x 8 dims) is embedded in the larger space by
  zero-padding (the canonical inclusion), which leaves every norm and inner product unchanged.
* :func:`per_class_sdr` -- Table A1: mean SDR per instrument over the sources of the test mixtures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from avsep.audio.frontend import FrontendConfig
from avsep.audio.mixing import spectral_batch
from avsep.data.mixtures import usable_clips
from avsep.data.store import ClipStore
from avsep.models.hfra.separator import AVSeparator


@torch.no_grad()
def clip_features(
    model: AVSeparator, store: ClipStore, clips: pd.DataFrame, frontend: FrontendConfig, batch_size: int = 16
) -> np.ndarray:
    """(N, C) mean-pooled bottleneck of the centre crop (``clip_samples``) of each clip row."""
    model.eval()
    out = []
    rows = list(clips.itertuples(index=False))
    for i in range(0, len(rows), batch_size):
        chunk = rows[i : i + batch_size]
        audio = np.stack(
            [store.audio(str(r.id), (int(r.n_samples) - frontend.clip_samples) // 2, frontend.clip_samples)[0] for r in chunk]
        )
        mix = torch.from_numpy(audio)
        batch = spectral_batch(mix[:, None], mix, frontend)
        out.append(model.unet.encode(batch.log_mag).mean(dim=(-2, -1)).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.unet.bottleneck_dim))


def probe_split(manifest: pd.DataFrame, split: str, clip_samples: int) -> pd.DataFrame:
    """The clips a probe or gap is computed on: extracted fine and long enough for a centre crop."""
    return usable_clips(manifest, split, clip_samples)


def linear_probe(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    weight_decay: float = 1e-3, max_iter: int = 500, seed: int = 0,
) -> float:
    """Test accuracy of a softmax-regression classifier (L-BFGS, L2 penalty) on standardised features.

    Deterministic on CPU. Classes absent from ``y_train`` can never be predicted.
    """
    if len(x_train) == 0 or len(x_test) == 0:
        raise ValueError("linear probe: empty train or test set")
    classes = np.unique(np.concatenate([y_train, y_test]))
    index = {c: i for i, c in enumerate(classes)}
    mu, sd = x_train.mean(axis=0), x_train.std(axis=0) + 1e-8
    xt = torch.from_numpy((x_train - mu) / sd).double()
    xs = torch.from_numpy((x_test - mu) / sd).double()
    yt = torch.tensor([index[c] for c in y_train])
    ys = torch.tensor([index[c] for c in y_test])
    g = torch.Generator().manual_seed(seed)
    w = (0.01 * torch.randn(xt.shape[1], len(classes), generator=g, dtype=torch.float64)).requires_grad_()
    b = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, yt) + weight_decay * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = (xs @ w + b).argmax(dim=1)
    return float((pred == ys).double().mean())


def modality_gap(audio: np.ndarray, visual: np.ndarray) -> float:
    """||mean(x_i / |x_i|) - mean(y_i / |y_i|)|| over paired rows; the narrower side is zero-padded."""
    if len(audio) != len(visual) or len(audio) == 0:
        raise ValueError(f"modality gap: need the same non-zero number of audio and visual rows, got {len(audio)} and {len(visual)}")
    d = max(audio.shape[1], visual.shape[1])

    def centre(v: np.ndarray) -> np.ndarray:
        v = np.pad(v.astype(np.float64), ((0, 0), (0, d - v.shape[1])))
        n = np.linalg.norm(v, axis=1, keepdims=True)
        if np.any(n == 0):
            raise ValueError("modality gap: a zero vector cannot be normalised")
        return (v / n).mean(axis=0)

    return float(np.linalg.norm(centre(audio) - centre(visual)))


def per_class_sdr(per_mixture: pd.DataFrame, num_sources: int) -> pd.Series:
    """Mean SDR per label over every scored source of the test mixtures (Table A1)."""
    scored = per_mixture[per_mixture["status"] == "scored"]
    rows = []
    for _, r in scored.iterrows():
        labels = str(r["labels"]).split(",")
        for k in range(num_sources):
            rows.append((labels[k], float(r[f"sdr_{k}"])))
    df = pd.DataFrame(rows, columns=["label", "sdr"])
    return df.groupby("label", sort=True)["sdr"].mean()
