"""Song plans (the musical ground truth) and their rendering to audio.

:func:`plan_song` draws a :class:`SongPlan` for one class: sections with their
meter, tempo, key, loudness and instrument parts, per-song timbre and mix.
:func:`synthesize_song` renders a plan deterministically: every random choice
made while rendering comes from ``plan.render_seed``, so the plan alone fixes
the audio.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage, signal

from progrock.constants import CLASSES, SR
from progrock.corpus import instruments as ins
from progrock.corpus.music import (
    ODD_METERS,
    POP_PROGRESSIONS,
    bar_meters,
    chord_degrees,
    drum_pattern,
    prog_progression,
    scale_midi,
)
from progrock.errors import ProgrockError

MIN_DURATION: float = 24.0
"""Shortest song in seconds at any ``duration_scale`` (snippets are 10 s and start 10 s in)."""

TAIL_SECONDS: float = 1.5
"""Silence-bound tail after the last bar, for releases and reverb, in seconds."""

TARGET_DBFS: float = -20.0
"""Loudness every song is normalised to: RMS in dB relative to full scale."""

ROLES: tuple[str, ...] = ("drums", "bass", "rhythm", "pad", "lead")
"""Parts a section may have; ``Section.parts`` maps a role to an instrument."""

ENERGY_GAIN: tuple[float, ...] = (0.28, 0.62, 1.0)
"""Linear gain of quiet (0), medium (1) and loud (2) sections."""

_BASE_LEVEL_DB = {"drums": 0.0, "bass": -8.0, "guitar_dist": -7.0, "guitar_clean": -2.0,
                  "guitar_lead": -12.0, "voice": -1.0, "organ": -5.0, "strings": 0.0,
                  "flute": -2.0, "synth_lead": -4.0, "pad": -5.0}


@dataclass
class Section:
    """One section of a song.

    Attributes
    ----------
    name : str
        ``intro``, ``verse``, ``chorus``, ``bridge``, ``solo``, ``theme``,
        ``interlude`` or ``outro``.
    material : str
        Key of ``SongPlan.materials``: repeats of a section share progression and melody.
    bars : int
        Number of bars.
    meter : str
        ``"4/4"``, ``"7/8"``, or a cycle of bar meters such as ``"7/8|4/4"``.
    tempo : float
        Quarter-note tempo in BPM.
    tonic : int
        Pitch class of the key (0 = C).
    mode : str
        Scale name (see :data:`progrock.corpus.music.SCALES`).
    energy : int
        0 quiet, 1 medium, 2 loud.
    parts : dict of str to str
        Role (see :data:`ROLES`) to instrument name.
    lead_style : str
        ``"melody"`` (sung line, repeated motif), ``"solo"`` (improvised run),
        ``"theme"`` (one-bar riff) or ``"none"``.
    fill : bool
        A drum fill in the last bar.
    """

    name: str
    material: str
    bars: int
    meter: str
    tempo: float
    tonic: int
    mode: str
    energy: int
    parts: dict[str, str]
    lead_style: str = "none"
    fill: bool = False

    def bar_durations(self) -> np.ndarray:
        """Seconds of every bar, shape (bars,)."""
        cycle = [m.bar_seconds(self.tempo) for m in bar_meters(self.meter)]
        return np.array([cycle[i % len(cycle)] for i in range(self.bars)])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return float(self.bar_durations().sum())

    @property
    def odd(self) -> bool:
        """True if any bar is in an odd meter."""
        return any(m.odd for m in bar_meters(self.meter))


@dataclass
class SongPlan:
    """Everything that decides one song's audio.

    Attributes
    ----------
    label : str
        The true musical class, ``"prog"`` or ``"nonprog"``.
    difficulty : float
        The corpus difficulty it was drawn at.
    duration_scale : float
        Multiplier applied to the drawn length.
    target_duration : float
        Drawn length in seconds; :attr:`duration` is the rendered length.
    render_seed : int
        Seed of every random choice made while rendering.
    sections : list of Section
    materials : dict
        Material name to ``{"progression": [...], "chord": kind, "bars_per_chord": int,
        "seed": int}``.
    timbre : dict of str to float
        Instrument parameters (see :func:`progrock.corpus.instruments.timbre_params`).
    mix : dict of str to float
        ``gain_<instrument>`` (dB), ``reverb_wet``, ``reverb_s``, ``bright``,
        ``bass_boost``, ``noise_db`` (relative to the mix RMS), ``humanize_ms``.
    style : dict of str to str
        ``guitar`` (``chug``/``sustain``), ``bass`` (``eighths``/``groups``/``melodic``),
        ``hats`` (``hat``/``ride``).
    """

    label: str
    difficulty: float
    duration_scale: float
    target_duration: float
    render_seed: int
    sections: list[Section]
    materials: dict[str, dict]
    timbre: dict[str, float]
    mix: dict[str, float]
    style: dict[str, str] = field(default_factory=dict)

    # --- derived summary -----------------------------------------------------
    @property
    def duration(self) -> float:
        """Rendered length in seconds (sections plus :data:`TAIL_SECONDS`)."""
        return float(sum(s.duration for s in self.sections) + TAIL_SECONDS)

    @property
    def instruments(self) -> list[str]:
        """Instruments playing anywhere in the song, sorted."""
        return sorted({i for s in self.sections for i in s.parts.values()})

    @property
    def keyboards(self) -> list[str]:
        """Keyboard instruments playing anywhere in the song, sorted."""
        return [i for i in self.instruments if i in ins.KEYBOARDS]

    @property
    def meters(self) -> list[str]:
        """Meter of each section."""
        return [s.meter for s in self.sections]

    @property
    def tempi(self) -> list[float]:
        """Tempo of each section in BPM."""
        return [s.tempo for s in self.sections]

    @property
    def tempo_changes(self) -> int:
        """Section boundaries where the tempo changes by more than 2 %."""
        t = np.array(self.tempi)
        return int(np.sum(np.abs(np.diff(t)) > 0.02 * t[:-1]))

    @property
    def key_changes(self) -> int:
        """Section boundaries where the tonic or the mode changes."""
        keys = [(s.tonic, s.mode) for s in self.sections]
        return int(sum(a != b for a, b in zip(keys, keys[1:])))

    @property
    def mean_tempo(self) -> float:
        """Duration-weighted mean tempo in BPM."""
        w = np.array([s.duration for s in self.sections])
        return float(np.dot(w, self.tempi) / w.sum())

    def summary(self) -> dict:
        """The derived facts: duration, sections, meters, tempi, keys, instruments."""
        return {"duration": round(self.duration, 3), "n_sections": len(self.sections),
                "meters": self.meters, "tempi": self.tempi, "mean_tempo": round(self.mean_tempo, 2),
                "tempo_changes": self.tempo_changes, "key_changes": self.key_changes,
                "odd_meter_sections": sum(s.odd for s in self.sections),
                "instruments": self.instruments, "keyboards": self.keyboards}

    def to_dict(self) -> dict:
        """A JSON-serialisable dict: the plan's fields plus :meth:`summary`."""
        d = asdict(self)
        d["summary"] = self.summary()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SongPlan:
        """Inverse of :meth:`to_dict` (``summary`` is recomputed, not read)."""
        d = {k: v for k, v in d.items() if k != "summary"}
        d["sections"] = [Section(**s) for s in d["sections"]]
        return cls(**d)


# --- planning -------------------------------------------------------------------

def plan_song(label: str, rng: np.random.Generator, *, difficulty: float = 0.3,
              duration_scale: float = 1.0) -> SongPlan:
    """Draw a song plan for class ``label``.

    Parameters
    ----------
    label : str
        ``"prog"`` or ``"nonprog"``: the musical class to write.
    rng : np.random.Generator
        Source of every choice; the same state gives the same plan.
    difficulty : float
        In [0, 1]: how far each class borrows the other's traits (tempo and key
        changes, odd bars and keyboards in nonprog; 4/4 sections, no keyboards
        and shorter songs in prog).
    duration_scale : float
        Multiplies the drawn song length (never below :data:`MIN_DURATION`).

    Returns
    -------
    SongPlan
    """
    if label not in CLASSES:
        raise ProgrockError(f"label must be one of {CLASSES}, not {label!r}")
    if not 0.0 <= difficulty <= 1.0:
        raise ProgrockError(f"difficulty must lie in [0, 1], not {difficulty}")
    if not duration_scale > 0:
        raise ProgrockError(f"duration_scale must be positive, not {duration_scale}")
    timbre = ins.timbre_params(rng)
    mix = _mix_params(rng)
    style = {"guitar": str(rng.choice(["chug", "sustain"])),
             "bass": str(rng.choice(["eighths", "groups", "melodic"])),
             "hats": str(rng.choice(["hat", "hat", "ride"]))}
    if label == "nonprog":
        sections, materials, target = _plan_nonprog(rng, difficulty)
    else:
        sections, materials, target = _plan_prog(rng, difficulty)
    target = max(target * duration_scale, MIN_DURATION)
    _fit_length(sections, target)
    return SongPlan(label=label, difficulty=float(difficulty), duration_scale=float(duration_scale),
                    target_duration=round(float(target), 3),
                    render_seed=int(rng.integers(2**31)), sections=sections,
                    materials=materials, timbre=timbre, mix=mix, style=style)


def _mix_params(rng: np.random.Generator) -> dict[str, float]:
    """Per-song mix: the same distribution for both classes."""
    mix = {f"gain_{name}": level + rng.uniform(-3, 3) for name, level in _BASE_LEVEL_DB.items()}
    mix.update(reverb_wet=rng.uniform(0.05, 0.35), reverb_s=rng.uniform(0.6, 2.5),
               bright=rng.uniform(-0.5, 0.8), bass_boost=rng.uniform(-0.4, 0.6),
               noise_db=rng.uniform(-70, -38), humanize_ms=rng.uniform(0, 12))
    return {k: round(float(v), 4) for k, v in mix.items()}


def _material(rng: np.random.Generator, progression, *, chord: str = "triad",
              bars_per_chord: int = 1) -> dict:
    return {"progression": [int(v) for v in progression], "chord": chord,
            "bars_per_chord": int(bars_per_chord), "seed": int(rng.integers(2**31))}


_NONPROG_TEMPLATES = (
    ("intro", "verse", "chorus", "verse", "chorus", "outro"),
    ("intro", "verse", "chorus", "verse", "chorus", "bridge", "chorus", "outro"),
    ("verse", "chorus", "verse", "chorus", "solo", "chorus"),
    ("intro", "verse", "verse", "chorus", "verse", "chorus", "chorus"),
    ("intro", "verse", "chorus", "verse", "chorus", "solo", "chorus", "outro"),
    ("verse", "chorus", "verse", "chorus", "bridge", "chorus", "chorus"),
)
_NOMINAL_BARS = {"intro": 4, "verse": 8, "chorus": 8, "bridge": 8, "solo": 8, "theme": 8,
                 "interlude": 8, "outro": 4}


def _plan_nonprog(rng: np.random.Generator, d: float) -> tuple[list[Section], dict, float]:
    meter = "3/4" if rng.random() < 0.2 else "4/4"
    tempo = float(round(rng.uniform(78, 165)))
    tonic = int(rng.integers(12))
    mode = str(rng.choice(["major", "minor", "mixolydian"], p=[0.55, 0.35, 0.1]))
    names = list(_NONPROG_TEMPLATES[rng.integers(len(_NONPROG_TEMPLATES))])
    if rng.random() < 0.5 * d:  # a longer arrangement borrowed from the other side
        names.insert(int(rng.integers(2, len(names))), str(rng.choice(["bridge", "solo"])))
    prog = rng.permutation(len(POP_PROGRESSIONS))
    materials = {"verse": _material(rng, POP_PROGRESSIONS[prog[0]]),
                 "chorus": _material(rng, POP_PROGRESSIONS[prog[1]]),
                 "bridge": _material(rng, POP_PROGRESSIONS[prog[2]][:2], bars_per_chord=2)}
    dist = rng.random() < 0.65
    chorus_gtr = "guitar_dist" if dist else "guitar_clean"
    verse_gtr = "guitar_clean" if (not dist or rng.random() < 0.35) else "guitar_dist"
    keyboard = None
    if rng.random() < 0.2 + 0.3 * d:
        pool = ["organ", "pad"] + (["strings", "synth_lead"] if rng.random() < d else [])
        keyboard = str(rng.choice(pool))
    quiet_intro = rng.random() < 0.15 + 0.25 * d
    sections = []
    for name in names:
        material = {"intro": "verse", "outro": "chorus", "solo": "verse"}.get(name, name)
        energy = {"chorus": 2, "solo": 2}.get(name, 1)
        gtr = chorus_gtr if energy == 2 else verse_gtr
        parts = {"drums": "drums", "bass": "bass", "rhythm": gtr}
        lead_style = "melody" if name in ("verse", "chorus", "bridge") else "none"
        if lead_style == "melody":
            parts["lead"] = "voice"
        if keyboard in ("organ", "pad", "strings") and (name != "verse" or rng.random() < 0.5):
            parts["pad"] = keyboard
        if name == "solo":
            lead = keyboard if keyboard in ("synth_lead", "organ") else "guitar_lead"
            parts["lead"], lead_style = lead, "solo"
        elif keyboard == "synth_lead" and name in ("intro", "outro"):
            parts["lead"], lead_style = "synth_lead", "theme"
        if name == "intro" and quiet_intro:
            energy = 0
            parts = {"rhythm": "guitar_clean"}
            if keyboard in ("organ", "pad", "strings"):
                parts["pad"] = keyboard
        sections.append(Section(name=name, material=material, bars=_NOMINAL_BARS[name],
                                meter=meter, tempo=tempo, tonic=tonic, mode=mode, energy=energy,
                                parts=parts, lead_style=lead_style,
                                fill=bool(rng.random() < 0.5) and energy > 0))
    # Borrowed prog traits, more of them the higher the difficulty.
    middle = [s for s in sections if s.name in ("bridge", "solo")] or sections[len(sections) // 2:-1]
    if rng.random() < 0.5 * d:  # half-time bridge, faster solo, slower outro...
        s = middle[rng.integers(len(middle))] if rng.random() < 0.7 else sections[-1]
        s.tempo = float(round(tempo * rng.choice([0.5, 0.75, 0.9, 1.15, 1.25])))
    if rng.random() < 0.25 * d:
        middle[rng.integers(len(middle))].meter = str(rng.choice(["7/8", "5/4", "7/4", "9/8"]))
    if rng.random() < 0.1 + 0.25 * d:  # the truck-driver modulation into the last chorus
        step = int(rng.choice([1, 2]))
        last = max(i for i, s in enumerate(sections) if s.name == "chorus")
        for s in sections[last:]:
            s.tonic = (s.tonic + step) % 12
    target = rng.uniform(100.0, 240.0 + 100.0 * d)
    return sections, materials, target


_PROG_MODES = ("minor", "dorian", "major", "mixolydian", "phrygian", "lydian", "harmonic_minor")
_PROG_KINDS = ("theme", "verse", "chorus", "solo", "interlude", "bridge")


def _prog_meter(rng: np.random.Generator, p_odd: float) -> str:
    """A prog section's meter: odd (or alternating odd|even) with probability ``p_odd``."""
    if rng.random() < p_odd:
        r = rng.random()
        return (str(rng.choice(ODD_METERS)) if r < 0.8 else
                f"{rng.choice(['7/8', '5/8', '7/4', '5/4'])}|{rng.choice(['4/4', '6/8', '3/4'])}")
    return str(rng.choice(["4/4", "4/4", "3/4", "6/8"]))


def _prog_parts(rng: np.random.Generator, name: str, energy: int, *, keys: list[str], flute: bool,
                soloists: list[str], quiet_pool: list[str], loud_rhythm: list[str]) -> tuple[dict[str, str], str]:
    """Who plays in a prog section, and the lead's style."""
    parts: dict[str, str] = {}
    lead_style = "none"
    if energy == 0:
        parts["rhythm"] = str(rng.choice(quiet_pool))
        if rng.random() < 0.5:
            quiet_leads = ["flute"] if flute else ["voice", "guitar_lead"]
            parts["lead"], lead_style = str(rng.choice(quiet_leads)), "melody"
    else:
        parts.update(drums="drums", bass="bass", rhythm=str(rng.choice(loud_rhythm)))
        if name in ("verse", "chorus", "bridge"):
            parts["lead"], lead_style = "voice", "melody"
        elif name == "solo":
            parts["lead"], lead_style = str(rng.choice(soloists)), "solo"
        elif name in ("theme", "outro", "intro"):
            parts["lead"], lead_style = str(rng.choice(soloists)), "theme"
    pads = [k for k in keys if k in ("strings", "pad", "organ") and k != parts.get("rhythm")]
    if pads and rng.random() < 0.6:
        parts["pad"] = str(rng.choice(pads))
    return parts, lead_style


def _plan_prog(rng: np.random.Generator, d: float) -> tuple[list[Section], dict, float]:
    base_tempo = float(rng.uniform(70, 170))
    tonic = int(rng.integers(12))
    mode = str(rng.choice(_PROG_MODES))
    n = int(rng.integers(6, 12))
    if rng.random() < 0.25 + 0.15 * d:
        keys: list[str] = []
    else:
        keys = [str(k) for k in rng.choice(["organ", "strings", "synth_lead", "pad"],
                                           size=int(rng.integers(1, 4)), replace=False,
                                           p=[0.35, 0.3, 0.25, 0.1])]
    flute = rng.random() < (0.5 if not keys else 0.3)
    soloists = [k for k in keys if k in ("organ", "synth_lead")] + ["guitar_lead"]
    soloists += ["flute"] if flute else []
    quiet_pool = [k for k in keys if k in ("organ", "strings", "pad")] + ["guitar_clean"]
    loud_rhythm = ["guitar_dist", "guitar_dist"] + [k for k in keys if k in ("organ", "strings")]
    names = ["intro"]
    for _ in range(n - 2):
        names.append(str(rng.choice(_PROG_KINDS, p=[0.2, 0.22, 0.13, 0.2, 0.15, 0.1])))
    if "solo" not in names:
        names[int(rng.integers(2, n - 1))] = "solo"
    names.append("outro")
    materials: dict[str, dict] = {}
    sections = []
    cur_tempo, cur_tonic, cur_mode = base_tempo, tonic, mode
    p_odd = 0.75 - 0.35 * d
    steady = rng.random() < 0.3 + 0.2 * d  # one tempo throughout (key changes instead)
    for i, name in enumerate(names):
        reuse = [m for m in materials if m.startswith(name)]
        if name == "outro" and "theme" in materials and rng.random() < 0.6:
            material = "theme"
        elif reuse and rng.random() < 0.6:
            material = str(rng.choice(reuse))
        else:
            material = f"{name}{len(reuse) + 1}" if reuse else name
            materials[material] = _material(
                rng, prog_progression(rng, length=int(rng.integers(2, 7))),
                chord=str(rng.choice(["triad", "seventh", "sus4", "sus2", "add9"])),
                bars_per_chord=int(rng.choice([1, 1, 2])))
        if i > 0 and not steady and rng.random() < 0.3 - 0.1 * d:
            cur_tempo = float(np.clip(base_tempo * rng.choice([0.67, 0.75, 0.8, 1.25, 1.33, 1.5]),
                                      60, 200))
        if i > 0 and rng.random() < 0.3:
            cur_tonic = (cur_tonic + int(rng.choice([2, -2, 5, -5, 3, -3, 7]))) % 12
            if rng.random() < 0.4:
                cur_mode = str(rng.choice(_PROG_MODES))
        energy = {"intro": int(rng.choice([0, 0, 1])), "interlude": 0, "verse": 1, "bridge": 1,
                  "outro": int(rng.choice([0, 1, 2]))}.get(name, 2)
        meter = _prog_meter(rng, p_odd)
        parts, lead_style = _prog_parts(rng, name, energy, keys=keys, flute=flute, soloists=soloists,
                                        quiet_pool=quiet_pool, loud_rhythm=loud_rhythm)
        sections.append(Section(name=name, material=material, bars=_NOMINAL_BARS[name],
                                meter=meter, tempo=round(cur_tempo, 1), tonic=cur_tonic,
                                mode=cur_mode, energy=energy, parts=parts, lead_style=lead_style,
                                fill=bool(rng.random() < 0.6) and energy > 0))
    # The contract: at least one odd meter and at least one tempo or key change.
    if not any(s.odd for s in sections):
        loud = [s for s in sections if s.energy > 0] or sections
        loud[rng.integers(len(loud))].meter = str(rng.choice(ODD_METERS))
    plan_probe = SongPlan("prog", d, 1.0, 0.0, 0, sections, materials, {}, {})
    if plan_probe.tempo_changes == 0 and plan_probe.key_changes == 0:
        k = int(rng.integers(1, len(sections)))
        for s in sections[k:]:
            s.tonic = (s.tonic + int(rng.choice([2, 3, 5, 7]))) % 12
    target = rng.uniform(150.0 - 60.0 * d, 360.0)
    return sections, materials, target


def _fit_length(sections: list[Section], target: float) -> None:
    """Scale the sections' bar counts in place so the song lasts about ``target`` seconds."""
    body = target - TAIL_SECONDS
    nominal = sum(s.duration for s in sections)
    factor = body / nominal
    for s in sections:
        step = len(bar_meters(s.meter))
        s.bars = max(step, int(round(s.bars * factor / step)) * step)
    order = sorted(range(len(sections)), key=lambda i: -sections[i].energy)
    i = 0
    while sum(s.duration for s in sections) < max(body * 0.97, MIN_DURATION - TAIL_SECONDS + 0.5):
        s = sections[order[i % len(order)]]
        s.bars += len(bar_meters(s.meter))
        i += 1


# --- rendering --------------------------------------------------------------------

class _Mixer:
    """Track buffers of one song: notes are added at a time, effects run per track."""

    def __init__(self, n: int, sr: int, jitter: float, rng: np.random.Generator):
        self.n, self.sr, self.jitter, self.rng = n, sr, jitter, rng
        self.tracks: dict[str, np.ndarray] = {}
        self.cutoff = None

    def add(self, track: str, x: np.ndarray, t: float, gain: float = 1.0) -> int:
        buf = self.tracks.get(track)
        if buf is None:
            buf = self.tracks[track] = np.zeros(self.n, dtype=np.float32)
        s = int(round((t + self.jitter * self.rng.standard_normal()) * self.sr))
        s = min(max(s, 0), self.n)
        e = min(self.n, s + x.size)
        buf[s:e] += gain * x[: e - s]
        return s


def _section_grid(sec: Section, start: float) -> dict[str, np.ndarray]:
    """Eighth-note grid of a section: time, bar, position in the bar, group start flag."""
    times, bars, pos, accent, step = [], [], [], [], []
    t = start
    meters = bar_meters(sec.meter)
    for b in range(sec.bars):
        m = meters[b % len(meters)]
        u = m.unit_seconds(sec.tempo)
        p = np.arange(0.0, m.numerator, m.grid)
        times.append(t + p * u)
        bars.append(np.full(p.size, b))
        pos.append(p)
        accent.append(np.isin(p, m.group_starts))
        step.append(np.full(p.size, m.grid * u))
        t += m.numerator * u
    return {"t": np.concatenate(times), "bar": np.concatenate(bars), "pos": np.concatenate(pos),
            "accent": np.concatenate(accent), "dt": np.concatenate(step)}


def _chord_of_bar(mat: dict, bar: int) -> int:
    prog = mat["progression"]
    return prog[(bar // mat["bars_per_chord"]) % len(prog)]


def _chord_midis(sec: Section, root: int, kind: str, *, low: int) -> np.ndarray:
    """Close-voiced chord with its root in [low, low + 12)."""
    midis = scale_midi(sec.tonic, sec.mode, np.array(chord_degrees(root, kind=kind)), octave=0)
    return midis + 12 * ((low - midis[0]) // 12 + (1 if (low - midis[0]) % 12 else 0))


def _render_drums(mx: _Mixer, kit: dict, sec: Section, start: float, style: dict,
                  gain: float) -> None:
    t = start
    meters = bar_meters(sec.meter)
    cymbal = "ride" if (style["hats"] == "ride" and sec.energy == 2) else "hat"
    for b in range(sec.bars):
        m = meters[b % len(meters)]
        u = m.unit_seconds(sec.tempo)
        pat = drum_pattern(m)
        fill_from = m.numerator / 2 if (sec.fill and b == sec.bars - 1) else m.numerator + 1
        for k, p in enumerate(pat["kick"]):
            if p < fill_from:
                mx.add("drums", kit["kick"], t + p * u, gain * (1.0 if k == 0 else 0.85))
        for p in pat["snare"]:
            if p < fill_from:
                mx.add("drums", kit["snare"], t + p * u, gain * 0.8)
        for p in pat["hat"]:
            if p < fill_from:
                acc = 1.0 if p in pat["accent"] else 0.6
                mx.add("drums", kit[cymbal], t + p * u, gain * 0.35 * acc)
        if fill_from < m.numerator:
            steps = np.arange(fill_from, m.numerator, m.grid / 2 if u * m.grid > 0.2 else m.grid)
            toms = ("snare", "tom_hi", "tom_mid", "tom_lo")
            for j, p in enumerate(steps):
                mx.add("drums", kit[toms[min(3, j * 4 // len(steps))]], t + p * u, gain * 0.7)
        if sec.energy == 2 and b % 8 == 0:
            mx.add("drums", kit["crash"], t, gain * 0.5)
        t += m.numerator * u


def _render_bass(mx: _Mixer, sec: Section, grid: dict, mat: dict, p: dict, style: str,
                 rng: np.random.Generator, gain: float) -> None:
    for i in range(grid["t"].size):
        if style == "groups" and not grid["accent"][i]:
            continue
        root = _chord_of_bar(mat, int(grid["bar"][i]))
        deg = root
        if style == "melodic" and not grid["accent"][i]:
            if rng.random() < 0.35:
                continue
            deg = root + int(rng.choice([0, 4, 7, 1, -1, 2]))
        midi = scale_midi(sec.tonic, sec.mode, deg, octave=1)
        midi = midi + 12 if midi < 28 else midi
        if style == "groups":
            j = i + 1
            while j < grid["t"].size and not grid["accent"][j]:
                j += 1
            dur = (grid["t"][j] if j < grid["t"].size else grid["t"][i] + grid["dt"][i]) - grid["t"][i]
        else:
            dur = grid["dt"][i] * 0.9
        mx.add("bass", ins.bass_note(float(midi), float(dur), p=p, sr=mx.sr), grid["t"][i],
               gain * (1.0 if grid["accent"][i] else 0.8))


def _chord_spans(sec: Section, grid: dict, mat: dict, end: float) -> list[tuple[float, float, int]]:
    """(start, duration, root degree) of each run of bars holding one chord."""
    bar_starts = np.array([grid["t"][grid["bar"] == b][0] for b in range(sec.bars)] + [end])
    spans = []
    b = 0
    while b < sec.bars:
        root = _chord_of_bar(mat, b)
        e = b + 1
        while e < sec.bars and _chord_of_bar(mat, e) == root and (e % mat["bars_per_chord"]):
            e += 1
        spans.append((float(bar_starts[b]), float(bar_starts[e] - bar_starts[b]), root))
        b = e
    return spans


def _render_rhythm(mx: _Mixer, inst: str, sec: Section, grid: dict, mat: dict, p: dict,
                   style: dict, end: float, gain: float, track: str) -> None:
    if inst in ("organ", "strings", "pad"):
        fn = {"organ": ins.organ_chord, "strings": ins.strings_chord, "pad": ins.pad_chord}[inst]
        for t0, dur, root in _chord_spans(sec, grid, mat, end):
            midis = _chord_midis(sec, root, mat["chord"], low=48)
            mx.add(track, fn(midis, dur, p=p, sr=mx.sr), t0, gain)
        return
    for i in range(grid["t"].size):
        root = _chord_of_bar(mat, int(grid["bar"][i]))
        if inst == "guitar_dist":
            if style["guitar"] == "sustain" and not grid["accent"][i]:
                continue
            low = int(scale_midi(sec.tonic, sec.mode, root, octave=2))
            low = low + 12 if low < 40 else low
            midis = [low, low + 7, low + 12]
            if style["guitar"] == "sustain":
                j = i + 1
                while j < grid["t"].size and not grid["accent"][j]:
                    j += 1
                dur = (grid["t"][j] if j < grid["t"].size else end) - grid["t"][i]
            else:
                dur = grid["dt"][i] * 0.85
            x = ins.guitar_chord(midis, float(dur), p=p, distorted=True, sr=mx.sr)
            mx.add(track, x, grid["t"][i], gain * (1.0 if grid["accent"][i] else 0.75))
        else:  # clean arpeggio
            midis = _chord_midis(sec, root, mat["chord"], low=52)
            note = midis[i % len(midis)]
            x = ins.guitar_chord([note], float(grid["dt"][i] * 2), p=p, distorted=False, sr=mx.sr)
            mx.add(track, x, grid["t"][i], gain * (1.0 if grid["accent"][i] else 0.8))


def _motif(rng: np.random.Generator, n_steps: int, *, density: float, span: int,
           rest_tail: float) -> list[tuple[int, int, int]]:
    """(step, length in steps, scale degree) notes of a phrase of ``n_steps`` grid steps."""
    on = rng.random(n_steps) < density
    on[0] = True
    on[int(n_steps * (1 - rest_tail)):] = False
    onsets = np.flatnonzero(on)
    deg = int(rng.choice([0, 2, 4]))
    notes = []
    for k, s in enumerate(onsets):
        nxt = onsets[k + 1] if k + 1 < onsets.size else int(n_steps * (1 - rest_tail)) or n_steps
        deg = deg + int(rng.choice([-3, -2, -1, -1, 0, 1, 1, 2, 3]))
        deg = -4 - deg if deg < -2 else (2 * span - deg if deg > span else deg)  # reflect
        notes.append((int(s), int(max(1, min(nxt - s, 4))), deg))
    return notes


_LEAD_OCTAVE = {"voice": 4, "flute": 5, "synth_lead": 4, "guitar_lead": 4, "organ": 4,
                "strings": 4, "pad": 4}


def _render_lead(mx: _Mixer, inst: str, sec: Section, grid: dict, mat: dict, p: dict,
                 rng: np.random.Generator, gain: float) -> None:
    mrng = np.random.default_rng([mat["seed"], len(grid["t"]) % 97])
    bars = grid["bar"]
    notes: list[tuple[int, int, int]] = []  # (grid index, length in steps, degree)
    if sec.lead_style == "solo":
        notes = _motif(rng, grid["t"].size, density=0.8, span=13, rest_tail=0.0)
    else:
        phrase_bars = 1 if sec.lead_style == "theme" else 2
        density = 0.75 if sec.lead_style == "theme" else 0.55
        for b0 in range(0, sec.bars, phrase_bars):
            idx = np.flatnonzero((bars >= b0) & (bars < b0 + phrase_bars))
            motif_rng = np.random.default_rng([mat["seed"], idx.size, (b0 // phrase_bars) % 2])
            motif = _motif(motif_rng, idx.size, density=density, span=9,
                           rest_tail=0.25 if sec.lead_style == "melody" else 0.0)
            root = _chord_of_bar(mat, b0) if sec.lead_style == "theme" else 0
            notes += [(int(idx[s]), n, d + root) for s, n, d in motif]
    octave = _LEAD_OCTAVE[inst]
    for gi, n_steps, deg in notes:
        dur = float(grid["dt"][gi] * n_steps * 0.92)
        chord = np.array(chord_degrees(_chord_of_bar(mat, int(bars[gi]))))
        if grid["accent"][gi] and sec.lead_style != "solo":  # chord tone on strong beats
            cand = (chord[:, None] + 7 * np.arange(-2, 4)[None, :]).ravel()
            deg = int(cand[np.argmin(np.abs(cand - deg))])
        midi = float(scale_midi(sec.tonic, sec.mode, deg, octave=octave))
        t0 = grid["t"][gi]
        if inst == "voice":
            x = ins.voice_note(midi, dur, p=p, vowel=int(mrng.integers(5)), rng=rng, sr=mx.sr)
        elif inst == "flute":
            x = ins.flute_note(midi, dur, p=p, rng=rng, sr=mx.sr)
        elif inst == "guitar_lead":
            x = ins.lead_guitar_note(midi, dur, p=p, sr=mx.sr)
        elif inst == "synth_lead":
            x, cut = ins.synth_lead_note(midi, dur, p=p, sr=mx.sr)
            s = mx.add("synth_lead", x, t0, gain)
            if mx.cutoff is None:
                mx.cutoff = np.full(mx.n, p["cutoff_hz"], dtype=np.float32)
            e = min(mx.n, s + cut.size)
            mx.cutoff[s:e] = cut[: e - s]
            continue
        else:
            fn = {"organ": ins.organ_chord, "strings": ins.strings_chord, "pad": ins.pad_chord}[inst]
            x = fn([midi], dur, p=p, sr=mx.sr)
        mx.add(inst, x, t0, gain)


def _master(y: np.ndarray, plan: SongPlan, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Reverb, tone, noise floor and loudness normalisation of the mixed song."""
    mix = plan.mix
    n_ir = int(mix["reverb_s"] * sr)
    t = np.arange(n_ir) / sr
    ir = rng.standard_normal(n_ir) * np.exp(-6.9 * t / mix["reverb_s"])
    ir = signal.sosfilt(signal.butter(1, 4000, "lowpass", fs=sr, output="sos"), ir)
    ir /= np.sqrt(np.sum(ir**2))
    y = y + mix["reverb_wet"] * signal.oaconvolve(y, ir)[: y.size]
    hp = signal.sosfilt(signal.butter(1, 3000, "highpass", fs=sr, output="sos"), y)
    lp = signal.sosfilt(signal.butter(1, 200, "lowpass", fs=sr, output="sos"), y)
    y = y + mix["bright"] * hp + mix["bass_boost"] * lp
    rms = np.sqrt(np.mean(y**2)) + 1e-12
    noise = signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(y.size)) * np.sqrt(0.19)
    y = y + rms * 10 ** (mix["noise_db"] / 20) * noise
    fade = min(y.size, int(TAIL_SECONDS * sr))
    y[y.size - fade:] *= np.linspace(1.0, 0.0, fade) ** 2
    return normalize_loudness(y, sr=sr)


def normalize_loudness(y: np.ndarray, *, sr: int = SR, target_dbfs: float = TARGET_DBFS,
                       ceiling: float = 0.97) -> np.ndarray:
    """Scale to an RMS of ``target_dbfs`` with a smooth peak limiter below ``ceiling``.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]

    Returns
    -------
    np.ndarray [shape=(n_samples,), dtype=float32]
        RMS within 0.05 dB of the target, peaks at most ``ceiling``.
    """
    y = np.asarray(y, dtype=np.float64)
    target = 10 ** (target_dbfs / 20)
    win = max(1, int(0.005 * sr))
    for _ in range(6):
        rms = np.sqrt(np.mean(y**2))
        if rms <= 0:
            break
        y = y * (target / rms)
        env = ndimage.maximum_filter1d(np.abs(y), size=4 * win)
        gain = np.minimum(1.0, ceiling / np.maximum(env, 1e-12))
        gain = ndimage.minimum_filter1d(gain, size=4 * win)
        gain = ndimage.uniform_filter1d(gain, size=2 * win)
        y = y * gain
        if abs(20 * np.log10(np.sqrt(np.mean(y**2)) / target)) < 0.05:
            break
    return np.clip(y, -ceiling, ceiling).astype(np.float32)


def synthesize_song(plan: SongPlan, *, sr: int = SR) -> np.ndarray:
    """Render a song plan to audio.

    Parameters
    ----------
    plan : SongPlan
    sr : int
        Sample rate in Hz.

    Returns
    -------
    np.ndarray [shape=(n_samples,), dtype=float32]
        Mono, ``n_samples = round(plan.duration * sr)``, RMS at :data:`TARGET_DBFS`.
    """
    if isinstance(plan, dict):
        plan = SongPlan.from_dict(plan)
    n = int(round(plan.duration * sr))
    rng = np.random.default_rng([plan.render_seed, 0])
    p = plan.timbre
    kit = ins.drum_kit(p, np.random.default_rng([plan.render_seed, 1]), sr=sr)
    mx = _Mixer(n, sr, plan.mix["humanize_ms"] / 1000.0, rng)
    start = 0.0
    for k, sec in enumerate(plan.sections):
        end = start + sec.duration
        srng = np.random.default_rng([plan.render_seed, 2, k])
        mat = plan.materials[sec.material]
        grid = _section_grid(sec, start)
        g = ENERGY_GAIN[sec.energy]
        for role, inst in sec.parts.items():
            level = g * 10 ** (plan.mix[f"gain_{inst}"] / 20)
            if role == "drums":
                _render_drums(mx, kit, sec, start, plan.style, level)
            elif role == "bass":
                _render_bass(mx, sec, grid, mat, p, plan.style["bass"], srng, level)
            elif role in ("rhythm", "pad"):
                _render_rhythm(mx, inst, sec, grid, mat, p, plan.style, end, level,
                               track=inst)
            elif role == "lead":
                _render_lead(mx, inst, sec, grid, mat, p, srng, level)
        start = end
    y = np.zeros(n, dtype=np.float32)
    for name, buf in mx.tracks.items():
        if name in ("guitar_dist", "guitar_lead"):
            buf = ins.cabinet(buf, p=p, sr=sr)
        elif name == "organ":
            buf = ins.leslie(buf, p=p, sr=sr)
        elif name == "strings":
            buf = ins.band_limit(buf, 250.0, 5000.0, sr=sr)
        elif name == "pad":
            buf = ins.band_limit(buf, 120.0, 3000.0, sr=sr)
        elif name == "synth_lead":
            buf = ins.synth_filter(buf, mx.cutoff, q=p["resonance"], sr=sr)
        y += buf
    return _master(y, plan, np.random.default_rng([plan.render_seed, 3]), sr)
