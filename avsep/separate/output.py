"""What ``avsep separate`` writes: one wav per object, the residual, and ``summary.png``.

Wavs are written piece by piece as the windows finish (:class:`Outputs`), each under a temporary name beside
its destination (:func:`avsep.core.io.atomic_path`) and renamed only when the whole video is done, so a killed
run leaves no stem under its final name. The spectrograms of ``summary.png`` are sketched as the samples go
by (:class:`SpectrogramSketch`: at most :data:`MAX_COLUMNS` columns, whatever the length), so memory stays
bounded by the window.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import numpy as np
import soundfile as sf
from PIL import Image

from avsep.core.io import atomic_path
from avsep.separate.objects import SoundingObject

#: Time columns of each spectrogram in ``summary.png``.
MAX_COLUMNS = 600
#: Sample format of the written wavs (float: stems can exceed full scale a little, nothing is clipped).
SUBTYPE = "FLOAT"


class SpectrogramSketch:
    """A log-power spectrogram of a signal fed in pieces, pooled to at most ``max_columns`` columns.

    Column ``c`` averages the power of the ``n_fft``-sample Hann frames (hop ``n_fft // 2``) of samples
    ``[c S, (c + 1) S)`` (the ``n_fft`` samples ending at ``(c + 1) S`` when shorter), ``S = ceil(n_samples /
    max_columns)``; channels
    are averaged. A last partial column shorter than ``S / 2`` is dropped."""

    def __init__(self, n_samples: int, n_fft: int, max_columns: int = MAX_COLUMNS) -> None:
        self.n_fft = n_fft
        self.span = max(1, math.ceil(n_samples / max_columns))  # the same number of columns for any length
        self.window = np.hanning(n_fft)
        self.pending = np.zeros(0)
        self.history = np.zeros(0)
        self.columns: list[np.ndarray] = []

    def push(self, x: np.ndarray) -> None:
        """Feed samples ``(C, n)`` or ``(n,)``."""
        mono = np.asarray(x, dtype=np.float64)
        if mono.ndim == 2:
            mono = mono.mean(axis=0)
        self.pending = np.concatenate([self.pending, mono])
        while self.pending.shape[0] >= self.span:
            self._column(self.pending[: self.span])
            self.pending = self.pending[self.span:]

    def _column(self, seg: np.ndarray) -> None:
        if seg.shape[0] < self.n_fft:  # a short column is analysed over the n_fft samples that end where it ends
            seg = np.concatenate([self.history, seg])[-self.n_fft:]
            seg = np.pad(seg, (self.n_fft - seg.shape[0], 0))
        self.history = seg[-self.n_fft:]
        hop = self.n_fft // 2
        starts = range(0, seg.shape[0] - self.n_fft + 1, hop)
        frames = np.stack([seg[s: s + self.n_fft] * self.window for s in starts])
        self.columns.append((np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(axis=0))

    def image(self) -> np.ndarray:
        """``(n_freq, columns)`` log10 power (the last partial column included)."""
        if self.pending.shape[0] >= self.span / 2 or not self.columns:
            self._column(self.pending)
            self.pending = np.zeros(0)
        cols = self.columns or [np.zeros(self.n_fft // 2 + 1)]
        return np.log10(np.stack(cols, axis=1) + 1e-10)


class Outputs:
    """The wav of every object and the residual, open for writing under temporary names (a context manager:
    the files are renamed into place when the block ends without error, deleted otherwise)."""

    def __init__(self, out_dir: Path, objects: Sequence[SoundingObject], sample_rate: int, channels: int,
                 n_samples: int, n_fft: int) -> None:
        self.out_dir = out_dir
        self.names = [o.name for o in objects] + ["residual"]
        self.paths = [out_dir / f"{n}.wav" for n in self.names]
        self.sample_rate, self.channels = sample_rate, channels
        self.sketches = [SpectrogramSketch(n_samples, n_fft) for _ in range(len(self.names) + 1)]  # + mixture
        self._stack = contextlib.ExitStack()
        self.files: list[sf.SoundFile] = []

    def __enter__(self) -> Self:
        try:
            for p in self.paths:
                tmp = self._stack.enter_context(atomic_path(p))
                self.files.append(self._stack.enter_context(
                    sf.SoundFile(tmp, "w", samplerate=self.sample_rate, channels=self.channels, subtype=SUBTYPE,
                                 format="WAV")))
        except BaseException:
            self._stack.close()
            raise
        return self

    def write(self, mixture: np.ndarray, stems: np.ndarray) -> None:
        """Final samples of the mixture ``(C, n)`` and of the stems ``(N, C, n)``; the residual is the mixture
        minus the stems."""
        residual = mixture - stems.sum(axis=0)
        for f, sk, x in zip(self.files, self.sketches, [*stems, residual]):
            f.write(np.ascontiguousarray(x.T, dtype=np.float32))
            sk.push(x)
        self.sketches[-1].push(mixture)

    def __exit__(self, *exc: object) -> bool:
        # SoundFiles close (headers written) before atomic_path renames them: the stack unwinds in reverse
        return bool(self._stack.__exit__(*exc))


def write_summary(path: Path, frame: Image.Image | None, objects: Sequence[SoundingObject], outputs: Outputs,
                  title: str) -> None:
    """``summary.png``: the frame with numbered boxes, then the spectrogram of the mixture and of each output."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    specs = [("mixture", outputs.sketches[-1].image())] + [
        (name, sk.image()) for name, sk in zip(outputs.names, outputs.sketches[:-1])]
    lo = max(s.max() for _, s in specs) - 8.0  # 80 dB of range, the same scale for every panel
    hi = max(s.max() for _, s in specs)
    seconds = outputs.sketches[-1].span * specs[0][1].shape[1] / outputs.sample_rate
    nyq = outputs.sample_rate / 2000
    rows = len(specs) + 1
    fig = plt.figure(figsize=(7.0, 1.6 * len(specs) + 2.6))
    grid = fig.add_gridspec(rows, 1, height_ratios=[2.4] + [1.0] * len(specs))
    ax = fig.add_subplot(grid[0])
    if frame is not None:
        ax.imshow(frame)
        w, h = frame.size
        for o in objects:
            if o.box is None:
                continue
            x1, y1, x2, y2 = o.box[0] * w, o.box[1] * h, o.box[2] * w, o.box[3] * h
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="yellow", linewidth=1.5))
            ax.text(x1 + 2, y1 + 2, f"{o.index} {o.label}", color="black", fontsize=7, va="top",
                    bbox={"facecolor": "yellow", "edgecolor": "none", "pad": 1})
    ax.set_axis_off()
    ax.set_title(title, fontsize=8)
    for i, (name, spec) in enumerate(specs, start=1):
        a = fig.add_subplot(grid[i])
        a.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=lo, vmax=hi,
                 extent=(0, seconds, 0, nyq))
        a.set_ylabel("kHz", fontsize=6)
        a.tick_params(labelsize=6)
        a.text(0.005, 0.95, name, transform=a.transAxes, color="white", fontsize=7, va="top")
        if i < len(specs):
            a.set_xticklabels([])
    fig.axes[-1].set_xlabel("seconds", fontsize=6)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
