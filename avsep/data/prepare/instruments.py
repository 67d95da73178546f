"""Registry of the synthetic sound classes: how each one sounds and how it looks.

Every class is a frozen :class:`InstrumentSpec` holding

* the General MIDI sound to render it with (0-based program and bank, or a GM percussion kit plus the
  drum notes it may play),
* the MIDI pitch range the phrase generator may use,
* a :class:`PhraseStyle` (sustained legato lines versus short plucked/struck notes, note lengths,
  rests, velocities, chords), and
* an :class:`Appearance` (a colour, a shape and a surface pattern) so that a small CNN or a YOLO detector
  can tell the classes apart in the rendered frames.

The timbres span the two axes of HFRA's Figure 1: transient (xylophone, guitar, banjo, congas) versus
sustained (cello, accordion, clarinet), and simple (flute, ocarina-like) versus rich harmonics
(saxophone, accordion, bagpipe).

:data:`DATASET_CLASSES` names the classes of each embedded synthetic dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: MIDI channel used for percussion kits (channel 10 in 1-based MIDI numbering).
DRUM_CHANNEL = 9
#: SoundFont bank of the GM percussion kits.
DRUM_BANK = 128

#: Shapes the frame renderer can draw (see :mod:`avsep.data.prepare.synth_frames`).
SHAPES = (
    "circle",
    "square",
    "triangle",
    "inv_triangle",
    "diamond",
    "pentagon",
    "hexagon",
    "star",
    "cross",
    "ring",
    "tall_rect",
    "wide_rect",
    "tall_ellipse",
    "wide_ellipse",
)
#: Surface patterns drawn over the shape in the accent colour.
PATTERNS = ("solid", "stripes_h", "stripes_v", "checker", "dots", "diagonal", "bullseye")

#: Phrase articulations understood by the phrase generator.
ARTICULATIONS = ("legato", "detached", "plucked", "struck", "percussion", "effect")


@dataclass(frozen=True)
class PhraseStyle:
    """How a random phrase for a class is played.

    Attributes:
        articulation: one of :data:`ARTICULATIONS` (for documentation and grouping).
        ioi_seconds: range of the inter-onset interval (time from one note start to the next).
        gate: range of the fraction of the inter-onset interval that the key is held; ``> 1`` overlaps
            notes (legato), ``< 1`` leaves the natural decay (plucked/struck).
        rest_prob: probability that a short rest follows a note.
        rest_seconds: range of a rest's length; kept short so that no second of a clip is silent.
        velocity: MIDI velocity range.
        chord_prob: probability that a note is doubled by a third, fifth or octave (polyphonic
            instruments only).
        max_step: largest melodic leap, in scale degrees.
    """

    articulation: str
    ioi_seconds: tuple[float, float]
    gate: tuple[float, float]
    rest_prob: float = 0.05
    rest_seconds: tuple[float, float] = (0.05, 0.2)
    velocity: tuple[int, int] = (70, 110)
    chord_prob: float = 0.0
    max_step: int = 3


@dataclass(frozen=True)
class Appearance:
    """What the sounding object looks like in a frame.

    Attributes:
        color: main RGB colour (0-255).
        shape: one of :data:`SHAPES`.
        pattern: one of :data:`PATTERNS`, drawn in ``accent``.
        accent: RGB colour of the pattern (and of the outline).
    """

    color: tuple[int, int, int]
    shape: str
    pattern: str = "solid"
    accent: tuple[int, int, int] = (255, 255, 255)


@dataclass(frozen=True)
class InstrumentSpec:
    """One synthetic sound class.

    Attributes:
        name: class label (also used in clip ids, so only ``[a-z0-9_]``).
        kind: ``"music"`` or ``"sound"`` (a non-musical sound event).
        program: 0-based General MIDI program (ignored for percussion).
        bank: SoundFont bank; a bank other than 0 falls back to 0 if the SoundFont lacks it.
        percussion: True for a GM percussion kit played on :data:`DRUM_CHANNEL`.
        drum_notes: GM percussion notes a percussion class may play.
        pitch_range: inclusive MIDI pitch range for melodic phrases.
        style: the :class:`PhraseStyle`.
        appearance: the :class:`Appearance`.
        gm_name: human-readable name of the GM sound used.
    """

    name: str
    kind: str
    program: int
    style: PhraseStyle
    appearance: Appearance
    pitch_range: tuple[int, int] = (48, 84)
    bank: int = 0
    percussion: bool = False
    drum_notes: tuple[int, ...] = field(default_factory=tuple)
    gm_name: str = ""

    def __post_init__(self) -> None:
        lo, hi = self.pitch_range
        if not 0 <= lo <= hi <= 127:
            raise ValueError(f"{self.name}: bad pitch range {self.pitch_range}")
        if self.percussion and not self.drum_notes:
            raise ValueError(f"{self.name}: a percussion class needs drum_notes")
        if self.appearance.shape not in SHAPES:
            raise ValueError(f"{self.name}: unknown shape {self.appearance.shape!r}")
        if self.appearance.pattern not in PATTERNS:
            raise ValueError(f"{self.name}: unknown pattern {self.appearance.pattern!r}")
        if self.style.articulation not in ARTICULATIONS:
            raise ValueError(f"{self.name}: unknown articulation {self.style.articulation!r}")


# --- phrase styles --------------------------------------------------------------------------------

BOWED = PhraseStyle("legato", ioi_seconds=(0.35, 1.1), gate=(1.0, 1.08), velocity=(75, 110))
WIND = PhraseStyle("legato", ioi_seconds=(0.3, 0.9), gate=(0.92, 1.05), velocity=(75, 115))
REED = PhraseStyle("legato", ioi_seconds=(0.3, 1.0), gate=(0.95, 1.05), velocity=(80, 115), chord_prob=0.15)
BRASS = PhraseStyle("detached", ioi_seconds=(0.25, 0.8), gate=(0.8, 0.98), velocity=(80, 120))
DRONE = PhraseStyle("legato", ioi_seconds=(0.4, 1.2), gate=(1.0, 1.1), velocity=(90, 120), rest_prob=0.0)
PLUCKED = PhraseStyle(
    "plucked", ioi_seconds=(0.14, 0.45), gate=(0.6, 1.0), velocity=(70, 115), chord_prob=0.2, max_step=4
)
PLUCKED_BASS = PhraseStyle("plucked", ioi_seconds=(0.2, 0.55), gate=(0.7, 1.0), velocity=(80, 120), max_step=4)
MALLET = PhraseStyle("struck", ioi_seconds=(0.1, 0.3), gate=(0.3, 0.6), velocity=(75, 120), max_step=4)
KEYS = PhraseStyle("struck", ioi_seconds=(0.15, 0.5), gate=(0.7, 1.0), velocity=(60, 110), chord_prob=0.35, max_step=4)
DRUMS = PhraseStyle("percussion", ioi_seconds=(0.1, 0.3), gate=(0.5, 0.5), velocity=(70, 125), rest_prob=0.03)


def _effect(ioi: tuple[float, float], gate: tuple[float, float] = (1.0, 1.1), rest_prob: float = 0.0) -> PhraseStyle:
    return PhraseStyle("effect", ioi_seconds=ioi, gate=gate, rest_prob=rest_prob, velocity=(90, 125), max_step=2)


def _music(name: str, program: int, rng_: tuple[int, int], style: PhraseStyle, app: Appearance, **kw: object) -> InstrumentSpec:
    return InstrumentSpec(name=name, kind="music", program=program, pitch_range=rng_, style=style, appearance=app, **kw)  # type: ignore[arg-type]


def _sound(name: str, program: int, rng_: tuple[int, int], style: PhraseStyle, app: Appearance, **kw: object) -> InstrumentSpec:
    return InstrumentSpec(name=name, kind="sound", program=program, pitch_range=rng_, style=style, appearance=app, **kw)  # type: ignore[arg-type]


WHITE = (255, 255, 255)
BLACK = (15, 15, 15)

_SPECS: tuple[InstrumentSpec, ...] = (
    # --- the 11 MUSIC instruments: 11 distinct hues and 11 distinct shapes ---------------------------
    _music("accordion", 21, (53, 89), REED, Appearance((220, 30, 30), "square", "stripes_v", WHITE), gm_name="Accordion"),
    _music("acoustic_guitar", 25, (40, 81), PLUCKED, Appearance((250, 140, 0), "ring", "solid", BLACK), gm_name="Acoustic Guitar (steel)"),
    _music("cello", 42, (36, 76), BOWED, Appearance((120, 60, 20), "tall_rect", "solid", WHITE), gm_name="Cello"),
    _music("clarinet", 71, (50, 89), WIND, Appearance((20, 20, 110), "tall_ellipse", "solid", WHITE), gm_name="Clarinet"),
    _music("erhu", 110, (62, 93), BOWED, Appearance((220, 30, 170), "diamond", "solid", WHITE), gm_name="Fiddle"),
    _music("flute", 73, (60, 93), WIND, Appearance((40, 210, 230), "wide_rect", "solid", BLACK), gm_name="Flute"),
    _music("saxophone", 65, (49, 80), REED, Appearance((240, 210, 0), "star", "solid", BLACK), gm_name="Alto Sax"),
    _music("trumpet", 56, (54, 84), BRASS, Appearance((140, 230, 30), "triangle", "solid", BLACK), gm_name="Trumpet"),
    _music("tuba", 58, (29, 60), BRASS, Appearance((120, 40, 200), "circle", "solid", WHITE), gm_name="Tuba"),
    _music("violin", 40, (55, 91), BOWED, Appearance((0, 150, 80), "hexagon", "solid", WHITE), gm_name="Violin"),
    _music("xylophone", 13, (65, 100), MALLET, Appearance((30, 90, 240), "cross", "solid", WHITE), gm_name="Xylophone"),
    # --- the 10 further MUSIC-21 instruments (colour/shape/pattern combinations all distinct) -------
    _music("piano", 0, (36, 96), KEYS, Appearance((245, 245, 245), "wide_rect", "stripes_v", BLACK), gm_name="Acoustic Grand Piano"),
    _music("guzheng", 107, (43, 86), PLUCKED, Appearance((205, 170, 110), "wide_ellipse", "stripes_h", BLACK), gm_name="Koto"),
    _music("pipa", 106, (50, 86), PLUCKED, Appearance((255, 150, 190), "tall_ellipse", "stripes_h", BLACK), gm_name="Shamisen"),
    _music("ukulele", 24, (60, 81), PLUCKED, Appearance((255, 240, 130), "circle", "dots", BLACK), bank=8, gm_name="Ukulele (bank 8; GM Nylon Guitar)"),
    _music("electric_bass", 33, (28, 67), PLUCKED_BASS, Appearance((30, 30, 30), "tall_rect", "stripes_h", WHITE), gm_name="Electric Bass (finger)"),
    _music("drum", 0, (35, 81), DRUMS, Appearance((230, 230, 230), "circle", "bullseye", (200, 0, 0)), percussion=True,
           drum_notes=(36, 36, 38, 38, 42, 42, 42, 46, 45, 48, 50, 49, 51), gm_name="Standard Kit"),
    _music("congas", 0, (35, 81), DRUMS, Appearance((150, 90, 40), "pentagon", "checker", WHITE), percussion=True,
           drum_notes=(62, 63, 64, 63, 62), gm_name="Congas (Standard Kit)"),
    _music("banjo", 105, (48, 84), PLUCKED, Appearance((180, 200, 240), "ring", "dots", BLACK), gm_name="Banjo"),
    _music("bagpipe", 109, (60, 81), DRONE, Appearance((200, 20, 40), "hexagon", "checker", (0, 110, 40)), gm_name="Bagpipe"),
    _music("bassoon", 70, (34, 72), WIND, Appearance((100, 20, 50), "inv_triangle", "solid", WHITE), gm_name="Bassoon"),
    # --- non-musical sound events (VGGSound stand-in): 10 distinct colours and shapes ----------------
    _sound("seashore", 122, (55, 67), _effect((1.2, 2.5), (1.1, 1.3)), Appearance((20, 110, 210), "wide_rect", "stripes_h", WHITE), gm_name="Seashore"),
    _sound("bird_tweet", 123, (60, 79), _effect((0.2, 0.5), (0.8, 1.0), 0.05), Appearance((250, 220, 0), "triangle", "solid", BLACK), gm_name="Bird Tweet"),
    _sound("telephone_ring", 124, (60, 72), _effect((0.8, 1.6), (0.9, 1.0)), Appearance((230, 20, 20), "square", "dots", WHITE), gm_name="Telephone Ring"),
    _sound("helicopter", 125, (52, 67), _effect((1.5, 3.0), (1.05, 1.2)), Appearance((90, 110, 30), "cross", "solid", WHITE), gm_name="Helicopter"),
    _sound("applause", 126, (55, 67), _effect((1.5, 3.0), (1.05, 1.2)), Appearance((245, 180, 140), "wide_ellipse", "dots", BLACK), gm_name="Applause"),
    _sound("gunshot", 127, (50, 67), _effect((0.2, 0.6), (0.5, 0.8), 0.05), Appearance((20, 20, 20), "star", "solid", WHITE), gm_name="Gunshot"),
    _sound("breath_noise", 121, (55, 72), _effect((0.5, 1.2), (0.9, 1.05)), Appearance((170, 235, 245), "circle", "solid", BLACK), gm_name="Breath Noise"),
    _sound("guitar_fret_noise", 120, (45, 72), _effect((0.15, 0.45), (0.7, 1.0), 0.05), Appearance((200, 100, 30), "tall_rect", "stripes_h", BLACK), gm_name="Guitar Fret Noise"),
    _sound("rain", 96, (60, 84), _effect((0.3, 0.8), (1.0, 1.2)), Appearance((110, 130, 190), "inv_triangle", "dots", WHITE), gm_name="FX 1 (rain)"),
    _sound("church_bell", 14, (48, 72), _effect((0.6, 1.4), (0.9, 1.0)), Appearance((220, 170, 40), "pentagon", "solid", BLACK), bank=8, gm_name="Church Bell (bank 8; GM Tubular Bells)"),
)

#: All classes by name.
INSTRUMENTS: dict[str, InstrumentSpec] = {s.name: s for s in _SPECS}

MUSIC_11: tuple[str, ...] = (
    "accordion",
    "acoustic_guitar",
    "cello",
    "clarinet",
    "erhu",
    "flute",
    "saxophone",
    "trumpet",
    "tuba",
    "violin",
    "xylophone",
)
MUSIC_21: tuple[str, ...] = MUSIC_11 + (
    "bagpipe",
    "banjo",
    "bassoon",
    "congas",
    "drum",
    "electric_bass",
    "guzheng",
    "piano",
    "pipa",
    "ukulele",
)
SOUNDS: tuple[str, ...] = tuple(s.name for s in _SPECS if s.kind == "sound")
#: FAIR-Play-like subset (binaural stand-in): transient and sustained, low and high.
FAIRPLAY: tuple[str, ...] = ("acoustic_guitar", "cello", "drum", "piano", "trumpet")

#: Classes of each embedded synthetic dataset.
DATASET_CLASSES: dict[str, tuple[str, ...]] = {
    "synth-music": MUSIC_11,
    "synth-music21": MUSIC_21,
    "synth-sounds": SOUNDS,
    "synth-fairplay": FAIRPLAY,
}


def get_instrument(name: str) -> InstrumentSpec:
    """The :class:`InstrumentSpec` called ``name``; a KeyError lists the known names."""
    try:
        return INSTRUMENTS[name]
    except KeyError:
        raise KeyError(f"unknown synthetic class {name!r}; known: {sorted(INSTRUMENTS)}") from None


def appearance_key(spec: InstrumentSpec) -> tuple[object, ...]:
    """The (colour, shape, pattern) triple that makes a class's look unique."""
    a = spec.appearance
    return (a.color, a.shape, a.pattern)


def _check_registry() -> None:
    """Fail at import if two classes look the same or a dataset names an unknown class."""
    keys = [appearance_key(s) for s in _SPECS]
    if len(set(keys)) != len(keys):
        raise AssertionError("two synthetic classes share colour, shape and pattern")
    for ds, names in DATASET_CLASSES.items():
        for n in names:
            if n not in INSTRUMENTS:
                raise AssertionError(f"dataset {ds} names unknown class {n}")
        if len(set(names)) != len(names):
            raise AssertionError(f"dataset {ds} repeats a class")


_check_registry()
