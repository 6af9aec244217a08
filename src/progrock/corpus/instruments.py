"""Synthesised instruments for the demo corpus: pure numpy and scipy.

Each *note* function renders one note (or one chord) as a short array that the
song renderer adds into its track buffer; each *track* effect runs once over a
whole track (cabinet filter, Leslie, band limits, filter sweep). Oscillators
read band-limited wavetables built by inverse FFT, so nothing aliases and
nothing loops over samples in Python.

Timbre parameters (``p``) are plain dicts of floats drawn per song by
:func:`timbre_params`, so every song sounds a little different and the
parameters land in the song plan.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal

from progrock.constants import SR
from progrock.corpus.music import midi_to_hz

TABLE_SIZE = 4096
"""Samples in one wavetable period (a power of two)."""

KEYBOARDS: frozenset[str] = frozenset({"organ", "strings", "synth_lead", "pad"})
"""Instruments counted as keyboards."""

INSTRUMENTS: tuple[str, ...] = ("drums", "bass", "guitar_dist", "guitar_clean", "guitar_lead",
                                "voice", "organ", "strings", "flute", "synth_lead", "pad")
"""Every instrument name a plan may use."""

_VOWELS = np.array([  # formant frequencies (Hz) and relative gains of five vowels
    [(800, 1.0), (1150, 0.5), (2900, 0.2)],   # a
    [(400, 1.0), (2000, 0.35), (2600, 0.2)],  # e
    [(300, 1.0), (2300, 0.3), (3000, 0.2)],   # i
    [(450, 1.0), (800, 0.6), (2830, 0.1)],    # o
    [(325, 1.0), (700, 0.4), (2530, 0.1)],    # u
])

# Hammond footages 16', 5 1/3', 8', 4', 2 2/3', 2', 1 3/5', 1 1/3', 1' as
# multiples of half the played frequency.
_DRAWBAR_HARMONICS = (1, 3, 2, 4, 6, 8, 10, 12, 16)


# --- oscillators and envelopes ----------------------------------------------

@lru_cache(maxsize=512)
def _table(amps: tuple[float, ...]) -> np.ndarray:
    spec = np.zeros(TABLE_SIZE // 2 + 1, dtype=complex)
    spec[1:len(amps) + 1] = -1j * np.asarray(amps) * (TABLE_SIZE / 2)
    table = np.fft.irfft(spec, TABLE_SIZE)
    return (table / max(np.abs(table).max(), 1e-9)).astype(np.float32)


def wavetable(kind: str, f_max: float, *, sr: int = SR, max_harmonics: int = 64,
              top_hz: float | None = None) -> np.ndarray:
    """A band-limited single-period waveform.

    Parameters
    ----------
    kind : str
        ``"saw"``, ``"square"``, ``"sine"``, ``"bass"`` (saw with a steeper
        roll-off) or ``"flute"``.
    f_max : float
        Highest fundamental (Hz) the table will be played at; harmonics above
        ``min(0.45 * sr, top_hz)`` at that pitch are left out.

    Returns
    -------
    np.ndarray [shape=(TABLE_SIZE,), dtype=float32]
        One period, peak-normalised.
    """
    limit = min(0.45 * sr, top_hz or sr)
    n = int(max(1, min(max_harmonics, limit // max(f_max, 1.0))))
    k = np.arange(1, n + 1, dtype=float)
    if kind == "saw":
        amps = 1.0 / k
    elif kind == "square":
        amps = np.where(k % 2 == 1, 1.0 / k, 0.0)
    elif kind == "bass":
        amps = k ** -1.7
    elif kind == "flute":
        amps = np.array([1.0, 0.22, 0.07, 0.03])[:n]
    else:
        amps = np.ones(1)
    return _table(tuple(np.round(amps, 6)))


def drawbar_table(drawbars: tuple[float, ...], f_max: float, *, sr: int = SR) -> np.ndarray:
    """Organ wavetable for ``drawbars`` (9 levels in [0, 1]); played at half the note frequency."""
    n = max(_DRAWBAR_HARMONICS) + 1
    amps = np.zeros(n)
    for h, level in zip(_DRAWBAR_HARMONICS, drawbars):
        if h * f_max / 2 < 0.45 * sr:
            amps[h - 1] += level
    return _table(tuple(np.round(amps, 6)))


def osc(table: np.ndarray, freq: float | np.ndarray, n: int, *, sr: int = SR,
        phase: float = 0.0) -> np.ndarray:
    """Read ``n`` samples of ``table`` at ``freq``.

    Parameters
    ----------
    table : np.ndarray [shape=(TABLE_SIZE,)]
    freq : float or np.ndarray [shape=(n,)]
        Frequency in Hz, constant or per sample (vibrato, glides).
    n : int
        Samples to render.
    phase : float
        Start phase in cycles.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
    """
    if np.ndim(freq) == 0:
        ph = phase + np.arange(n) * (float(freq) / sr)
    else:
        ph = phase + np.cumsum(freq, dtype=float) / sr
    idx = (ph * TABLE_SIZE).astype(np.int64) & (TABLE_SIZE - 1)
    return table[idx]


def adsr(n: int, gate: int, *, sr: int = SR, attack: float = 0.005, decay: float = 0.1,
         sustain: float = 0.8, release: float = 0.05) -> np.ndarray:
    """Piecewise-linear ADSR envelope.

    Parameters
    ----------
    n : int
        Length of the note buffer in samples (gate plus release tail).
    gate : int
        Samples the key is held.
    attack, decay, release : float
        Seconds. sustain : float, level in [0, 1].

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
    """
    a = max(1.0, attack * sr)
    d = max(1.0, decay * sr)
    g = float(max(gate, 2))
    xs = [0.0, min(a, g - 1), min(a + d, g), g, g + max(1.0, release * sr)]
    level_at_gate = 1.0 if g <= a else (sustain if g >= a + d else
                                         1.0 - (1.0 - sustain) * (g - a) / d)
    ys = [0.0, 1.0 if g > a else g / a, sustain if g >= a + d else level_at_gate,
          level_at_gate, 0.0]
    return np.interp(np.arange(n, dtype=np.float32), xs, ys).astype(np.float32)


def _vibrato(f0: float, n: int, *, sr: int, rate: float, depth: float,
             delay: float = 0.15, scoop: float = 0.0) -> np.ndarray:
    t = np.arange(n, dtype=np.float32) / sr
    ramp = np.clip((t - delay) / 0.25, 0.0, 1.0)
    f = f0 * (1.0 + depth * ramp * np.sin(2 * np.pi * rate * t))
    if scoop:
        f *= 2.0 ** (-scoop / 12.0 * np.exp(-t / 0.04))
    return f


def _biquad(kind: str, fc: float, q: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ cookbook biquad (``"lowpass"`` or ``"bandpass"``, 0 dB peak)."""
    w0 = 2 * np.pi * min(fc, 0.45 * sr) / sr
    alpha = np.sin(w0) / (2 * q)
    cw = np.cos(w0)
    if kind == "lowpass":
        b = np.array([(1 - cw) / 2, 1 - cw, (1 - cw) / 2])
    else:
        b = np.array([alpha, 0.0, -alpha])
    a = np.array([1 + alpha, -2 * cw, 1 - alpha])
    return b / a[0], a / a[0]


# --- drums -------------------------------------------------------------------

def drum_kit(p: dict[str, float], rng: np.random.Generator, *, sr: int = SR) -> dict[str, np.ndarray]:
    """Render one song's drum samples once.

    Parameters
    ----------
    p : dict
        Kit parameters from :func:`timbre_params` (``kick_hz``, ``snare_hz``,
        ``snare_decay``, ``hat_decay``, ``brightness``, ``tom_hz``).
    rng : np.random.Generator
        Noise source.

    Returns
    -------
    dict of str to np.ndarray [shape=(n,), dtype=float32]
        ``kick``, ``snare``, ``hat``, ``hat_open``, ``crash``, ``ride``,
        ``tom_hi``, ``tom_mid``, ``tom_lo``; peak about 1.
    """
    def t_(seconds):
        return np.arange(int(seconds * sr)) / sr

    def noise(seconds):
        return rng.standard_normal(int(seconds * sr))

    def hp(x, hz, order=2):
        return signal.sosfilt(signal.butter(order, hz, "highpass", fs=sr, output="sos"), x)

    def bp(x, lo, hi):
        return signal.sosfilt(signal.butter(2, [lo, min(hi, 0.45 * sr)], "bandpass", fs=sr,
                                            output="sos"), x)

    def sweep(f_hi, f_lo, tau_pitch, tau_amp, seconds):
        t = t_(seconds)
        f = f_lo + (f_hi - f_lo) * np.exp(-t / tau_pitch)
        return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / tau_amp)

    bright = p["brightness"]
    kit = {}
    click = bp(noise(0.01), 1500, 6000) * np.exp(-t_(0.01) / 0.002)
    kick = sweep(p["kick_hz"] * 3.0, p["kick_hz"], 0.03, p["kick_decay"], 0.5)
    kick[:click.size] += 0.3 * bright * click
    kit["kick"] = kick
    t = t_(0.4)
    body = np.sin(2 * np.pi * p["snare_hz"] * t) * np.exp(-t / 0.05)
    rattle = bp(noise(0.4), 1200, 4000 + 5000 * bright) * np.exp(-t / p["snare_decay"])
    kit["snare"] = 0.6 * body + 1.2 * rattle
    metal = sum(signal.square(2 * np.pi * f * t_(1.5)) for f in (205, 304, 370, 523, 540, 800))
    metal = hp(metal + 2.0 * noise(1.5), 6000 + 2000 * bright, 4)
    kit["hat"] = metal[: int(0.12 * sr)] * np.exp(-t_(0.12) / p["hat_decay"])
    kit["hat_open"] = metal[: int(0.5 * sr)] * np.exp(-t_(0.5) / 0.25)
    tc = t_(2.5)
    kit["crash"] = hp(noise(2.5), 3500, 2) * np.exp(-tc / 0.9) * (1 - np.exp(-tc / 0.003))
    tr = t_(1.2)
    bell = sum(np.sin(2 * np.pi * f * tr) for f in (620 * p["ride_ratio"], 1480, 2310))
    kit["ride"] = (0.5 * hp(noise(1.2), 5000, 2) + 0.25 * bell) * np.exp(-tr / 0.6)
    for name, ratio in (("tom_hi", 2.0), ("tom_mid", 1.5), ("tom_lo", 1.0)):
        tom = sweep(p["tom_hz"] * ratio * 1.4, p["tom_hz"] * ratio, 0.05, 0.22, 0.6)
        kit[name] = tom + 0.1 * bp(noise(0.6), 300, 3000) * np.exp(-t_(0.6) / 0.05)
    return {k: (v / np.abs(v).max()).astype(np.float32) for k, v in kit.items()}


# --- pitched notes -----------------------------------------------------------

def bass_note(midi: float, dur: float, *, p: dict, sr: int = SR) -> np.ndarray:
    """Electric bass: a dark saw with a plucked decay. Returns [shape=(n,)] float32."""
    f = float(midi_to_hz(midi))
    gate = int(dur * sr)
    n = gate + int(0.04 * sr)
    x = osc(wavetable("bass", f, sr=sr, max_harmonics=int(p["bass_harmonics"])), f, n, sr=sr)
    env = adsr(n, gate, sr=sr, attack=0.004, decay=p["bass_decay"], sustain=0.45, release=0.03)
    return x * env


def guitar_chord(midis, dur: float, *, p: dict, distorted: bool, sr: int = SR) -> np.ndarray:
    """Strummed guitar chord (power chord through a fuzz, or clean pluck).

    Parameters
    ----------
    midis : sequence of float
        Notes from low to high; strummed low to high over ~10 ms per string.
    dur : float
        Held length in seconds.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
    """
    gate = int(dur * sr)
    n = gate + int((0.06 if distorted else 0.3) * sr)
    out = np.zeros(n, dtype=np.float32)
    t = np.arange(n, dtype=np.float32) / sr
    for i, m in enumerate(midis):
        f = float(midi_to_hz(m)) * (1 + 0.0015 * (i - 1))
        off = int(i * p["strum"] * sr)
        if off >= n:
            break
        if distorted:
            x = osc(wavetable("saw", f, sr=sr, max_harmonics=24), f, n - off, sr=sr, phase=0.1 * i)
        else:
            bright = osc(wavetable("saw", f, sr=sr, max_harmonics=16), f, n - off, sr=sr)
            dark = osc(wavetable("bass", f, sr=sr, max_harmonics=6), f, n - off, sr=sr)
            tt = t[: n - off]
            x = bright * np.exp(-tt / 0.12) + dark * np.exp(-tt / p["clean_decay"])
        out[off:] += x
    if distorted:
        drive = p["drive"]
        out = np.tanh(drive * out / max(1, len(midis))) / np.tanh(drive)
        out *= adsr(n, gate, sr=sr, attack=0.003, decay=0.2, sustain=0.75, release=0.05)
    else:
        out *= adsr(n, gate, sr=sr, attack=0.002, decay=0.01, sustain=1.0, release=0.25)
        out /= max(1, len(midis)) ** 0.5
    return out


def lead_guitar_note(midi: float, dur: float, *, p: dict, sr: int = SR) -> np.ndarray:
    """Overdriven single-note guitar line with delayed vibrato. Returns [shape=(n,)] float32."""
    f0 = float(midi_to_hz(midi))
    gate = int(dur * sr)
    n = gate + int(0.08 * sr)
    f = _vibrato(f0, n, sr=sr, rate=5.5, depth=0.008, delay=0.25, scoop=0.3)
    x = osc(wavetable("saw", f0 * 1.01, sr=sr, max_harmonics=30), f, n, sr=sr)
    x = np.tanh(p["drive"] * 1.5 * x) / np.tanh(p["drive"] * 1.5)
    return x * adsr(n, gate, sr=sr, attack=0.004, decay=0.4, sustain=0.7, release=0.06)


def voice_note(midi: float, dur: float, *, p: dict, vowel: int, rng: np.random.Generator,
               sr: int = SR) -> np.ndarray:
    """Voice-like lead: a saw with vibrato and a pitch scoop through three vowel formants.

    Parameters
    ----------
    vowel : int
        0..4 for a, e, i, o, u.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
    """
    f0 = float(midi_to_hz(midi))
    gate = int(dur * sr)
    n = gate + int(0.09 * sr)
    f = _vibrato(f0, n, sr=sr, rate=p["vibrato_hz"], depth=0.012, delay=0.18, scoop=0.6)
    src = osc(wavetable("saw", f0 * 1.02, sr=sr, max_harmonics=48), f, n, sr=sr)
    src = src + 0.05 * rng.standard_normal(n).astype(np.float32)
    out = np.zeros(n)
    for fc, gain in _VOWELS[vowel % len(_VOWELS)]:
        b, a = _biquad("bandpass", fc * p["formant_shift"], fc / 90.0 + 2.0, sr)
        out += gain * signal.lfilter(b, a, src)
    env = adsr(n, gate, sr=sr, attack=0.035, decay=0.15, sustain=0.85, release=0.08)
    return (2.5 * out * env).astype(np.float32)


def organ_chord(midis, dur: float, *, p: dict, sr: int = SR) -> np.ndarray:
    """Drawbar organ chord with key click; the Leslie is a track effect. Returns [shape=(n,)]."""
    gate = int(dur * sr)
    n = gate + int(0.03 * sr)
    drawbars = tuple(p[f"drawbar_{i}"] for i in range(9))
    out = np.zeros(n, dtype=np.float32)
    for m in midis:
        f = float(midi_to_hz(m))
        out += osc(drawbar_table(drawbars, f, sr=sr), f / 2, n, sr=sr)
    env = adsr(n, gate, sr=sr, attack=0.006, decay=0.01, sustain=1.0, release=0.03)
    click = np.zeros(n, dtype=np.float32)
    k = min(n, int(0.004 * sr))
    click[:k] = np.linspace(1.0, 0.0, k) * np.sin(np.arange(k) * 2.1)
    return (out / len(midis) ** 0.5 * env + 0.15 * p["click"] * click).astype(np.float32)


def strings_chord(midis, dur: float, *, p: dict, sr: int = SR) -> np.ndarray:
    """Mellotron-like strings: three detuned saws per note, slow attack, tape wow.

    Band-limited to ~5 kHz here and again by the track filter. Returns [shape=(n,)].
    """
    gate = int(dur * sr)
    n = gate + int(0.35 * sr)
    wow = 1.0 + 0.003 * np.sin(2 * np.pi * 0.6 * np.arange(n) / sr)
    out = np.zeros(n, dtype=np.float32)
    for m in midis:
        f = float(midi_to_hz(m))
        table = wavetable("saw", f, sr=sr, max_harmonics=40, top_hz=5000)
        for cents in (-p["detune_cents"], 0.0, p["detune_cents"]):
            out += osc(table, f * 2 ** (cents / 1200) * wow, n, sr=sr, phase=cents / 50)
    env = adsr(n, gate, sr=sr, attack=p["string_attack"], decay=0.2, sustain=0.9, release=0.3)
    return out / (3 * len(midis) ** 0.5) * env


def pad_chord(midis, dur: float, *, p: dict, sr: int = SR) -> np.ndarray:
    """Soft synth pad: two detuned squares per note, long attack and release. Returns [shape=(n,)]."""
    gate = int(dur * sr)
    n = gate + int(0.6 * sr)
    out = np.zeros(n, dtype=np.float32)
    for m in midis:
        f = float(midi_to_hz(m))
        table = wavetable("square", f, sr=sr, max_harmonics=12, top_hz=3000)
        out += osc(table, f * 1.003, n, sr=sr) + osc(table, f / 1.003, n, sr=sr, phase=0.3)
    env = adsr(n, gate, sr=sr, attack=p["pad_attack"], decay=0.3, sustain=0.8, release=0.6)
    return out / (2 * len(midis) ** 0.5) * env


def flute_note(midi: float, dur: float, *, p: dict, rng: np.random.Generator,
               sr: int = SR) -> np.ndarray:
    """Flute: near-sine with vibrato plus band-passed breath noise. Returns [shape=(n,)] float32."""
    f0 = float(midi_to_hz(midi))
    gate = int(dur * sr)
    n = gate + int(0.08 * sr)
    f = _vibrato(f0, n, sr=sr, rate=4.8, depth=0.006, delay=0.2)
    tone = osc(wavetable("flute", f0, sr=sr), f, n, sr=sr)
    b, a = _biquad("bandpass", min(2.0 * f0, 4000.0), 1.5, sr)
    breath = signal.lfilter(b, a, rng.standard_normal(n)).astype(np.float32)
    t = np.arange(n, dtype=np.float32) / sr
    chiff = 1.0 + 3.0 * np.exp(-t / 0.03)
    env = adsr(n, gate, sr=sr, attack=0.06, decay=0.1, sustain=0.85, release=0.07)
    return (tone + p["breath"] * breath * chiff) * env


def synth_lead_note(midi: float, dur: float, *, p: dict, sr: int = SR) -> tuple[np.ndarray, np.ndarray]:
    """Analog-style lead: two detuned saws; the filter envelope is returned for the track.

    Returns
    -------
    audio : np.ndarray [shape=(n,), dtype=float32]
    cutoff : np.ndarray [shape=(n,), dtype=float32]
        Low-pass cutoff in Hz for these samples (attack sweep), applied by
        :func:`synth_filter` on the whole track.
    """
    f = float(midi_to_hz(midi))
    gate = int(dur * sr)
    n = gate + int(0.1 * sr)
    table = wavetable("saw", f * 1.01, sr=sr, max_harmonics=60)
    x = osc(table, f * 2 ** (p["detune_cents"] / 1200), n, sr=sr) + osc(table, f, n, sr=sr, phase=0.5)
    env = adsr(n, gate, sr=sr, attack=0.01, decay=0.3, sustain=0.8, release=0.1)
    t = np.arange(n, dtype=np.float32) / sr
    cutoff = p["cutoff_hz"] * (1.0 + p["env_amount"] * np.exp(-t / p["sweep_s"]))
    return 0.5 * x * env, cutoff.astype(np.float32)


# --- track effects -----------------------------------------------------------

def _active(x: np.ndarray) -> tuple[int, int]:
    nz = np.flatnonzero(x)
    if nz.size == 0:
        return 0, 0
    return int(nz[0]), int(nz[-1]) + 1


def cabinet(x: np.ndarray, *, p: dict, sr: int = SR) -> np.ndarray:
    """Guitar cabinet: high-pass 90 Hz and 4th-order low-pass at ``p["cab_hz"]``. Shape kept."""
    sos = np.vstack([signal.butter(1, 90, "highpass", fs=sr, output="sos"),
                     signal.butter(4, p["cab_hz"], "lowpass", fs=sr, output="sos")])
    return signal.sosfilt(sos, x).astype(np.float32)


def band_limit(x: np.ndarray, lo: float, hi: float, *, sr: int = SR) -> np.ndarray:
    """Second-order band-pass between ``lo`` and ``hi`` Hz. Shape kept."""
    sos = signal.butter(2, [lo, min(hi, 0.45 * sr)], "bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, x).astype(np.float32)


def leslie(x: np.ndarray, *, p: dict, sr: int = SR) -> np.ndarray:
    """Rotating-speaker effect: periodic delay (Doppler) plus amplitude modulation. Shape kept."""
    lo, hi = _active(x)
    if hi <= lo:
        return x
    seg = x[lo:hi]
    phase = np.arange(seg.size, dtype=np.float32) * np.float32(2 * np.pi * p["leslie_hz"] / sr)
    pos = np.arange(seg.size, dtype=np.float32) - np.float32(0.0006 * sr) * (1 + np.sin(phase))
    np.maximum(pos, 0, out=pos)
    i0 = pos.astype(np.int64)
    frac = pos - i0
    i1 = np.minimum(i0 + 1, seg.size - 1)
    wet = (seg[i0] * (1 - frac) + seg[i1] * frac) * (1 + p["leslie_depth"] * np.sin(phase + 1.0))
    out = x.copy()
    out[lo:hi] = wet
    return out


def synth_filter(x: np.ndarray, cutoff: np.ndarray, *, q: float, sr: int = SR,
                 block: int = 256) -> np.ndarray:
    """Resonant low-pass with a time-varying cutoff, updated every ``block`` samples.

    Parameters
    ----------
    x : np.ndarray [shape=(n,)]
    cutoff : np.ndarray [shape=(n,)]
        Cutoff in Hz per sample.
    q : float
        Resonance (0.707 flat, 2-6 squelchy).

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
    """
    lo, hi = _active(x)
    out = np.zeros_like(x)
    zi = np.zeros(2)
    for s in range(lo, hi, block):
        e = min(s + block, hi)
        b, a = _biquad("lowpass", float(max(cutoff[s], 80.0)), q, sr)
        out[s:e], zi = signal.lfilter(b, a, x[s:e], zi=zi)
    return out


def timbre_params(rng: np.random.Generator) -> dict[str, float]:
    """Draw one song's timbre: kit tuning, drive, drawbars, detune, filter sweep...

    The same distribution is used for every song whatever its class.

    Returns
    -------
    dict of str to float
    """
    u = rng.uniform
    p = {
        "kick_hz": u(45, 65), "kick_decay": u(0.12, 0.3), "snare_hz": u(160, 240),
        "snare_decay": u(0.08, 0.2), "hat_decay": u(0.02, 0.06), "brightness": u(0.3, 1.0),
        "tom_hz": u(80, 120), "ride_ratio": u(0.9, 1.2),
        "bass_harmonics": float(rng.integers(6, 20)), "bass_decay": u(0.2, 0.8),
        "strum": u(0.004, 0.018), "drive": u(3.0, 12.0), "clean_decay": u(0.4, 1.5),
        "cab_hz": u(2500, 5000), "vibrato_hz": u(4.5, 6.5), "formant_shift": u(0.85, 1.2),
        "click": u(0.0, 1.0), "leslie_hz": float(rng.choice([0.8, 6.5])) * u(0.9, 1.1),
        "leslie_depth": u(0.1, 0.35), "detune_cents": u(5, 18), "string_attack": u(0.12, 0.4),
        "pad_attack": u(0.3, 0.9), "breath": u(0.15, 0.5), "cutoff_hz": u(500, 1500),
        "env_amount": u(1.5, 5.0), "sweep_s": u(0.08, 0.4), "resonance": u(1.5, 5.0),
    }
    levels = rng.uniform(0, 1, 9) * np.array([0.6, 0.5, 1.0, 0.8, 0.6, 0.6, 0.3, 0.3, 0.4])
    levels[2] = max(levels[2], 0.7)
    p.update({f"drawbar_{i}": float(v) for i, v in enumerate(levels)})
    return {k: round(float(v), 5) for k, v in p.items()}
