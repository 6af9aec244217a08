"""Structure of a whole song from its ``seed43`` feature matrix: tempo, metre, key, sections.

Progressive rock shows itself across a song as much as in any ten seconds of
it: odd and changing metres, tempo and key changes, long multi-section forms,
quiet passages against loud ones, material that returns. The functions here
describe those traits from the per-frame features the cache already holds
(:func:`progrock.features.compute_features` with the ``seed43`` set; no second decode of the audio):

* local analyses over windows of about 20 s (a new window every 5 s): tempo
  (:func:`tempo_curve`), metre evidence from the beat-synchronous accent
  pattern (:func:`metre_evidence`), key and mode (:func:`key_curve`);
* sections from a self-similarity novelty curve over 1-s blocks
  (:func:`section_boundaries`), and what they hold: loudness
  (:func:`section_loudness`), timbre (:func:`timbre_variety`), returns
  (:func:`reprise`); how much of the harmony comes back at all, whatever the
  sections (:func:`repetition`: verse-chorus songs repeat their chord
  sequences, through-composed ones move on);
* one vector per song (:func:`describe_song`, named by
  :data:`DESCRIPTOR_NAMES`) and the arrays to draw along the song
  (:func:`song_timeline`).

Every function is pure over numpy arrays; times are in seconds, tempi in beats
per minute (BPM), levels in dB (power, ``ref=1``, as the mel rows of
``seed43``). A song's frame rate travels as the keyword ``frame_rate``
(frames per second; 22,050 / 512 for ``seed43``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import librosa
import numpy as np
import scipy.ndimage

from progrock.errors import ProgrockError
from progrock.features.sets import FeatureConfig

WINDOW_SECONDS: float = 20.0
"""Length of the analysis windows of tempo, metre and key, in seconds."""

HOP_SECONDS: float = 5.0
"""Step between analysis windows, in seconds."""

MAX_LAG_SECONDS: float = 8.0
"""Longest beat period the tempo estimator considers, in seconds (librosa's ``ac_size``)."""

MIN_WINDOWS: int = 3
"""A new tempo, key or metre counts once it holds for this many consecutive windows.

Three windows at the 5-s hop: the value must hold over 10 s of window
centres. A window straddling a change reads a mixture of both sides (for keys,
often a third key between them, e.g. G major between C and D major) for up to
about 10 s of centres, which must not count as a change.
"""

MIN_TEMPO_JUMP: float = 0.10
"""Smallest relative tempo jump counted as a change (10 %), octave errors folded away."""

BLOCK_SECONDS: float = 1.0
"""Length of the blocks the self-similarity matrix compares, in seconds."""

KERNEL_SECONDS: float = 8.0
"""Half-width of the novelty kernel, in seconds; also the shortest section."""

NOVELTY_DELTA: float = 0.1
"""How far a novelty peak must rise above its local mean to mark a section boundary."""

PHRASE_SECONDS: float = 8.0
"""Length of the harmonic phrases :func:`repetition` compares: about four bars at 120 BPM."""

MIN_RETURN_SECONDS: float = 16.0
"""A phrase counts as coming back only where it starts at least this long before or after
itself (two phrases): a section that loops a riff is not yet a return."""

QUIET_DB: float = 10.0
"""A section this many dB below the song's loudest section counts as quiet."""

ODD_GROUPINGS: tuple[int, ...] = (5, 7, 10, 11, 13, 14, 15, 22, 26)
"""Bar lengths in tatums (half beats) of odd metres: 5/8, 7/8, 5/4, 11/8, 13/8, 7/4, 15/8 (7/8+4/4)
counted in quarter-note beats; and 11/8 and 13/8 when the beat tracker follows the eighth-note
pulse, as it often does in x/8 metres (a bar of 11 or 13 beats is 22 or 26 tatums). Lengths that
are whole numbers of 2-beat or 3-beat groups (18, 20, 28, 30: three and five bars of 3/4, the
backbeat of 4/4) are neither odd nor regular."""

REGULAR_GROUPINGS: tuple[int, ...] = (4, 6, 8, 12, 16, 24, 32)
"""Bar lengths in tatums of duple and triple metres: 2/4, 3/4, 4/4, 6/4 and 12/8, two bars of 4/4;
and 24 and 32 (12 and 16 beats): two bars of 6/4, or of 4/4 with the tracker on the eighths."""

MAX_GROUPING: int = 32
"""Longest bar length the metre evidence looks for, in tatums: 16 beats."""

# Krumhansl and Kessler's probe-tone ratings, tonic first (Krumhansl 1990, "Cognitive
# Foundations of Musical Pitch"), as used by the Krumhansl-Schmuckler key finder.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

KEY_NAMES: tuple[str, ...] = tuple(f"{p} major" for p in _PITCH_CLASSES) + tuple(
    f"{p} minor" for p in _PITCH_CLASSES)
"""Names of the 24 key indices :func:`key_curve` returns: 0-11 C..B major, 12-23 C..B minor."""


@lru_cache(maxsize=1)
def _seed43_rows() -> dict[str, np.ndarray]:
    names = FeatureConfig.named("seed43").feature_names
    rows = {prefix: np.array([i for i, n in enumerate(names) if n.startswith(prefix)])
            for prefix in ("mfcc_", "mel_db_", "chroma_", "onset_strength")}
    return {"n": len(names), "mfcc": rows["mfcc_"], "mel_db": rows["mel_db_"],
            "chroma": rows["chroma_"], "onset": rows["onset_strength"]}




# ---------------------------------------------------------------------------
# Windows and changes


def analysis_windows(n_frames: int, *, frame_rate: float, window_seconds: float = WINDOW_SECONDS,
                     hop_seconds: float = HOP_SECONDS) -> tuple[np.ndarray, int]:
    """Start frames and length of the analysis windows over a song.

    Windows lie inside the song, one every ``hop_seconds`` and one more ending
    at the song's end; a song shorter than a window gets one window, the whole song.

    Parameters
    ----------
    n_frames : int
        Frames in the song (at least 1).
    frame_rate : float
        Frames per second.
    window_seconds, hop_seconds : float
        Window length and step, in seconds.

    Returns
    -------
    starts : np.ndarray [shape=(n_windows,), dtype=int64]
        First frame of each window.
    length : int
        Frames per window: ``min(n_frames, round(window_seconds * frame_rate))``.
    """
    length = max(1, min(n_frames, int(round(window_seconds * frame_rate))))
    hop = max(1, int(round(hop_seconds * frame_rate)))
    starts = np.arange(0, n_frames - length + 1, hop, dtype=np.int64)
    if starts[-1] < n_frames - length:
        starts = np.append(starts, n_frames - length)
    return starts, length


def window_times(starts: np.ndarray, length: int, *, frame_rate: float) -> np.ndarray:
    """Centres of the windows from :func:`analysis_windows`, in seconds.

    Returns
    -------
    np.ndarray [shape=(n_windows,), dtype=float64]
    """
    return (np.asarray(starts, dtype=np.float64) + length / 2.0) / frame_rate


def stable_changes(values: np.ndarray, *, same: Callable[[object, object], bool] | None = None,
                   min_windows: int = MIN_WINDOWS) -> tuple[np.ndarray, list]:
    """Where a sequence of per-window values settles on a new value, ignoring brief flickers.

    A value becomes the current one once it holds for ``min_windows``
    consecutive windows (``same`` decides what holds: equality by default).
    The first value that holds is the start, not a change; a window that
    straddles two sections and reads something else for fewer than
    ``min_windows`` windows changes nothing.

    Parameters
    ----------
    values : np.ndarray [shape=(n_windows,)]
    same : callable (a, b) -> bool, optional
        Whether two values count as one; ``a == b`` when omitted.
    min_windows : int >= 1

    Returns
    -------
    changes : np.ndarray [shape=(n_changes,), dtype=int64]
        Index of the first window of each new value.
    levels : list
        The values that held, in order: ``len(levels) == n_changes + 1``, or
        ``[]`` when no value ever held for ``min_windows`` windows.
    """
    same = same or (lambda a, b: a == b)
    current, candidate, since, count = None, None, 0, 0
    changes, levels = [], []
    for i, v in enumerate(values):
        if current is not None and same(v, current):
            candidate, count = None, 0
            continue
        if candidate is not None and same(v, candidate):
            count += 1
        else:
            candidate, since, count = v, i, 1
        if count >= min_windows:
            if current is not None:
                changes.append(since)
            current, candidate, count = candidate, None, 0
            levels.append(current)
    return np.asarray(changes, dtype=np.int64), levels


# ---------------------------------------------------------------------------
# Tempo


def tempo_curve(onset_envelope: np.ndarray, *, frame_rate: float, window_seconds: float = WINDOW_SECONDS,
                hop_seconds: float = HOP_SECONDS, start_bpm: float = 120.0,
                max_lag_seconds: float = MAX_LAG_SECONDS) -> tuple[np.ndarray, np.ndarray]:
    """Local tempo along the song: one estimate per analysis window.

    Each window's autocorrelation tempogram (``librosa.feature.tempogram``,
    Hann-windowed over the whole window) is weighed by librosa's log-normal
    tempo prior around ``start_bpm`` and its best period taken
    (``librosa.feature.rhythm.tempo``). A window without onsets reads the
    prior's peak.

    Parameters
    ----------
    onset_envelope : np.ndarray [shape=(n_frames,)]
        Onset strength per frame (row ``onset_strength`` of ``seed43``).
    frame_rate : float
        Frames per second.
    window_seconds, hop_seconds : float
        Analysis window and step, in seconds.
    start_bpm : float
        Centre of the tempo prior, in BPM.
    max_lag_seconds : float
        Longest beat period considered, in seconds.

    Returns
    -------
    times : np.ndarray [shape=(n_windows,), dtype=float64]
        Window centres, in seconds.
    bpm : np.ndarray [shape=(n_windows,), dtype=float64]
        Tempo of each window, in BPM.
    """
    on = np.asarray(onset_envelope, dtype=np.float64)
    starts, length = analysis_windows(len(on), frame_rate=frame_rate, window_seconds=window_seconds,
                                      hop_seconds=hop_seconds)
    # A song shorter than 2 s is zero-padded to 2 s, so that tempi down to 30 BPM have a lag.
    size = max(length, int(round(2.0 * frame_rate)))
    segments = np.zeros((len(starts), size))
    segments[:, :length] = on[starts[:, None] + np.arange(length)]
    tg = librosa.feature.tempogram(onset_envelope=segments, sr=frame_rate, hop_length=1,
                                   win_length=size, center=False)
    n_lags = min(size, int(round(max_lag_seconds * frame_rate)) + 1)
    bpm = librosa.feature.rhythm.tempo(tg=tg[:, :n_lags], sr=frame_rate, hop_length=1,
                                       start_bpm=start_bpm, aggregate=None)
    return window_times(starts, length, frame_rate=frame_rate), bpm.reshape(-1).astype(np.float64)


def octave_distance(bpm_a: float, bpm_b: float) -> float:
    """Distance of two tempi in octaves with octave errors folded away: 0 to 0.5.

    120 and 240 BPM are 0 apart, 120 and 150 BPM 0.32, 120 and 180 BPM 0.42.
    """
    d = np.log2(bpm_b / bpm_a)
    return float(abs(d - np.round(d)))


def tempo_changes(bpm: np.ndarray, *, min_jump: float = MIN_TEMPO_JUMP,
                  min_windows: int = MIN_WINDOWS) -> np.ndarray:
    """Windows where the tempo settles on a new value.

    A change is a jump of more than ``min_jump`` (relative, octave errors
    folded away by :func:`octave_distance`) that holds for ``min_windows``
    windows (:func:`stable_changes`).

    Parameters
    ----------
    bpm : np.ndarray [shape=(n_windows,)]
        Tempo curve from :func:`tempo_curve`, in BPM.
    min_jump : float
        Smallest relative jump, e.g. 0.1 for 10 %.
    min_windows : int

    Returns
    -------
    np.ndarray [shape=(n_changes,), dtype=int64]
        Index of the first window at each new tempo.
    """
    tol = np.log2(1.0 + min_jump)
    changes, _ = stable_changes(np.asarray(bpm, dtype=np.float64), min_windows=min_windows,
                                same=lambda a, b: octave_distance(a, b) <= tol)
    return changes


def tempo_spread(bpm: np.ndarray) -> float:
    """Spread of the tempo curve: standard deviation of log2 tempo, in octaves, octave errors folded.

    Each window's deviation from the median tempo is folded into
    [-0.5, 0.5] octave, so a tracker that jumps between 120 and 240 BPM reads
    no spread. 0 for fewer than two windows.
    """
    bpm = np.asarray(bpm, dtype=np.float64)
    if len(bpm) < 2:
        return 0.0
    d = np.log2(bpm / np.median(bpm))
    return float(np.std(d - np.round(d)))


# ---------------------------------------------------------------------------
# Metre


def beat_accents(onset_envelope: np.ndarray, *, frame_rate: float, times: np.ndarray,
                 bpm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The beat-synchronous accent pattern: onset strength at every half beat (tatum).

    Beats come from ``librosa.beat.beat_track`` following the tempo curve
    (each frame takes the tempo of the nearest window centre; one tempo for
    the whole song when the curve is flat, librosa's faster path); a tatum is
    added half-way between consecutive beats. Each tatum's accent is the
    largest onset strength within one frame of it, to absorb timing jitter.
    Beats are not trimmed: librosa's trimming can run past the envelope's end
    when no frame rises above its threshold.

    Parameters
    ----------
    onset_envelope : np.ndarray [shape=(n_frames,)]
    frame_rate : float
        Frames per second.
    times, bpm : np.ndarray [shape=(n_windows,)]
        Tempo curve from :func:`tempo_curve` (seconds, BPM).

    Returns
    -------
    tatums : np.ndarray [shape=(n_tatums,), dtype=int64]
        Frame of each tatum, increasing; empty when no beats were found.
    accents : np.ndarray [shape=(n_tatums,), dtype=float64]
    """
    on = np.maximum(np.asarray(onset_envelope, dtype=np.float64), 0.0)
    bpm = np.asarray(bpm, dtype=np.float64)
    if len(on) < 2 or np.ptp(on) <= 1e-6 * np.max(on):
        # Flat or empty: nothing to track (librosa's tracker would divide by a zero spread).
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    if np.any(bpm != bpm[0]):
        edges = (np.asarray(times[1:]) + np.asarray(times[:-1])) / 2.0 * frame_rate
        tempo = bpm[np.searchsorted(edges, np.arange(len(on)))]
    else:
        tempo = float(bpm[0])
    _, beats = librosa.beat.beat_track(onset_envelope=on, sr=frame_rate, hop_length=1, bpm=tempo, trim=False)
    beats = np.unique(np.asarray(beats, dtype=np.int64))
    tatums = np.sort(np.concatenate([beats, (beats[:-1] + beats[1:]) // 2]))
    accents = scipy.ndimage.maximum_filter1d(on, size=3, mode="nearest")[tatums]
    return tatums, accents


def grouping_contrast(accents: np.ndarray, *, lengths: np.ndarray | None = None,
                      max_grouping: int = MAX_GROUPING) -> np.ndarray:
    """How strongly the accents repeat every L tatums, above the whole-beat lags either side.

    With ``r`` the autocorrelation of the mean-removed accents
    (``librosa.autocorrelate``) over ``r[0]``, ``c[L] = r[L] - (r[L - d] +
    r[L + d]) / 2`` where ``d`` is 1 tatum for odd ``L`` and 2 (a beat) for
    even ``L``: a bar is compared with the nearest bars a whole number of beats
    long. Accents that mark a bar of L tatums give a peak, positive ``c[L]``;
    the pulse itself (every tatum, or every beat, alike) cancels out.

    Parameters
    ----------
    accents : np.ndarray [shape=(n_tatums,) or (n_windows, n_tatums)]
        From :func:`beat_accents`, one value per half beat; one row per window.
    lengths : np.ndarray [shape=(n_windows,)], optional
        Tatums in each row (the rest is padding); all of them when omitted.
    max_grouping : int
        Longest grouping, in tatums.

    Returns
    -------
    np.ndarray [shape=(max_grouping + 1,) or (n_windows, max_grouping + 1), dtype=float64]
        ``c[L]`` for L = 0..max_grouping (``c[0] = c[1] = 0``); all 0 for a row
        whose accents do not vary or are fewer than ``max_grouping + 4``.
    """
    a = np.atleast_2d(np.asarray(accents, dtype=np.float64))
    n = np.full(len(a), a.shape[1]) if lengths is None else np.asarray(lengths)
    a = np.pad(a, ((0, 0), (0, max(0, max_grouping + 3 - a.shape[1]))))
    valid = np.arange(a.shape[1]) < n[:, None]
    mean = np.sum(a * valid, axis=1, keepdims=True) / np.maximum(n, 1)[:, None]
    r = librosa.autocorrelate(np.where(valid, a - mean, 0.0), max_size=max_grouping + 3, axis=-1)
    scale = np.max(np.abs(a) * valid, axis=1) ** 2
    ok = (n >= max_grouping + 4) & (r[:, 0] > 1e-12 * np.maximum(1.0, scale))
    r = np.divide(r, r[:, :1], out=np.zeros_like(r), where=ok[:, None])
    L = np.arange(2, max_grouping + 1)
    d = np.where(L % 2 == 1, 1, 2)
    c = np.zeros((len(a), max_grouping + 1))
    c[:, 2:] = r[:, L] - (r[:, L - d] + r[:, L + d]) / 2.0
    return c if np.ndim(accents) == 2 else c[0]


def odd_metre_score(contrast: np.ndarray, *, eps: float = 0.05) -> np.ndarray:
    """Share of odd groupings in the accent periodicity: 0 (regular) to 1 (odd).

    The strongest positive contrast at an odd bar length
    (:data:`ODD_GROUPINGS`) against the strongest at a regular one
    (:data:`REGULAR_GROUPINGS`): ``odd / (odd + regular + eps)``. ``eps``
    (in units of the normalised autocorrelation) keeps weak, noisy
    periodicities near 0.

    Parameters
    ----------
    contrast : np.ndarray [shape=(..., max_grouping + 1)]
        From :func:`grouping_contrast`.

    Returns
    -------
    np.ndarray [shape=(...)]
    """
    c = np.asarray(contrast, dtype=np.float64)
    odd = np.maximum(0.0, c[..., list(ODD_GROUPINGS)].max(axis=-1))
    regular = np.maximum(0.0, c[..., list(REGULAR_GROUPINGS)].max(axis=-1))
    return odd / (odd + regular + eps)


def metre_evidence(onset_envelope: np.ndarray, *, frame_rate: float, times: np.ndarray, bpm: np.ndarray,
                   window_seconds: float = WINDOW_SECONDS, hop_seconds: float = HOP_SECONDS) -> np.ndarray:
    """Odd-metre evidence per analysis window, from the beat-synchronous accent pattern.

    Parameters
    ----------
    onset_envelope : np.ndarray [shape=(n_frames,)]
    frame_rate : float
        Frames per second.
    times, bpm : np.ndarray [shape=(n_windows,)]
        Tempo curve from :func:`tempo_curve` over the same windows.
    window_seconds, hop_seconds : float
        The windows of :func:`tempo_curve`.

    Returns
    -------
    np.ndarray [shape=(n_windows,), dtype=float64]
        :func:`odd_metre_score` of the accents of the tatums inside each window:
        near 1 for 5/8, 7/8, 7/8+4/4..., near 0 for 4/4, 3/4 or no clear accent
        pattern (also for windows too short to hold ``MAX_GROUPING + 4`` tatums).
    """
    tatums, accents = beat_accents(onset_envelope, frame_rate=frame_rate, times=times, bpm=bpm)
    starts, length = analysis_windows(len(onset_envelope), frame_rate=frame_rate,
                                      window_seconds=window_seconds, hop_seconds=hop_seconds)
    lo = np.searchsorted(tatums, starts)
    counts = np.searchsorted(tatums, starts + length) - lo
    width = max(1, int(counts.max()))
    idx = np.minimum(lo[:, None] + np.arange(width), max(len(accents) - 1, 0))
    rows = accents[idx] if len(accents) else np.zeros((len(starts), width))
    return odd_metre_score(grouping_contrast(rows, lengths=counts))


def metre_changes(evidence: np.ndarray, *, min_windows: int = MIN_WINDOWS) -> np.ndarray:
    """Windows where the metre settles from regular to odd or back (evidence across 0.5).

    Returns
    -------
    np.ndarray [shape=(n_changes,), dtype=int64]
        Index of the first window of each new grouping class.
    """
    changes, _ = stable_changes(np.asarray(evidence) >= 0.5, min_windows=min_windows)
    return changes


# ---------------------------------------------------------------------------
# Key


def _zscore_rows(x: np.ndarray) -> np.ndarray:
    """Each row minus its mean over its standard deviation; a constant row becomes zeros."""
    x = x - x.mean(axis=-1, keepdims=True)
    sd = x.std(axis=-1, keepdims=True)
    return np.divide(x, sd, out=np.zeros_like(x), where=sd > 1e-12)


def key_profiles() -> np.ndarray:
    """Krumhansl-Kessler key profiles of the 24 keys (:data:`KEY_NAMES` order).

    Returns
    -------
    np.ndarray [shape=(24, 12), dtype=float64]
        Row k is the profile of key k over the pitch classes C..B.
    """
    major = [np.roll(_MAJOR_PROFILE, tonic) for tonic in range(12)]
    minor = [np.roll(_MINOR_PROFILE, tonic) for tonic in range(12)]
    return np.array(major + minor)


_PROFILES_Z = _zscore_rows(key_profiles())


def frame_level_db(mel_db: np.ndarray) -> np.ndarray:
    """Level of each frame in dB: the power summed over the mel bands.

    Parameters
    ----------
    mel_db : np.ndarray [shape=(n_mels, n_frames)]
        Mel bands in dB (``power_to_db`` with ``ref=1``).

    Returns
    -------
    np.ndarray [shape=(n_frames,), dtype=float64]
    """
    db = np.asarray(mel_db, dtype=np.float32)
    top = db.max(axis=0)
    power = np.exp((db - top) * np.float32(np.log(10.0) / 10.0)).sum(axis=0)
    return top.astype(np.float64) + 10.0 * np.log10(power.astype(np.float64))


def key_curve(chroma: np.ndarray, *, frame_rate: float, level_db: np.ndarray | None = None,
              window_seconds: float = WINDOW_SECONDS, hop_seconds: float = HOP_SECONDS
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Key and mode per analysis window: the Krumhansl-Schmuckler key finder on chroma.

    Each window's mean chroma is correlated with the 24 rotated
    Krumhansl-Kessler profiles (:func:`key_profiles`); the best one is the key.

    Parameters
    ----------
    chroma : np.ndarray [shape=(12, n_frames)]
        Chroma C..B per frame.
    frame_rate : float
        Frames per second.
    level_db : np.ndarray [shape=(n_frames,)], optional
        Frame levels in dB (:func:`frame_level_db`): frames are weighed by
        their amplitude, ``10 ** (level_db / 20)``, so that near-silent frames,
        whose normalised chroma is noise, do not decide the key. Equal weights
        when omitted.
    window_seconds, hop_seconds : float

    Returns
    -------
    times : np.ndarray [shape=(n_windows,), dtype=float64]
        Window centres, in seconds.
    keys : np.ndarray [shape=(n_windows,), dtype=int64]
        Index into :data:`KEY_NAMES` (0-11 major, 12-23 minor; tonic ``k % 12``).
    clarity : np.ndarray [shape=(n_windows,), dtype=float64]
        Correlation with the winning profile, -1 to 1 (0 for flat chroma, whose key reads C major).
    """
    chroma = np.asarray(chroma, dtype=np.float64)
    n = chroma.shape[1]
    w = np.ones(n) if level_db is None else 10.0 ** ((np.asarray(level_db) - np.max(level_db)) / 20.0)
    starts, length = analysis_windows(n, frame_rate=frame_rate, window_seconds=window_seconds,
                                      hop_seconds=hop_seconds)
    cw = np.concatenate([np.zeros((13, 1)), np.cumsum(np.vstack([chroma * w, w]), axis=1)], axis=1)
    sums = cw[:, starts + length] - cw[:, starts]
    mean = (sums[:12] / np.maximum(sums[12], 1e-300)).T
    corr = _zscore_rows(mean) @ _PROFILES_Z.T / 12.0
    keys = np.argmax(corr, axis=1)
    return window_times(starts, length, frame_rate=frame_rate), keys, corr[np.arange(len(keys)), keys]


def key_changes(keys: np.ndarray, *, min_windows: int = MIN_WINDOWS) -> tuple[np.ndarray, list[int]]:
    """Windows where the key settles on a new one (:func:`stable_changes` on the key indices).

    Returns
    -------
    changes : np.ndarray [shape=(n_changes,), dtype=int64]
        Index of the first window in each new key.
    keys : list of int
        The keys that held, in order (``[]`` if none held for ``min_windows`` windows).
    """
    changes, levels = stable_changes(np.asarray(keys), min_windows=min_windows)
    return changes, [int(k) for k in levels]


# ---------------------------------------------------------------------------
# Sections


EMBEDDING_GROUPS: tuple[str, ...] = ("mfcc", "mel_db", "chroma")
"""The ``seed43`` row groups of :func:`block_embedding`, in column order."""


def embedding_columns(group: str) -> slice:
    """The columns of :func:`block_embedding`'s ``X`` that hold one of :data:`EMBEDDING_GROUPS`."""
    sizes = [len(_seed43_rows()[g]) for g in EMBEDDING_GROUPS]
    i = EMBEDDING_GROUPS.index(group)
    return slice(sum(sizes[:i]), sum(sizes[:i + 1]))


def block_embedding(features: np.ndarray, *, frame_rate: float, block_seconds: float = BLOCK_SECONDS
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Feature vectors of consecutive blocks of about ``block_seconds``, for self-similarity.

    The block means of the MFCC, mel-dB and chroma rows (as ``librosa.util.sync``),
    each row standardised over the song, each of the three groups scaled by
    one over the square root of its size so that timbre, loudness and harmony
    weigh alike.

    Parameters
    ----------
    features : np.ndarray [shape=(43, n_frames)]
        A ``seed43`` matrix.
    frame_rate : float
    block_seconds : float

    Returns
    -------
    X : np.ndarray [shape=(n_blocks, 42), dtype=float64]
        Columns: MFCC, mel dB, chroma (:data:`EMBEDDING_GROUPS`, :func:`embedding_columns`).
    starts : np.ndarray [shape=(n_blocks,), dtype=int64]
        First frame of each block; a tail shorter than half a block joins the last one.
    """
    n = features.shape[1]
    size = max(1, int(round(block_seconds * frame_rate)))
    starts = np.arange(0, n, size, dtype=np.int64)
    if len(starts) > 1 and n - starts[-1] < size / 2:
        starts = starts[:-1]  # a short tail joins the last block
    counts = np.diff(np.append(starts, n))
    groups = []
    for rows in (_seed43_rows()[g] for g in EMBEDDING_GROUPS):
        block = np.add.reduceat(np.asarray(features[rows], dtype=np.float64), starts, axis=1) / counts
        groups.append(_zscore_rows(block) / np.sqrt(len(rows)))
    return np.vstack(groups).T, starts


def _unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` scaled to unit length; an all-zero row stays zero."""
    X = np.asarray(X, dtype=np.float64)
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, norm, out=np.zeros_like(X), where=norm > 1e-12)


def self_similarity(X: np.ndarray) -> np.ndarray:
    """Cosine self-similarity of the rows of ``X`` (0 where a row is all zeros).

    Equal to ``1 - librosa.segment.recurrence_matrix(X.T, metric="cosine",
    mode="distance", full=True)`` off the diagonal (a test checks it); computed
    as one matrix product because the k-NN graph librosa builds through
    scikit-learn costs more than a song's whole feature extraction.

    Parameters
    ----------
    X : np.ndarray [shape=(n_blocks, n_dims)]

    Returns
    -------
    np.ndarray [shape=(n_blocks, n_blocks), dtype=float64]
        Values in [-1, 1]; 1 on the diagonal of non-zero rows.
    """
    U = _unit_rows(X)
    return np.clip(U @ U.T, -1.0, 1.0)


def novelty_curve(X: np.ndarray, *, kernel_blocks: int) -> np.ndarray:
    """Foote's novelty: a Gaussian-tapered checkerboard kernel slid along the diagonal of the
    cosine self-similarity of ``X`` (:func:`self_similarity`).

    ``novelty[i]`` is half the difference between the weighted mean similarity
    within the ``kernel_blocks`` blocks before ``i`` and within those from
    ``i`` on, and the weighted mean similarity across them: from -1 to 1, high
    where the music before and after ``i`` differ. Near the song's ends the
    kernel is cut to the blocks that exist and each mean is taken over what is
    left (padding would invent similarity); at the very ends, with nothing on
    one side, the novelty is 0. Only the band of the matrix the kernel covers is
    computed, so memory grows with the song's length, not with its square.

    Parameters
    ----------
    X : np.ndarray [shape=(n_blocks, n_dims)]
        Block features, e.g. from :func:`block_embedding`.
    kernel_blocks : int
        Half-width of the kernel, in blocks.

    Returns
    -------
    np.ndarray [shape=(n_blocks,), dtype=float64]
    """
    n = len(X)
    L = max(1, int(kernel_blocks))
    offsets = np.arange(-L, L) + 0.5
    g = np.exp(-0.5 * (offsets / (0.5 * L)) ** 2) * np.sign(offsets)
    K = np.outer(g, g)
    within, across = np.maximum(K, 0.0), np.maximum(-K, 0.0)
    U = np.pad(_unit_rows(X), ((L, L), (0, 0)))
    valid = np.pad(np.ones(n), L)
    W = np.lib.stride_tricks.sliding_window_view(U, 2 * L, axis=0)[:n]        # (n, n_dims, 2L)
    Sw = np.clip(np.matmul(W.transpose(0, 2, 1), W), -1.0, 1.0)              # (n, 2L, 2L)
    m = np.lib.stride_tricks.sliding_window_view(valid, 2 * L)[:n]            # (n, 2L)
    w_in, w_across = np.einsum("na,nb,ab->n", m, m, within), np.einsum("na,nb,ab->n", m, m, across)
    s_in, s_across = np.einsum("nab,ab->n", Sw, within), np.einsum("nab,ab->n", Sw, across)
    ok = (w_in > 0) & (w_across > 0)
    safe_in, safe_across = np.where(ok, w_in, 1.0), np.where(ok, w_across, 1.0)
    return np.where(ok, 0.5 * (s_in / safe_in - s_across / safe_across), 0.0)


def section_boundaries(novelty: np.ndarray, *, kernel_blocks: int,
                       delta: float = NOVELTY_DELTA) -> np.ndarray:
    """Section starts: peaks of the novelty curve (``librosa.util.peak_pick``).

    A peak must be the largest within ``kernel_blocks`` either side, rise
    ``delta`` above the mean over the same span, come at least
    ``kernel_blocks`` after the previous one and at least half of
    ``kernel_blocks`` from either end of the song (an ending that rings out
    is not a section).

    Parameters
    ----------
    novelty : np.ndarray [shape=(n_blocks,)]
        From :func:`novelty_curve`.
    kernel_blocks : int
    delta : float
        In the novelty's units (-1 to 1).

    Returns
    -------
    np.ndarray [shape=(n_boundaries,), dtype=int64]
        Block index of each section start after the first (block 0 is never one).
    """
    L = max(1, int(kernel_blocks))
    if len(novelty) < 3:
        return np.zeros(0, dtype=np.int64)
    peaks = librosa.util.peak_pick(np.asarray(novelty, dtype=np.float64), pre_max=L, post_max=L + 1,
                                   pre_avg=L, post_avg=L + 1, delta=delta, wait=L)
    edge = max(1, L // 2)
    return np.asarray(peaks[(peaks >= edge) & (peaks <= len(novelty) - edge)], dtype=np.int64)


def reprise(X: np.ndarray, *, section_starts: np.ndarray) -> float:
    """How much of the song returns to earlier material: 0 (none) to 1.

    Each section's mean vector (rows of ``X``, e.g. :func:`block_embedding`)
    is compared by cosine similarity with every earlier section except the one
    just before it (material has to come back, not continue); the best match,
    clipped at 0, is weighed by the section's length. The first two sections
    count as 0, so A B A reads about 1/3 and A B C about 0.

    Parameters
    ----------
    X : np.ndarray [shape=(n_blocks, n_dims)]
    section_starts : np.ndarray [shape=(n_sections,)]
        First block of each section, increasing, starting with 0.

    Returns
    -------
    float
    """
    X = np.asarray(X, dtype=np.float64)
    spans = _spans(section_starts, len(X))
    means = np.array([X[a:b].mean(axis=0) for a, b in spans])
    S = self_similarity(means)
    lengths = np.diff(spans, axis=1)[:, 0].astype(np.float64)
    best = np.array([max(0.0, S[j, :j - 1].max()) if j >= 2 else 0.0 for j in range(len(means))])
    return float(np.sum(best * lengths) / max(np.sum(lengths), 1.0))


def phrase_returns(X: np.ndarray, *, phrase_blocks: int, min_lag_blocks: int) -> np.ndarray:
    """How well each phrase of the song comes back elsewhere: its best cosine match, -1 to 1.

    Each phrase of ``phrase_blocks`` consecutive blocks (a time-delay
    embedding of the rows of ``X``, as ``librosa.feature.stack_memory`` but
    without padding) is compared by cosine similarity with every phrase that
    starts at least ``min_lag_blocks`` before or after it. Sequences are
    compared, not single blocks, so a chord that recurs in a new progression
    does not count as a return. The similarities are computed a few hundred
    rows at a time: memory grows with the song's length, not with its square.

    Parameters
    ----------
    X : np.ndarray [shape=(n_blocks, n_dims)]
        Block features, e.g. the chroma columns of :func:`block_embedding`.
    phrase_blocks : int
        Blocks per phrase (at least 1).
    min_lag_blocks : int
        Closest start of a phrase that counts as a return (at least 1).

    Returns
    -------
    np.ndarray [shape=(n_blocks - phrase_blocks + 1,), dtype=float64]
        The best match of the phrase starting at each block; NaN for a phrase
        with no other phrase that far from it (in a song shorter than two
        return distances); empty when the song is too short to hold two
        phrases that far apart (``n_blocks < phrase_blocks + min_lag_blocks``).
    """
    X = np.asarray(X, dtype=np.float64)
    k, lag = max(1, int(phrase_blocks)), max(1, int(min_lag_blocks))
    n = len(X) - k + 1                                         # phrases
    if n <= lag:
        return np.zeros(0)
    Z = np.lib.stride_tricks.sliding_window_view(X, k, axis=0).reshape(n, -1)
    U = _unit_rows(Z)
    best = np.empty(n)
    chunk = 256
    for a in range(0, n, chunk):
        S = U[a:a + chunk] @ U.T                               # (rows, n)
        i = np.arange(a, min(a + chunk, n))[:, None]
        S[np.abs(i - np.arange(n)[None, :]) < lag] = -np.inf
        best[a:a + chunk] = S.max(axis=1)
    best[~np.isfinite(best)] = np.nan
    return np.clip(best, -1.0, 1.0)


def repetition(X: np.ndarray, *, phrase_blocks: int, min_lag_blocks: int) -> float:
    """How much of the song comes back: -1 to 1, high for verse-chorus songs, low for through-composed ones.

    The mean over the song of :func:`phrase_returns` (each phrase's best match
    at least ``min_lag_blocks`` away). Independent of the section boundaries.

    Parameters
    ----------
    X : np.ndarray [shape=(n_blocks, n_dims)]
        Block features, e.g. the chroma columns of :func:`block_embedding`.
    phrase_blocks, min_lag_blocks : int
        As :func:`phrase_returns`.

    Returns
    -------
    float
        0 when the song is too short to hold two phrases that far apart
        (``n_blocks < phrase_blocks + min_lag_blocks``).
    """
    return _finite_mean(phrase_returns(X, phrase_blocks=phrase_blocks, min_lag_blocks=min_lag_blocks))


def _finite_mean(values: np.ndarray) -> float:
    """The mean of the finite values, 0 without any."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else 0.0


def section_loudness(level_db: np.ndarray, *, section_starts: np.ndarray) -> np.ndarray:
    """Loudness of each section: the median frame level, in dB.

    Parameters
    ----------
    level_db : np.ndarray [shape=(n_frames,)]
        From :func:`frame_level_db`.
    section_starts : np.ndarray [shape=(n_sections,)]
        First frame of each section, increasing, starting with 0.

    Returns
    -------
    np.ndarray [shape=(n_sections,), dtype=float64]
    """
    return np.array([np.median(level_db[a:b]) for a, b in _spans(section_starts, len(level_db))], dtype=np.float64)


def _spans(section_starts: np.ndarray, n: int) -> np.ndarray:
    """``[n_sections, 2]`` first and past-the-end index of each section of ``n`` blocks or frames."""
    bounds = np.append(np.asarray(section_starts, dtype=np.int64), n)
    return np.stack([bounds[:-1], bounds[1:]], axis=1)


def loudness_contrast(section_db: np.ndarray, *, section_seconds: np.ndarray, quiet_db: float = QUIET_DB
                      ) -> tuple[float, float, float]:
    """Loudness contrast between sections.

    Parameters
    ----------
    section_db : np.ndarray [shape=(n_sections,)]
        From :func:`section_loudness`, in dB.
    section_seconds : np.ndarray [shape=(n_sections,)]
        Length of each section, in seconds.
    quiet_db : float
        A section at least this far below the loudest one is quiet.

    Returns
    -------
    range_db : float
        Loudest minus quietest section, in dB.
    spread_db : float
        Standard deviation of section loudness weighed by section length, in dB.
    quiet_share : float
        Share of the song's time in quiet sections, 0 to 1.
    """
    db = np.asarray(section_db, dtype=np.float64)
    w = np.asarray(section_seconds, dtype=np.float64)
    total = max(float(w.sum()), 1e-12)
    mean = float(np.sum(w * db) / total)
    spread = float(np.sqrt(np.sum(w * (db - mean) ** 2) / total))
    quiet = float(np.sum(w[db <= db.max() - quiet_db]) / total)
    return float(db.max() - db.min()), spread, quiet


def timbre_variety(mfcc: np.ndarray, *, section_starts: np.ndarray) -> float:
    """Timbre variety across the song: spread of the sections' mean MFCCs.

    The root of the length-weighted mean squared distance of each section's
    mean MFCC vector (coefficients 1 and up: the 0th is loudness) from the
    song's mean, in MFCC units. 0 for a single section.

    Parameters
    ----------
    mfcc : np.ndarray [shape=(n_mfcc, n_frames)]
    section_starts : np.ndarray [shape=(n_sections,)]
        First frame of each section, increasing, starting with 0.

    Returns
    -------
    float
    """
    m = np.asarray(mfcc[1:], dtype=np.float64)
    spans = _spans(section_starts, m.shape[1])
    lengths = np.diff(spans, axis=1)[:, 0].astype(np.float64)
    means = np.array([m[:, a:b].mean(axis=1) for a, b in spans])
    centre = np.sum(means * lengths[:, None], axis=0) / lengths.sum()
    return float(np.sqrt(np.sum(lengths * np.sum((means - centre) ** 2, axis=1)) / lengths.sum()))


# ---------------------------------------------------------------------------
# The whole song


@dataclass(frozen=True)
class SongStructure:
    """Every intermediate array of one song's analysis (times in seconds)."""

    duration: float
    tempo_times: np.ndarray
    tempo_bpm: np.ndarray
    tempo_changes: np.ndarray
    odd_metre: np.ndarray
    metre_changes: np.ndarray
    key_times: np.ndarray
    keys: np.ndarray
    key_clarity: np.ndarray
    key_changes: np.ndarray
    stable_keys: list[int]
    section_starts: np.ndarray     # sections cover the sounding part (:func:`sounding_range`)
    section_seconds: np.ndarray
    section_db: np.ndarray
    reprise: float
    timbre_variety: float
    repetition: float
    phrase_times: np.ndarray       # start of each 8-s phrase of chroma (:func:`phrase_returns`)
    phrase_return: np.ndarray      # its best match elsewhere in the song, NaN where none is far enough


def check_features(features: np.ndarray) -> np.ndarray:
    """The matrix as float32 ``[43, n_frames]``, or a :class:`ProgrockError` saying what is wrong."""
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] != _seed43_rows()["n"]:
        raise ProgrockError(f"song structure needs a seed43 matrix of shape ({_seed43_rows()['n']}, n_frames); "
                            f"got shape {x.shape}")
    if x.shape[1] < 1:
        raise ProgrockError("song structure needs at least one frame; got an empty matrix")
    if not np.isfinite(np.sum(x, dtype=np.float64)):  # NaN and infinity survive the sum
        raise ProgrockError("song structure needs finite features; the matrix holds NaN or infinity")
    return x


def analyse_song(features: np.ndarray, *, frame_rate: float) -> SongStructure:
    """Run every analysis of this module once on a song's ``seed43`` matrix.

    Parameters
    ----------
    features : np.ndarray [shape=(43, n_frames)]
        A ``seed43`` matrix (rows: 20 MFCC, 10 mel dB, 12 chroma, onset strength).
    frame_rate : float
        Frames per second (22,050 / 512 for ``seed43``).

    Returns
    -------
    SongStructure
    """
    x = check_features(features)
    if not frame_rate > 0:
        raise ProgrockError(f"frame_rate must be a positive number of frames per second, not {frame_rate!r}")
    onset = np.asarray(x[_seed43_rows()["onset"][0]], dtype=np.float64)
    level = frame_level_db(x[_seed43_rows()["mel_db"]])
    t_times, bpm = tempo_curve(onset, frame_rate=frame_rate)
    odd = metre_evidence(onset, frame_rate=frame_rate, times=t_times, bpm=bpm)
    k_times, keys, clarity = key_curve(x[_seed43_rows()["chroma"]], frame_rate=frame_rate, level_db=level)
    k_changes, stable_keys = key_changes(keys)
    sections = _sections(x, level, frame_rate=frame_rate)
    return SongStructure(
        duration=duration(x, frame_rate=frame_rate), tempo_times=t_times, tempo_bpm=bpm,
        tempo_changes=tempo_changes(bpm), odd_metre=odd, metre_changes=metre_changes(odd),
        key_times=k_times, keys=keys, key_clarity=clarity, key_changes=k_changes, stable_keys=stable_keys,
        **sections)


def _sections(x: np.ndarray, level: np.ndarray, *, frame_rate: float) -> dict:
    """Sections of the sounding part of the song and what they hold (fields of :class:`SongStructure`)."""
    a, b = sounding_range(level)
    X, block_starts = block_embedding(x[:, a:b], frame_rate=frame_rate)
    kernel = max(1, int(round(KERNEL_SECONDS / BLOCK_SECONDS)))
    bounds = section_boundaries(novelty_curve(X, kernel_blocks=kernel), kernel_blocks=kernel)
    starts_b = np.concatenate([[0], bounds]).astype(np.int64)
    starts_f = block_starts[starts_b]
    returns = phrase_returns(X[:, embedding_columns("chroma")], phrase_blocks=int(round(PHRASE_SECONDS / BLOCK_SECONDS)),
                             min_lag_blocks=int(round(MIN_RETURN_SECONDS / BLOCK_SECONDS)))
    return dict(section_starts=(a + starts_f) / frame_rate,
                section_seconds=np.diff(np.append(starts_f, b - a)) / frame_rate,
                section_db=section_loudness(level[a:b], section_starts=starts_f),
                reprise=reprise(X, section_starts=starts_b),
                repetition=_finite_mean(returns),                                  # :func:`repetition`
                phrase_times=(a + block_starts[:len(returns)]) / frame_rate, phrase_return=returns,
                timbre_variety=timbre_variety(x[_seed43_rows()["mfcc"], a:b], section_starts=starts_f))


def sounding_range(level_db: np.ndarray, *, top_db: float = 60.0) -> tuple[int, int]:
    """The song without leading and trailing silence, as ``librosa.effects.trim`` finds it.

    Parameters
    ----------
    level_db : np.ndarray [shape=(n_frames,)]
        Frame levels in dB (:func:`frame_level_db`).
    top_db : float
        Frames more than this far below the loudest frame are silence.

    Returns
    -------
    start, stop : int
        Frames ``start:stop`` sound; the whole song when nothing does or all does alike.
    """
    sounding = np.flatnonzero(level_db > np.max(level_db) - top_db)
    if len(sounding) == 0:
        return 0, len(level_db)
    return int(sounding[0]), int(sounding[-1]) + 1


def duration(features: np.ndarray, *, frame_rate: float) -> float:
    """Length of the song in seconds: frames over frame rate."""
    return float(np.asarray(features).shape[-1] / frame_rate)


DESCRIPTORS: dict[str, str] = {
    "duration_s": "length of the song, s",
    "tempo_median_bpm": "median of the tempo curve, BPM",
    "tempo_spread_oct": "std of log2 tempo over the windows, octave errors folded, octaves",
    "tempo_changes": "tempo jumps of more than 10 % (octave errors folded) that held, count",
    "tempo_changes_per_min": "the same per minute of song, 1/min",
    "odd_metre_mean": "mean odd-metre evidence over the windows, 0-1",
    "odd_metre_max": "largest odd-metre evidence of a window, 0-1",
    "odd_metre_share": "share of windows with odd-metre evidence >= 0.5, 0-1",
    "metre_changes": "switches between regular and odd metre that held, count",
    "key_changes": "key changes that held, count",
    "key_changes_per_min": "the same per minute of song, 1/min",
    "distinct_keys": "different keys that held, count (at least 1)",
    "major_share": "share of windows in a major key, 0-1",
    "key_clarity_mean": "mean correlation of a window with its key's profile, -1 to 1",
    "sections": "sections of the sounding part of the song, count",
    "section_mean_s": "mean section length, s",
    "reprise": "length-weighted best similarity of each section to a non-adjacent earlier one, 0-1",
    "repetition": "mean best similarity of each 8-s chroma phrase to one at least 16 s away, -1 to 1",
    "loudness_range_db": "loudest minus quietest section (median levels), dB",
    "loudness_spread_db": "length-weighted std of the sections' levels, dB",
    "quiet_share": "share of the sounding time in sections >= 10 dB below the loudest, 0-1",
    "timbre_variety": "length-weighted spread of the sections' mean MFCC 1-19, MFCC units",
}
"""What each entry of :func:`describe_song` measures, unit last (also in the name where it has one)."""

DESCRIPTOR_NAMES: tuple[str, ...] = tuple(DESCRIPTORS)
"""Names of the entries of :func:`describe_song`, in order (see :data:`DESCRIPTORS`)."""


def descriptors(s: SongStructure) -> np.ndarray:
    """The descriptor vector of an analysed song (:data:`DESCRIPTOR_NAMES` order).

    Returns
    -------
    np.ndarray [shape=(len(DESCRIPTOR_NAMES),), dtype=float64]
    """
    minutes = max(s.duration / 60.0, 1e-9)
    range_db, spread_db, quiet = loudness_contrast(s.section_db, section_seconds=s.section_seconds)
    values = [
        s.duration, float(np.median(s.tempo_bpm)), tempo_spread(s.tempo_bpm), len(s.tempo_changes),
        len(s.tempo_changes) / minutes, float(np.mean(s.odd_metre)), float(np.max(s.odd_metre)),
        float(np.mean(s.odd_metre >= 0.5)), len(s.metre_changes), len(s.key_changes),
        len(s.key_changes) / minutes, max(1, len(set(s.stable_keys))), float(np.mean(s.keys < 12)),
        float(np.mean(s.key_clarity)), len(s.section_starts), float(np.mean(s.section_seconds)),
        s.reprise, s.repetition, range_db, spread_db, quiet, s.timbre_variety,
    ]
    out = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(out), out, 0.0)


def describe_song(features: np.ndarray, *, frame_rate: float) -> np.ndarray:
    """Structure descriptors of a whole song from its ``seed43`` matrix.

    Parameters
    ----------
    features : np.ndarray [shape=(43, n_frames)]
        A ``seed43`` matrix (rows: 20 MFCC, 10 mel dB, 12 chroma, onset strength).
    frame_rate : float
        Frames per second (22,050 / 512 for ``seed43``).

    Returns
    -------
    np.ndarray [shape=(len(DESCRIPTOR_NAMES),), dtype=float64]
        Always finite. Fallbacks: a song shorter than a window has one window
        and one section; a window without onsets reads 120 BPM (the tempo
        prior's peak) and no odd metre; flat chroma reads C major with clarity
        0; a single section has no loudness contrast, reprise or timbre variety.

    Raises
    ------
    ProgrockError
        The matrix is not ``[43, n_frames]`` with ``n_frames >= 1``, or not finite.
    """
    return descriptors(analyse_song(features, frame_rate=frame_rate))


def timeline(s: SongStructure) -> dict[str, np.ndarray]:
    """The arrays of an analysed song to draw along it (see :func:`song_timeline`)."""
    starts = np.asarray(s.section_starts, dtype=np.float64)
    return {
        "duration": np.asarray(s.duration),
        "tempo_times": s.tempo_times, "tempo_bpm": s.tempo_bpm, "odd_metre": s.odd_metre,
        "tempo_change_times": s.tempo_times[s.tempo_changes],
        "key_times": s.key_times, "keys": s.keys, "key_names": np.array([KEY_NAMES[k] for k in s.keys]),
        "key_clarity": s.key_clarity, "key_change_times": s.key_times[s.key_changes],
        "section_starts": starts, "section_ends": starts + s.section_seconds,
        "section_db": s.section_db, "boundary_times": starts[1:],
    }


STRUCTURE_ROWS: tuple[str, ...] = ("odd_metre", "tempo_offset_oct", "away_from_home_key", "phrase_return")
"""Rows of :func:`structure_rows` that follow the song: its structure evidence, frame by frame."""

SONG_ROWS: tuple[str, ...] = ("duration_oct",)
"""Rows of :func:`structure_rows` that hold one value of the whole song at every frame."""

DURATION_UNIT_S: float = 120.0
"""The length ``duration_oct`` reads as 0: ``log2(duration / DURATION_UNIT_S)``."""


def structure_rows(s: SongStructure, *, n_frames: int, frame_rate: float,
                   names: Sequence[str] = STRUCTURE_ROWS) -> np.ndarray:
    """Where the song stands in its own structure at every frame: rows a network can read beside the features.

    A snippet of ten seconds cannot hear whether its tempo or key is the
    song's own, how much of it comes back later or how long the song it
    belongs to is; these rows say it at each frame, from one analysis of the
    whole song (:func:`analyse_song`).

    Parameters
    ----------
    s : SongStructure
    n_frames : int
        Frames of the song's feature matrix.
    frame_rate : float
        Frames per second.
    names : sequence of str
        The rows, in order, from :data:`STRUCTURE_ROWS` and :data:`SONG_ROWS`.

    Returns
    -------
    np.ndarray [shape=(len(names), n_frames), dtype=float32]
        ``odd_metre``: the odd-metre evidence of the analysis windows (0-1);
        ``tempo_offset_oct``: the tempo against the song's median in octaves
        (``log2(bpm / median)``), both interpolated between window centres;
        ``away_from_home_key``: 1 where the window's key is not the song's
        most frequent key, else 0; ``phrase_return``: how well the 8-s phrase
        starting there returns elsewhere (:func:`phrase_returns`, -1 to 1; 0
        in a song too short for returns), each holding its first and last
        value beyond its first and last point; ``duration_oct``: the song's
        length (``s.duration``) in octaves of :data:`DURATION_UNIT_S`, the
        same at every frame.
    """
    unknown = [n for n in names if n not in STRUCTURE_ROWS + SONG_ROWS]
    if unknown:
        raise ProgrockError(f"unknown structure rows {unknown}; known: {list(STRUCTURE_ROWS + SONG_ROWS)}")
    t = np.arange(int(n_frames)) / float(frame_rate)
    rows = np.zeros((len(names), t.size), dtype=np.float32)
    for row, name in zip(rows, names):
        if name == "odd_metre":
            row[:] = np.interp(t, s.tempo_times, s.odd_metre)
        elif name == "tempo_offset_oct":
            row[:] = np.interp(t, s.tempo_times, np.log2(s.tempo_bpm / np.median(s.tempo_bpm)))
        elif name == "away_from_home_key":
            home = np.bincount(s.keys).argmax()
            row[:] = s.keys[np.clip(np.searchsorted(s.key_times, t), 0, len(s.keys) - 1)] != home
        elif name == "phrase_return":
            known = np.isfinite(s.phrase_return)
            if known.any():
                row[:] = np.interp(t, s.phrase_times[known], s.phrase_return[known])
        else:  # duration_oct
            row[:] = np.log2(max(s.duration, 1.0 / frame_rate) / DURATION_UNIT_S)
    return rows


def song_timeline(features: np.ndarray, *, frame_rate: float) -> dict[str, np.ndarray]:
    """Arrays to draw along the song (all times in seconds).

    To get both these and the descriptors from one analysis, call
    :func:`analyse_song` once and pass its result to :func:`timeline` and
    :func:`descriptors`.

    Returns
    -------
    dict
        ``duration`` (0-d), ``tempo_times``, ``tempo_bpm``, ``odd_metre`` (per
        tempo window, 0-1), ``tempo_change_times``, ``key_times``, ``keys``
        (indices into :data:`KEY_NAMES`), ``key_names`` (str), ``key_clarity``,
        ``key_change_times``, ``section_starts``, ``section_ends``,
        ``section_db`` (median level per section, dB), ``boundary_times``
        (section starts after the first).
    """
    return timeline(analyse_song(features, frame_rate=frame_rate))
