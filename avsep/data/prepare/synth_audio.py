"""Sound of the synthetic clips: seeded random phrases rendered with a General MIDI SoundFont.

A phrase (:func:`make_phrase`) is a random walk over a scale (or a drum pattern) in the style of the
class's :class:`avsep.data.prepare.instruments.InstrumentSpec`; :func:`render_notes` plays it with
``tinysoundfont`` and :func:`render_clip_audio` builds a clip's audio (one phrase per object instance,
mono or binaural, normalised, redrawn until every second is active). The frames are drawn by
:mod:`avsep.data.prepare.synth_frames`; :mod:`avsep.data.prepare.synth` writes the clips.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from avsep.core.seeding import rng
from avsep.data.prepare import spatial
from avsep.data.prepare.instruments import DRUM_BANK, DRUM_CHANNEL, InstrumentSpec, get_instrument

if TYPE_CHECKING:
    from avsep.data.prepare.synth import ClipPlan, SynthConfig

DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"

#: Every 1 s window (hop 0.25 s) of a normalised clip must have at least this RMS (about -40 dBFS).
MIN_WINDOW_RMS = 0.01
#: Attempts (fresh phrases) before giving up on a clip that keeps failing the activity check.
MAX_RENDER_ATTEMPTS = 12


# ---------------------------------------------------------------------------------------------------
# phrases
# ---------------------------------------------------------------------------------------------------

SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "major_pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
}


@dataclass(frozen=True)
class Note:
    """A note of a phrase (seconds, MIDI key, MIDI velocity)."""

    start: float
    end: float
    key: int
    velocity: int


def scale_pitches(lo: int, hi: int, root: int, scale: tuple[int, ...]) -> list[int]:
    """MIDI pitches in ``[lo, hi]`` that belong to ``scale`` on ``root`` (pitch class 0-11)."""
    return [p for p in range(lo, hi + 1) if (p - root) % 12 in scale]


def make_phrase(spec: InstrumentSpec, seconds: float, gen: np.random.Generator) -> list[Note]:
    """A random phrase filling ``seconds`` in the style of ``spec`` (melodic, percussive or effect)."""
    st = spec.style
    if spec.percussion:
        pitches = list(spec.drum_notes)
    else:
        scale = SCALES[sorted(SCALES)[int(gen.integers(len(SCALES)))]]
        pitches = scale_pitches(*spec.pitch_range, root=int(gen.integers(12)), scale=scale) or [
            (spec.pitch_range[0] + spec.pitch_range[1]) // 2
        ]
    n = len(pitches)
    pos = int(gen.integers(n // 4, max(n // 4 + 1, (3 * n) // 4)))
    notes: list[Note] = []
    t = float(gen.uniform(0.0, 0.05))
    while t < seconds:
        ioi = float(gen.uniform(*st.ioi_seconds))
        gate = float(gen.uniform(*st.gate))
        vel = int(gen.integers(st.velocity[0], st.velocity[1] + 1))
        if spec.percussion:
            pos = int(gen.integers(n))
        else:
            pos = _step(pos, n, st.max_step, allow_repeat=st.gate[1] <= 1.0, gen=gen)
        keys = [pitches[pos]]
        if st.chord_prob > 0 and gen.random() < st.chord_prob:
            extra = pos + int(gen.choice([2, 4])) if not spec.percussion else int(gen.integers(n))
            if 0 <= extra < n and pitches[extra] != keys[0]:
                keys.append(pitches[extra])
        for k in keys:
            notes.append(Note(t, t + ioi * gate, k, vel))
        t += ioi
        if st.rest_prob > 0 and gen.random() < st.rest_prob:
            t += float(gen.uniform(*st.rest_seconds))
    return notes


def _step(pos: int, n: int, max_step: int, allow_repeat: bool, gen: np.random.Generator) -> int:
    """Random-walk step on scale degrees, favouring small steps and reflecting at the range ends."""
    if n <= 1:
        return 0
    steps = np.arange(-max_step, max_step + 1)
    if not allow_repeat:
        steps = steps[steps != 0]
    weights = 1.0 / (1.0 + np.abs(steps))
    s = int(gen.choice(steps, p=weights / weights.sum()))
    new = pos + s
    if new < 0 or new >= n:
        new = pos - s
    new = min(max(new, 0), n - 1)
    if new == pos and not allow_repeat:
        new = pos + 1 if pos + 1 < n else pos - 1
    return new


# ---------------------------------------------------------------------------------------------------
# audio
# ---------------------------------------------------------------------------------------------------

_LOCAL = threading.local()


def _synth(soundfont: str, sample_rate: int) -> tuple[object, int]:
    """A per-thread ``tinysoundfont.Synth`` with ``soundfont`` loaded (loading takes ~0.3 s)."""
    import tinysoundfont

    cache: dict[tuple[str, int], tuple[object, int]] = getattr(_LOCAL, "synths", None) or {}
    _LOCAL.synths = cache
    key = (soundfont, sample_rate)
    if key not in cache:
        if not Path(soundfont).exists():
            raise FileNotFoundError(
                f"SoundFont {soundfont} not found (install the Debian package fluid-soundfont-gm "
                "or set SynthConfig.soundfont)"
            )
        s = tinysoundfont.Synth(samplerate=sample_rate)
        cache[key] = (s, s.sfload(soundfont))
    return cache[key]


def render_notes(spec: InstrumentSpec, notes: list[Note], n_samples: int, sample_rate: int,
                 soundfont: str = DEFAULT_SOUNDFONT) -> np.ndarray:
    """Render ``notes`` with the GM sound of ``spec``; mono float32 of ``n_samples`` (mean of L and R).

    The synthesizer is reused between clips; all voices are silenced and flushed first, which makes the
    output independent of what was rendered before (checked by the tests).
    """
    synth, sfid = _synth(soundfont, sample_rate)
    s = synth  # type: ignore[assignment]
    s.sounds_off()  # type: ignore[attr-defined]
    s.generate_simple(sample_rate)  # type: ignore[attr-defined]  # let released voices die out
    chan = DRUM_CHANNEL if spec.percussion else 0
    _select_program(s, sfid, chan, spec)
    events = _note_events(notes, n_samples, sample_rate)
    buf = memoryview(bytearray(n_samples * 2 * 4))
    pos = 0
    for at, on, key, vel in events:
        if at > pos:
            s.generate_simple(at - pos, buffer=buf[pos * 8 : at * 8])  # type: ignore[attr-defined]
            pos = at
        if on:
            s.noteon(chan, key, vel)  # type: ignore[attr-defined]
        else:
            s.noteoff(chan, key)  # type: ignore[attr-defined]
    if pos < n_samples:
        s.generate_simple(n_samples - pos, buffer=buf[pos * 8 :])  # type: ignore[attr-defined]
    s.sounds_off()  # type: ignore[attr-defined]
    stereo = np.frombuffer(buf, dtype=np.float32).reshape(-1, 2)
    return stereo.mean(axis=1, dtype=np.float64).astype(np.float32)


def _select_program(s: object, sfid: int, chan: int, spec: InstrumentSpec) -> None:
    """Select the class's preset, falling back to bank 0 when the SoundFont lacks a variation bank."""
    if spec.percussion:
        s.program_select(chan, sfid, DRUM_BANK, 0, is_drums=True)  # type: ignore[attr-defined]
        return
    if spec.bank and s.sfpreset_name(sfid, spec.bank, spec.program) is not None:  # type: ignore[attr-defined]
        s.program_select(chan, sfid, spec.bank, spec.program)  # type: ignore[attr-defined]
    else:
        s.program_select(chan, sfid, 0, spec.program)  # type: ignore[attr-defined]


def _note_events(notes: list[Note], n_samples: int, sample_rate: int) -> list[tuple[int, bool, int, int]]:
    """Sample-accurate (sample, is_on, key, velocity) events inside the clip; note-offs sort first."""
    ev = []
    for nt in notes:
        on = int(round(nt.start * sample_rate))
        off = int(round(nt.end * sample_rate))
        if on < n_samples:
            ev.append((on, True, nt.key, nt.velocity))
            if off < n_samples:
                ev.append((max(off, on + 1), False, nt.key, 0))
    ev.sort(key=lambda e: (e[0], e[1]))
    return ev


def window_rms(audio: np.ndarray, sample_rate: int, window_s: float = 1.0, hop_s: float = 0.25) -> np.ndarray:
    """RMS of every ``window_s`` window (hop ``hop_s``) of mono ``(n,)`` or multichannel ``(c, n)`` audio."""
    x = np.asarray(audio, dtype=np.float64)
    power = x**2 if x.ndim == 1 else (x**2).mean(axis=0)
    win = max(1, int(window_s * sample_rate))
    hop = max(1, int(hop_s * sample_rate))
    if power.shape[0] <= win:
        return np.array([math.sqrt(power.mean())]) if power.size else np.zeros(1)
    c = np.concatenate([[0.0], np.cumsum(power)])
    starts = np.arange(0, power.shape[0] - win + 1, hop)
    return np.sqrt((c[starts + win] - c[starts]) / win)


def render_clip_audio(cfg: SynthConfig, plan: ClipPlan, azimuths: list[float]) -> tuple[np.ndarray, float]:
    """The clip's audio, ``(channels, n)`` float32, normalised to a seeded peak in [0.5, 0.9].

    One phrase per instance (mono, or binaural at that instance's azimuth), summed. Phrases are redrawn
    until every 1 s window is active (:data:`MIN_WINDOW_RMS`). Returns the audio and its peak.
    With ``cfg.pitch_shift`` > 0 a melodic class's pitch range moves by a seeded number of semitones.
    """
    spec = get_instrument(plan.label)
    if cfg.pitch_shift and not spec.percussion:
        shift = int(rng(plan.seed, "pitch_shift").integers(-cfg.pitch_shift, cfg.pitch_shift + 1))
        lo, hi = spec.pitch_range
        spec = dataclasses.replace(spec, pitch_range=(min(max(lo + shift, 12), 115), min(max(hi + shift, 12), 115)))
    target = float(rng(plan.seed, "peak").uniform(0.5, 0.9))
    for attempt in range(MAX_RENDER_ATTEMPTS):
        mix = np.zeros((2 if cfg.binaural else 1, cfg.n_samples), dtype=np.float64)
        for k, az in enumerate(azimuths):
            notes = make_phrase(spec, cfg.duration, rng(plan.seed, "phrase", k, attempt))
            mono = render_notes(spec, notes, cfg.n_samples, cfg.sample_rate, cfg.soundfont)
            mix += spatial.spatialize(mono, cfg.sample_rate, az) if cfg.binaural else mono[None, :]
        peak = float(np.abs(mix).max())
        if peak <= 0:
            continue
        out = (mix * (target / peak)).astype(np.float32)
        if window_rms(out, cfg.sample_rate).min() >= MIN_WINDOW_RMS:
            return out, float(np.abs(out).max())
    raise RuntimeError(f"{plan.id}: could not render an active clip in {MAX_RENDER_ATTEMPTS} attempts")
