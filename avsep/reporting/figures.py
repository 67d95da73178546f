"""HFRA figures: Figure 1 (acoustic properties per class vs the fusion that separates it best) and
Figure 3 (spectrograms of test mixtures, their ground truth and each method's estimate, with wav files).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from avsep.audio.acoustics import class_properties
from avsep.audio.frontend import FrontendConfig, stft
from avsep.audio.mixing import mix_sources
from avsep.core.io import atomic_dir, atomic_path
from avsep.data.inputs import VisualInputs
from avsep.data.mixtures import MixSpec
from avsep.data.store import ClipStore, load_audio
from avsep.evaluation.inference import predict
from avsep.models.hfra.separator import AVSeparator


def acoustic_table(store: ClipStore, clips: pd.DataFrame, sample_rate: int) -> pd.DataFrame:
    """Figure 1 coordinates per class: mean attack ratio and harmonic complexity (1 - HCR) of its clips."""
    by_label: dict[str, list[np.ndarray]] = {}
    for r in clips.sort_values(["label", "id"]).itertuples(index=False):
        wav = store.audio(str(r.id), 0, int(r.n_samples))[0].astype(np.float64)
        by_label.setdefault(str(r.label), []).append(wav)
    return class_properties(by_label, sample_rate)


def best_fusion(table_a1: pd.DataFrame, columns: dict[str, str]) -> pd.Series:
    """Per instrument, which fusion (``columns``: table column -> short name) has the highest SDR."""
    t = table_a1[table_a1["instrument"] != "Overall SDR"].set_index("instrument")
    sub = t[list(columns)].rename(columns=columns)
    return sub.idxmax(axis=1)


def plot_figure1(props: pd.DataFrame, out_png: str | Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 5))
    colours = {"middle": "tab:blue", "late": "tab:orange", "hierarchical": "tab:green"}
    for fusion, g in props.groupby(props["best_fusion"].fillna("n/a")):
        ax.scatter(g["attack_ratio"], g["harmonic_complexity"], s=60, label=f"best: {fusion}",
                   color=colours.get(str(fusion), "grey"))
    for r in props.itertuples(index=False):
        ax.annotate(str(r.label), (r.attack_ratio, r.harmonic_complexity), fontsize=8, xytext=(4, 3),
                    textcoords="offset points")
    ax.set_xlabel("transient property: attack ratio max|x| / RMS")
    ax.set_ylabel("harmonic complexity 1 - HCR (8 harmonics, pYIN f0)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def _log_spec(x: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    s = stft(torch.from_numpy(np.asarray(x, dtype=np.float32))[None], cfg)[0].abs().numpy()
    return np.log10(s + 1e-4)


def figure3(
    models: dict[str, tuple[AVSeparator, VisualInputs]],
    store: ClipStore,
    specs: Sequence[MixSpec],
    ids: Sequence[str],
    frontend: FrontendConfig,
    threshold: float | None,
    out_png: str | Path,
    out_audio_dir: str | Path,
    title: str,
) -> None:
    """One row per (mixture, source): mixture, ground truth, then each method's estimate; wavs beside it."""
    audio, gains = load_audio(store, list(specs), frontend.clip_samples)
    sources, mixture = mix_sources(audio[:, :, 0], gains)
    estimates = {name: predict(net, mixture, vis(list(specs)), frontend, threshold)[0] for name, (net, vis) in models.items()}
    n_src = sources.shape[1]
    rows = len(specs) * n_src
    cols = 2 + len(models)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 1.9 * rows), squeeze=False)
    with atomic_dir(out_audio_dir) as tmp_dir:
        for i, (mid, spec) in enumerate(zip(ids, specs)):
            sf.write(Path(tmp_dir) / f"{mid}_mixture.wav", mixture[i].numpy(), frontend.sample_rate)
            for j in range(n_src):
                r = i * n_src + j
                panels = [("mixture", mixture[i].numpy()), (f"truth: {spec.labels[j]}", sources[i, j].numpy())]
                panels += [(name, est[i, j].numpy()) for name, est in estimates.items()]
                for c, (name, wav) in enumerate(panels):
                    ax = axes[r, c]
                    ax.imshow(_log_spec(wav, frontend), origin="lower", aspect="auto", cmap="magma")
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if r == 0 or c == 1:
                        ax.set_title(name, fontsize=7)
                sf.write(Path(tmp_dir) / f"{mid}_{spec.labels[j]}_truth.wav", sources[i, j].numpy(), frontend.sample_rate)
                for name, est in estimates.items():
                    safe = "".join(ch if ch.isalnum() else "_" for ch in name)
                    sf.write(Path(tmp_dir) / f"{mid}_{spec.labels[j]}_{safe}.wav", est[i, j].numpy(), frontend.sample_rate)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
