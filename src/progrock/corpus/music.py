"""Music theory for the demo corpus: meters, drum patterns, keys, scales, chords.

Everything here is a lookup table or a pure function of its arguments; the
random choices are made by the caller with its own ``np.random.Generator``.

Time inside a bar is counted in *units*: the note value of the meter's
denominator (a quarter in 4/4, an eighth in 7/8). Tempo is always the
quarter-note tempo in BPM, so one unit lasts ``240 / (tempo * denominator)``
seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from progrock.errors import ProgrockError


@dataclass(frozen=True)
class Meter:
    """A time signature with its accent grouping.

    Attributes
    ----------
    name : str
        ``"7/8"``.
    numerator, denominator : int
        Units per bar and the unit's note value.
    groups : tuple of int
        Accent grouping in units, summing to ``numerator`` (7/8 = 2+2+3).
    """

    name: str
    numerator: int
    denominator: int
    groups: tuple[int, ...]

    @property
    def odd(self) -> bool:
        """True for anything but 4/4, 3/4 (and the common compound 6/8)."""
        return self.name not in COMMON_METERS

    def unit_seconds(self, tempo: float) -> float:
        """Length of one unit in seconds at quarter-note ``tempo`` (BPM)."""
        return 240.0 / (tempo * self.denominator)

    def bar_seconds(self, tempo: float) -> float:
        """Length of one bar in seconds at quarter-note ``tempo`` (BPM)."""
        return self.numerator * self.unit_seconds(tempo)

    @property
    def group_starts(self) -> np.ndarray:
        """Unit positions where the accent groups start, shape (n_groups,)."""
        return np.concatenate([[0], np.cumsum(self.groups)[:-1]]).astype(float)

    @property
    def grid(self) -> float:
        """Step of the eighth-note grid, in units (0.5 for x/4, 1 for x/8)."""
        return 0.5 if self.denominator == 4 else 1.0


def _meter(name: str, groups: tuple[int, ...]) -> Meter:
    num, den = (int(v) for v in name.split("/"))
    assert sum(groups) == num, name
    return Meter(name, num, den, groups)


METERS: dict[str, Meter] = {m.name: m for m in (
    _meter("4/4", (2, 2)),
    _meter("3/4", (3,)),
    _meter("6/8", (3, 3)),
    _meter("5/4", (3, 2)),
    _meter("7/4", (2, 2, 3)),
    _meter("5/8", (3, 2)),
    _meter("7/8", (2, 2, 3)),
    _meter("9/8", (2, 2, 2, 3)),
    _meter("10/8", (3, 3, 2, 2)),
    _meter("11/8", (3, 3, 3, 2)),
    _meter("13/8", (3, 3, 3, 2, 2)),
    _meter("15/8", (2, 2, 2, 3, 3, 3)),
)}
"""Every meter the corpus uses, by name."""

COMMON_METERS: frozenset[str] = frozenset({"4/4", "3/4", "6/8"})
"""Meters that do not count as odd."""

ODD_METERS: tuple[str, ...] = tuple(m for m in METERS if m not in COMMON_METERS)
"""Odd meters, for prog sections."""


def get_meter(name: str) -> Meter:
    """The :class:`Meter` called ``name``; raises ProgrockError if unknown."""
    try:
        return METERS[name]
    except KeyError:
        raise ProgrockError(f"unknown meter {name!r}; known: {sorted(METERS)}") from None


def bar_meters(spec: str) -> list[Meter]:
    """The cycle of bar meters a section spec names.

    ``"7/8"`` is every bar in 7/8; ``"7/8|4/4"`` alternates 7/8 and 4/4 bars.
    """
    return [get_meter(name) for name in spec.split("|")]


def drum_pattern(meter: Meter) -> dict[str, np.ndarray]:
    """Kick, snare and hi-hat positions of one bar, in units.

    x/4 meters: a kick on every group start and the snare on the group's other
    beats (4/4 = 2+2 gives the rock backbeat: kick 1 & 3, snare 2 & 4; 3/4
    gives kick-snare-snare). x/8 meters: the groups' starts alternate kick and
    snare (7/8 = 2+2+3 gives K . S . K . .). Hats play the eighth-note grid.

    Returns
    -------
    dict
        ``"kick"``, ``"snare"``, ``"hat"``: np.ndarray [shape=(n_hits,)] of unit
        positions in ``[0, numerator)``; ``"accent"``: the group starts.
    """
    starts = meter.group_starts
    if meter.denominator == 4:
        kick = starts
        snare = np.array([s + k for s, g in zip(starts, meter.groups) for k in range(1, g)],
                         dtype=float)
    else:
        kick = starts[0::2]
        snare = starts[1::2]
    hat = np.arange(0.0, meter.numerator, meter.grid)
    return {"kick": kick, "snare": snare, "hat": hat, "accent": starts}


# --- pitch -----------------------------------------------------------------

SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
}
"""Seven-note scales as semitones above the tonic."""

PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def midi_to_hz(midi: np.ndarray | float) -> np.ndarray | float:
    """Equal-tempered frequency in Hz of MIDI note number(s) (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=float) - 69.0) / 12.0)


def scale_midi(tonic: int, mode: str, degrees: np.ndarray | int, *, octave: int = 4) -> np.ndarray:
    """MIDI notes of scale ``degrees`` (0-based, may exceed 6 or be negative).

    Parameters
    ----------
    tonic : int
        Pitch class of the key, 0 (C) to 11 (B).
    mode : str
        A key of :data:`SCALES`.
    degrees : int or np.ndarray [shape=(n,)]
        Scale steps above the tonic of ``octave``.
    octave : int
        MIDI octave of degree 0 (4: the tonic lies in C4..B4).
    """
    steps = SCALES[mode]
    d = np.asarray(degrees, dtype=int)
    return 12 * (octave + 1) + tonic + 12 * (d // 7) + np.take(steps, d % 7)


def chord_degrees(root: int, *, kind: str = "triad") -> tuple[int, ...]:
    """Scale degrees of a diatonic chord on ``root``.

    ``kind``: ``"triad"`` (1-3-5), ``"seventh"`` (1-3-5-7), ``"sus4"``
    (1-4-5), ``"sus2"`` (1-2-5), ``"add9"`` (1-3-5-9), ``"power"`` (1-5-8).
    """
    table = {"triad": (0, 2, 4), "seventh": (0, 2, 4, 6), "sus4": (0, 3, 4),
             "sus2": (0, 1, 4), "add9": (0, 2, 4, 8), "power": (0, 4, 7)}
    return tuple(root + k for k in table[kind])


POP_PROGRESSIONS: tuple[tuple[int, ...], ...] = (
    (0, 4, 5, 3), (0, 3, 4, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 3, 0, 4),
    (0, 0, 3, 4), (0, 6, 3, 0), (0, 3, 5, 4),
)
"""Four-chord loops as 0-based scale degrees (I-V-vi-IV is (0, 4, 5, 3))."""


def prog_progression(rng: np.random.Generator, *, length: int) -> list[int]:
    """A wandering modal progression of ``length`` scale degrees, starting on the tonic."""
    out = [0]
    for _ in range(length - 1):
        step = int(rng.choice([-3, -2, -1, 1, 2, 3, 4, 5]))
        out.append((out[-1] + step) % 7)
    return out
