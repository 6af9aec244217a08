"""Song structure descriptors on audio with known tempo, metre, key, sections and loudness.

Every song is made here, turned into its ``seed43`` matrix by
:func:`progrock.features.compute_features`, and described from that matrix
alone, as the cache would hold it.
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from conftest import SR, music, real_songs
from progrock.constants import FRAME_RATE
from progrock.errors import ProgrockError
from progrock.features import structure as st
from progrock.features import FeatureConfig, compute_features


def seed43(y):
    return compute_features(y, FeatureConfig())

NAMES = st.DESCRIPTOR_NAMES
TEMPO_RTOL = 0.05
"""Tempo tolerance: the autocorrelation's lag resolution is one frame, 4-5 % at 120-150 BPM."""


def describe(y: np.ndarray) -> dict[str, float]:
    return dict(zip(NAMES, st.describe_song(seed43(y), frame_rate=FRAME_RATE)))


# ---------------------------------------------------------------------------
# Audio with known answers


def _kit(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A kick (with hat), a snare (with hat) and a closed hi-hat, 0.25 s each."""
    t = np.arange(int(0.25 * SR)) / SR
    hat = 0.25 * np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t / 0.015)
    kick = np.sin(2 * np.pi * np.cumsum(55 + 90 * np.exp(-t / 0.02)) / SR) * np.exp(-t / 0.12)
    snare = (0.6 * rng.standard_normal(len(t)) + 0.5 * np.sin(2 * np.pi * 190 * t)) * np.exp(-t / 0.06)
    return {"K": kick + hat, "S": snare + hat, "h": hat}


def drums(parts: list[tuple[float, float, str]], *, seed: int = 0) -> np.ndarray:
    """A drum track: ``(seconds, tatum in seconds, pattern)`` per part; the pattern has one
    letter per tatum, K kick, S snare, h hi-hat, . rest, repeated for the part."""
    rng = np.random.default_rng(seed)
    kit = _kit(rng)
    total = int(sum(p[0] for p in parts) * SR)
    y = np.zeros(total + SR)
    t0 = 0.0
    for seconds, tatum, pattern in parts:
        for k in range(int(round(seconds / tatum))):
            hit = pattern[k % len(pattern)]
            if hit != ".":
                i = int(round((t0 + k * tatum) * SR))
                y[i:i + len(kit[hit])] += kit[hit]
        t0 += seconds
    return y[:total] + 1e-3 * rng.standard_normal(total)


def tones(chords: list[tuple[int, ...]], *, chord_s: float, partials: list[float], decay: float = 1.5,
          seed: int = 0) -> np.ndarray:
    """Chords of MIDI notes, each ``chord_s`` long: harmonic tones with the given partial amplitudes."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(chord_s * SR)) / SR
    env = np.minimum(1.0, t / 0.02) * np.exp(-t / decay)
    out = []
    for notes in chords:
        x = np.zeros(len(t))
        for m in notes:
            f = 440.0 * 2 ** ((m - 69) / 12)
            for k, w in enumerate(partials, 1):
                if f * k < SR / 2:
                    x += w * np.sin(2 * np.pi * f * k * t + rng.uniform(0, 2 * np.pi))
        out.append(x * env)
    return np.concatenate(out)


def triad(root: int, minor: bool = False) -> tuple[int, ...]:
    return (root - 12, root, root + (3 if minor else 4), root + 7)


def major_progression(tonic: int, n: int) -> list[tuple[int, ...]]:
    """I IV V I vi IV V I ... in the major key on MIDI note ``tonic``, ``n`` chords."""
    degrees = [(0, False), (5, False), (7, False), (0, False), (9, True), (5, False), (7, False), (0, False)]
    return [triad(tonic + d, m) for d, m in (degrees * (n // 8 + 1))[:n]]


def rms(y: np.ndarray, db: float = 0.0) -> np.ndarray:
    """``y`` scaled to an RMS of 0.1 times ``db`` decibels."""
    return y / np.sqrt(np.mean(y ** 2)) * 0.1 * 10 ** (db / 20)


def section(kind: str, seconds: float, *, seed: int = 0) -> np.ndarray:
    """Three materials that differ in timbre, harmony and rhythm."""
    if kind == "A":     # bright chords in C, a 4/4 rock beat at 120 BPM
        y = rms(tones(major_progression(60, int(seconds / 2)), chord_s=2.0,
                      partials=[1, .8, .6, .5, .4, .3, .2], seed=seed))
        return y + rms(drums([(seconds, 0.25, "KhShKhSh")], seed=seed), -3)
    if kind == "B":     # soft, almost pure tones in F# minor, no drums
        chords = [triad(66, True), triad(61), triad(62), triad(64)] * 10
        return rms(tones(chords[:int(seconds / 3)], chord_s=3.0, partials=[1, .1], decay=4.0, seed=seed))
    if kind == "C":     # buzzy staccato chords in A flat, fast hats
        y = rms(tones(major_progression(56, int(seconds)), chord_s=1.0, partials=[1.0] * 10, decay=0.3,
                      seed=seed))
        return y + rms(drums([(seconds, 0.125, "hhhhShhh")], seed=seed))
    raise ValueError(kind)


def as_audio(y: np.ndarray) -> np.ndarray:
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


# ---------------------------------------------------------------------------
# Tempo and metre


@pytest.fixture(scope="module")
def seven_eight_then_four_four():
    """30 s of 7/8 (2+2+3) at 120 BPM (a quarter note; eighths 0.25 s), then 30 s of 4/4 at 150 BPM."""
    y = as_audio(drums([(30.0, 0.25, "KhShKhh"), (30.0, 0.2, "KhShKhSh")]))
    return st.analyse_song(seed43(y), frame_rate=FRAME_RATE)


def test_tempo_curve_reads_both_tempi_and_one_change(seven_eight_then_four_four):
    s = seven_eight_then_four_four
    half = st.WINDOW_SECONDS / 2
    first, second = s.tempo_times + half <= 30.0, s.tempo_times - half >= 30.0
    assert first.sum() >= 3 and second.sum() >= 3
    np.testing.assert_allclose(s.tempo_bpm[first], 120.0, rtol=TEMPO_RTOL)
    np.testing.assert_allclose(s.tempo_bpm[second], 150.0, rtol=TEMPO_RTOL)
    assert len(s.tempo_changes) == 1
    assert abs(s.tempo_times[s.tempo_changes[0]] - 30.0) <= half
    d = dict(zip(NAMES, st.descriptors(s)))
    assert d["tempo_changes"] == 1 and d["tempo_changes_per_min"] == pytest.approx(1.0, rel=0.01)
    assert d["tempo_spread_oct"] > 0.1          # log2(150/120) = 0.32 between the halves


def test_odd_metre_evidence_high_in_seven_eight_low_in_four_four(seven_eight_then_four_four):
    s = seven_eight_then_four_four
    half = st.WINDOW_SECONDS / 2
    seven = s.odd_metre[s.tempo_times + half <= 30.0]
    four = s.odd_metre[s.tempo_times - half >= 30.0]
    assert seven.mean() >= 0.6, s.odd_metre
    assert four.max() <= 0.2, s.odd_metre
    assert len(s.metre_changes) == 1


def test_grouping_contrast_peaks_at_the_bar_length():
    """An accent every 7 tatums peaks at 7 and 14 (odd); every 8 at 8 and 16 (regular)."""
    rng = np.random.default_rng(0)
    for bar, kind in ((7, "odd"), (8, "regular")):
        accents = np.tile([1.0] + [0.3] * (bar - 1), 12) + 0.02 * rng.standard_normal(12 * bar)
        c = st.grouping_contrast(accents)
        assert int(np.argmax(c)) in (bar, 2 * bar)
        score = float(st.odd_metre_score(c))
        assert (score > 0.8) if kind == "odd" else (score < 0.2)


PULSE_S = 16 / FRAME_RATE
"""An eighth-note pulse of 16 frames, 161.5 per minute: the tracker takes it for the beat (its prior
is near 120 BPM). A whole number of frames keeps every hit's onset on the same place in its frame."""


@pytest.mark.parametrize("pulses, odd", [(11, True), (13, True), (12, False), (16, False)])
def test_odd_bars_counted_at_the_eighth_note_pulse(pulses, odd):
    """11/8 and 13/8 with the tracker on the eighths are bars of 22 and 26 tatums; 12 and 16 pulses
    (four bars of 3/8, two of 4/4) are regular. A snare marks each bar, hi-hats the other pulses."""
    y = as_audio(drums([(40.0, PULSE_S / 2, "S." + "h." * (pulses - 1))]))
    s = st.analyse_song(seed43(y), frame_rate=FRAME_RATE)
    np.testing.assert_allclose(s.tempo_bpm, 60.0 / PULSE_S, rtol=TEMPO_RTOL)
    if odd:   # a lone accent per bar over a sparse pulse: about 0.45 (0.6 at 7 pulses); 0.0-0.1 when
        assert s.odd_metre.mean() >= 0.3, s.odd_metre   # bars of 22 and 26 tatums were not looked for
    else:
        assert s.odd_metre.max() <= 0.2, s.odd_metre


def test_grouping_contrast_rows_equal_single_windows():
    """Padded rows of the batched form give what each window gives alone."""
    rng = np.random.default_rng(1)
    windows = [rng.random(n) for n in (40, 25, 60, 10)]
    rows = np.zeros((4, 60))
    for i, w in enumerate(windows):
        rows[i, :len(w)] = w
    batch = st.grouping_contrast(rows, lengths=np.array([len(w) for w in windows]))
    for i, w in enumerate(windows):
        np.testing.assert_allclose(batch[i], st.grouping_contrast(w), atol=1e-12)
    assert np.all(batch[1] == 0) and np.all(batch[3] == 0)   # 25 and 10 tatums: too few for 32


def test_tempo_octave_errors_are_not_changes():
    assert st.octave_distance(120.0, 240.0) == pytest.approx(0.0)
    assert st.octave_distance(120.0, 150.0) == pytest.approx(np.log2(1.25))
    assert len(st.tempo_changes(np.array([120.0] * 4 + [60.0] * 4 + [240.0] * 4))) == 0
    assert st.tempo_spread(np.array([120.0] * 4 + [240.0] * 4)) == pytest.approx(0.0)


def test_stable_changes_ignores_flickers():
    changes, levels = st.stable_changes(np.array([0, 0, 0, 7, 7, 2, 2, 2]), min_windows=3)
    assert changes.tolist() == [5] and levels == [0, 2]
    changes, levels = st.stable_changes(np.array([0, 0, 0, 2, 2, 2, 0, 0, 0]), min_windows=3)
    assert changes.tolist() == [3, 6] and levels == [0, 2, 0]
    changes, levels = st.stable_changes(np.array([5, 0, 0, 0]), min_windows=3)
    assert changes.tolist() == [] and levels == [0]


# ---------------------------------------------------------------------------
# Key


@pytest.mark.parametrize("second_tonic", [62, 60])
def test_key_curve_finds_a_modulation_up_a_whole_tone(second_tonic):
    """36 s of I-IV-V-I-vi-IV-V-I in C major, then 36 s in D major (or C again: no change)."""
    y = np.concatenate([tones(major_progression(60, 18), chord_s=2.0, partials=[1, .5, .3, .2]),
                        tones(major_progression(second_tonic, 18), chord_s=2.0, partials=[1, .5, .3, .2],
                              seed=1)])
    s = st.analyse_song(seed43(as_audio(y)), frame_rate=FRAME_RATE)
    if second_tonic == 60:
        assert s.stable_keys == [0] and len(s.key_changes) == 0
        return
    assert [st.KEY_NAMES[k] for k in s.stable_keys] == ["C major", "D major"]
    assert (s.stable_keys[1] - s.stable_keys[0]) % 12 == 2
    assert len(s.key_changes) == 1
    assert abs(s.key_times[s.key_changes[0]] - 36.0) <= st.WINDOW_SECONDS / 2
    d = dict(zip(NAMES, st.descriptors(s)))
    assert d["key_changes"] == 1 and d["distinct_keys"] == 2 and d["major_share"] == 1.0


def test_key_profiles_read_their_own_key():
    profiles = st.key_profiles()
    for k in (0, 2, 9, 14, 21):
        chroma = np.repeat(profiles[k][:, None], 50, axis=1)
        _, keys, clarity = st.key_curve(chroma, frame_rate=FRAME_RATE)
        assert keys.tolist() == [k] and clarity[0] == pytest.approx(1.0)


# ---------------------------------------------------------------------------
# Sections, loudness, reprise


def test_quiet_intro_gives_one_boundary_and_its_loudness_contrast():
    """20 s of music at -20 dB, then 20 s of the same kind of music at full level."""
    y = as_audio(np.concatenate([rms(music(20.0, seed=1), -20.0), rms(music(20.0, seed=2))]))
    s = st.analyse_song(seed43(y), frame_rate=FRAME_RATE)
    assert len(s.section_starts) == 2, s.section_starts
    assert abs(s.section_starts[1] - 20.0) <= 2.0
    d = dict(zip(NAMES, st.descriptors(s)))
    assert d["loudness_range_db"] == pytest.approx(20.0, abs=1.5)
    assert d["loudness_spread_db"] == pytest.approx(10.0, abs=1.0)
    assert d["quiet_share"] == pytest.approx(0.5, abs=0.06)


def test_no_contrast_in_a_steady_song():
    d = describe(as_audio(music(40.0, seed=3)))
    assert d["sections"] == 1 and d["loudness_range_db"] == 0.0 and d["quiet_share"] == 0.0


@pytest.fixture(scope="module")
def forms():
    out = {}
    for form in ("ABA", "ABC"):
        y = as_audio(np.concatenate([section(k, 12.0, seed=i) for i, k in enumerate(form)]))
        out[form] = st.analyse_song(seed43(y), frame_rate=FRAME_RATE)
    return out


def test_sections_of_three_part_forms(forms):
    for s in forms.values():
        assert len(s.section_starts) == 3, s.section_starts
        np.testing.assert_allclose(s.section_starts, [0.0, 12.0, 24.0], atol=2.0)


def test_reprise_is_higher_when_a_returns(forms):
    aba, abc = forms["ABA"].reprise, forms["ABC"].reprise
    assert aba == pytest.approx(1 / 3, abs=0.08)       # the last third returns to the first
    assert abc < 0.15 and aba > abc + 0.2


def random_triads(n: int, *, seed: int) -> list[tuple[int, ...]]:
    """``n`` major or minor triads on random roots: harmony that never settles into a sequence."""
    rng = np.random.default_rng(seed)
    return [triad(int(r), bool(m)) for r, m in zip(rng.integers(55, 67, n), rng.integers(0, 2, n))]


@pytest.fixture(scope="module")
def verse_chorus_and_through_composed():
    """60 s each: a verse and a chorus of four chords (2.5 s each) taking turns, A B A B A B;
    and six 10-s sections of four chords never heard before."""
    verse, chorus = major_progression(60, 4), [triad(57, True), triad(65), triad(67), triad(64)]
    pop = tones((verse + chorus) * 3, chord_s=2.5, partials=[1, .5, .3, .2])
    through = tones(random_triads(24, seed=5), chord_s=2.5, partials=[1, .5, .3, .2])
    return {name: st.analyse_song(seed43(as_audio(y)), frame_rate=FRAME_RATE)
            for name, y in (("pop", pop), ("through", through))}


def test_repetition_high_when_verse_and_chorus_return(verse_chorus_and_through_composed):
    pop, through = verse_chorus_and_through_composed["pop"], verse_chorus_and_through_composed["through"]
    assert pop.repetition > 0.8                  # every 8-s phrase comes back 20 s later
    assert through.repetition < 0.5 and pop.repetition > through.repetition + 0.3
    assert dict(zip(NAMES, st.descriptors(pop)))["repetition"] == pytest.approx(pop.repetition)


def test_repetition_of_block_features_with_known_returns():
    rng = np.random.default_rng(7)
    period = rng.standard_normal((20, 12))
    tiled = np.tile(period, (3, 1))                          # 60 blocks, every phrase returns 20 blocks on
    assert st.repetition(tiled, phrase_blocks=8, min_lag_blocks=16) == pytest.approx(1.0)
    X = rng.standard_normal((60, 12))
    X[40:] = X[:20]                                          # the first third returns at the end
    naive = []                                               # the definition, phrase by phrase
    Z = [X[i:i + 8].ravel() for i in range(53)]
    for i in range(53):
        sims = [Z[i] @ Z[j] / np.linalg.norm(Z[i]) / np.linalg.norm(Z[j]) for j in range(53) if abs(i - j) >= 16]
        naive.append(max(sims))
    assert st.repetition(X, phrase_blocks=8, min_lag_blocks=16) == pytest.approx(np.mean(naive), abs=1e-12)
    assert 0.2 < np.mean(naive) < 0.7                       # 13 of 53 phrases return exactly
    assert st.repetition(X[:23], phrase_blocks=8, min_lag_blocks=16) == 0.0     # too short for a return


def test_timbre_variety_grows_with_different_sections(forms):
    steady = describe(as_audio(music(36.0, seed=4)))
    assert steady["sections"] == 1 and steady["timbre_variety"] == 0.0
    assert forms["ABC"].timbre_variety > 5.0 and forms["ABA"].timbre_variety > 5.0


# ---------------------------------------------------------------------------
# Pieces checked against the library they stand in for


def test_self_similarity_equals_librosa_recurrence_matrix():
    X = np.random.default_rng(0).standard_normal((60, 12))
    ours = st.self_similarity(X)
    dist = librosa.segment.recurrence_matrix(X.T, metric="cosine", mode="distance", full=True)
    off = ~np.eye(len(X), dtype=bool)
    np.testing.assert_allclose(ours[off], 1.0 - dist[off], atol=1e-9)


def test_novelty_equals_the_kernel_on_the_full_matrix():
    """The banded computation equals Foote's kernel applied to the whole self-similarity matrix."""
    X = np.repeat(np.random.default_rng(2).standard_normal((5, 6)), 8, axis=0)   # 5 sections of 8 blocks
    X += 0.3 * np.random.default_rng(3).standard_normal(X.shape)
    S, L, n = st.self_similarity(X), 4, len(X)
    g = np.exp(-0.5 * ((np.arange(-L, L) + 0.5) / (0.5 * L)) ** 2) * np.sign(np.arange(-L, L) + 0.5)
    K = np.outer(g, g)
    expected = np.zeros(n)
    for i in range(n):
        sums = {True: [0.0, 0.0], False: [0.0, 0.0]}
        for a in range(2 * L):
            for b in range(2 * L):
                p, q = i - L + a, i - L + b
                if 0 <= p < n and 0 <= q < n:
                    sums[K[a, b] > 0][0] += abs(K[a, b]) * S[p, q]
                    sums[K[a, b] > 0][1] += abs(K[a, b])
        if sums[True][1] > 0 and sums[False][1] > 0:
            expected[i] = 0.5 * (sums[True][0] / sums[True][1] - sums[False][0] / sums[False][1])
    novelty = st.novelty_curve(X, kernel_blocks=L)
    np.testing.assert_allclose(novelty, expected, atol=1e-12)
    assert st.section_boundaries(novelty, kernel_blocks=L).tolist() == [8, 16, 24, 32]


def test_block_embedding_means_equal_librosa_sync():
    x = seed43(as_audio(music(10.0)))
    X, starts = st.block_embedding(x, frame_rate=FRAME_RATE)
    chroma = librosa.util.sync(x[30:42].astype(np.float64), starts[1:], aggregate=np.mean)
    sd = chroma.std(axis=1, keepdims=True)
    expected = (chroma - chroma.mean(axis=1, keepdims=True)) / sd / np.sqrt(12)
    np.testing.assert_allclose(X[:, 30:42].T, expected, atol=1e-9)


def test_frame_level_equals_librosa_power_sum():
    x = seed43(as_audio(music(5.0)))
    expected = librosa.power_to_db(librosa.db_to_power(x[20:30].astype(np.float64)).sum(axis=0), top_db=None)
    np.testing.assert_allclose(st.frame_level_db(x[20:30]), expected, atol=1e-3)


# ---------------------------------------------------------------------------
# Edge cases and real recordings


@pytest.mark.parametrize("case", ["3s_song", "digital_silence", "constant_matrix", "one_frame", "noise"])
def test_descriptors_are_finite_on_edge_cases(case):
    if case == "3s_song":
        x = seed43(as_audio(music(3.0)))
    elif case == "digital_silence":
        x = seed43(np.zeros(20 * SR, dtype=np.float32))
    elif case == "constant_matrix":
        x = np.full((43, 2000), 0.5, dtype=np.float32)
    elif case == "one_frame":
        x = seed43(as_audio(music(3.0)))[:, :1]
    else:
        x = seed43((0.1 * np.random.default_rng(0).standard_normal(15 * SR)).astype(np.float32))
    d = st.describe_song(x, frame_rate=FRAME_RATE)
    assert d.shape == (len(NAMES),) and d.dtype == np.float64
    assert np.all(np.isfinite(d)), dict(zip(NAMES, d))
    assert d[NAMES.index("duration_s")] == pytest.approx(x.shape[1] / FRAME_RATE)
    assert d[NAMES.index("sections")] >= 1
    timeline = st.song_timeline(x, frame_rate=FRAME_RATE)
    assert all(np.all(np.isfinite(v)) for k, v in timeline.items() if k != "key_names")


def test_bad_matrices_are_refused_with_the_reason():
    with pytest.raises(ProgrockError, match="shape"):
        st.describe_song(np.zeros((42, 100), dtype=np.float32), frame_rate=FRAME_RATE)
    with pytest.raises(ProgrockError, match="empty"):
        st.describe_song(np.zeros((43, 0), dtype=np.float32), frame_rate=FRAME_RATE)
    bad = np.zeros((43, 100), dtype=np.float32)
    bad[5, 7] = np.nan
    with pytest.raises(ProgrockError, match="finite"):
        st.describe_song(bad, frame_rate=FRAME_RATE)


def test_timeline_arrays_agree_with_the_descriptors(seven_eight_then_four_four):
    t = st.timeline(seven_eight_then_four_four)
    d = dict(zip(NAMES, st.descriptors(seven_eight_then_four_four)))
    assert len(t["tempo_times"]) == len(t["tempo_bpm"]) == len(t["odd_metre"])
    assert len(t["tempo_change_times"]) == d["tempo_changes"] == 1
    assert len(t["section_starts"]) == len(t["section_ends"]) == len(t["section_db"]) == d["sections"]
    assert np.all(t["section_ends"] > t["section_starts"]) and t["section_ends"][-1] <= float(t["duration"])
    assert list(t["key_names"]) == [st.KEY_NAMES[k] for k in t["keys"]]
    assert float(t["duration"]) == pytest.approx(60.0, abs=0.05)


def test_real_recordings_give_sane_descriptors():
    from progrock.audio import decode

    for path in real_songs():
        x = seed43(decode(path).y)
        s = st.analyse_song(x, frame_rate=FRAME_RATE)
        d = dict(zip(NAMES, st.descriptors(s)))
        assert all(np.isfinite(v) for v in d.values()), (path, d)
        assert 60.0 <= d["tempo_median_bpm"] <= 220.0, (path, d)
        assert d["duration_s"] == pytest.approx(x.shape[1] / FRAME_RATE)
        assert 1 <= d["sections"] <= d["duration_s"] / st.KERNEL_SECONDS, (path, d)
        assert 0.0 <= d["odd_metre_mean"] <= d["odd_metre_max"] <= 1.0
        assert 0.0 <= d["reprise"] <= 1.0 and 0.0 <= d["quiet_share"] <= 1.0
        assert -1.0 <= d["repetition"] <= 1.0
        rows = dict(zip(st.STRUCTURE_ROWS, st.structure_rows(s, n_frames=x.shape[1], frame_rate=FRAME_RATE)))
        assert all(np.isfinite(r).all() for r in rows.values()), path
        assert 0.0 <= rows["odd_metre"].min() and rows["odd_metre"].max() <= 1.0
        assert np.abs(rows["tempo_offset_oct"]).max() <= 2.0               # within two octaves of the median
        assert set(np.unique(rows["away_from_home_key"])) <= {0.0, 1.0}
        assert -1.0 <= rows["phrase_return"].min() and rows["phrase_return"].max() <= 1.0


def test_structure_svg_draws_every_section_key_and_window():
    import xml.etree.ElementTree as ET

    from progrock.report.structure import structure_svg

    y = as_audio(np.concatenate([rms(music(20.0, seed=1), -20.0), rms(music(20.0, seed=2))]))
    timeline = st.song_timeline(seed43(y), frame_rate=FRAME_RATE)
    svg = structure_svg(timeline, width=300)
    root = ET.fromstring(svg)                                  # well-formed XML
    assert root.get("width") == "300" and "href" not in svg and "url(" not in svg
    titles = [t.text for t in root.iter("title")]
    assert sum(t.startswith("section ") for t in titles) == len(timeline["section_starts"]) == 2
    assert sum("BPM" in t for t in titles) == len(timeline["tempo_bpm"])
    assert sum(any(k in t for k in st.KEY_NAMES) for t in titles) == len(timeline["keys"])
    rects = list(root.iter("rect"))
    assert all(0.0 <= float(r.get("x", 0)) <= 300.0 for r in rects)
    # The quiet intro is paler than the loud section that follows it.
    fills = [r.get("fill") for r in rects if (r.findtext("title") or "").startswith("section ")]
    assert int(fills[0][1:3], 16) > int(fills[1][1:3], 16)


# ---------------------------------------------------------------------------
# Structure evidence along the song, for the CNN


def test_structure_rows_follow_metre_and_tempo_along_the_song(seven_eight_then_four_four):
    s = seven_eight_then_four_four
    n = int(round(s.duration * FRAME_RATE))
    rows = st.structure_rows(s, n_frames=n, frame_rate=FRAME_RATE)
    assert rows.shape == (len(st.STRUCTURE_ROWS), n) and rows.dtype == np.float32
    t = np.arange(n) / FRAME_RATE
    seven, four = t < 30.0 - st.WINDOW_SECONDS / 2, t > 30.0 + st.WINDOW_SECONDS / 2
    odd = rows[st.STRUCTURE_ROWS.index("odd_metre")]
    assert odd[seven].mean() >= 0.6 and odd[four].max() <= 0.2
    tempo = rows[st.STRUCTURE_ROWS.index("tempo_offset_oct")]
    lo, hi = np.log2(150 * (1 - TEMPO_RTOL) / (120 * (1 + TEMPO_RTOL))), np.log2(150 * (1 + TEMPO_RTOL) / (120 * (1 - TEMPO_RTOL)))
    assert lo <= tempo[four].mean() - tempo[seven].mean() <= hi            # log2(150 / 120) = 0.32 octaves
    # interpolated between the analysis windows, held beyond the first and the last
    np.testing.assert_allclose(odd, np.interp(t, s.tempo_times, s.odd_metre), atol=1e-6)


def test_structure_rows_mark_the_key_away_from_home():
    """36 s in C major, then 48 s in D major: D is home, the C major start is away."""
    y = np.concatenate([tones(major_progression(60, 18), chord_s=2.0, partials=[1, .5, .3, .2]),
                        tones(major_progression(62, 24), chord_s=2.0, partials=[1, .5, .3, .2], seed=1)])
    s = st.analyse_song(seed43(as_audio(y)), frame_rate=FRAME_RATE)
    n = int(round(s.duration * FRAME_RATE))
    away = st.structure_rows(s, n_frames=n, frame_rate=FRAME_RATE)[st.STRUCTURE_ROWS.index("away_from_home_key")]
    t = np.arange(n) / FRAME_RATE
    assert away[t < 36.0 - st.WINDOW_SECONDS / 2].min() == 1.0
    assert away[t > 36.0 + st.WINDOW_SECONDS / 2].max() == 0.0


def test_structure_rows_say_which_phrases_return(verse_chorus_and_through_composed):
    for name, low, high in (("pop", 0.8, 1.0), ("through", -1.0, 0.5)):
        s = verse_chorus_and_through_composed[name]
        n = int(round(s.duration * FRAME_RATE))
        ret = st.structure_rows(s, n_frames=n, frame_rate=FRAME_RATE)[st.STRUCTURE_ROWS.index("phrase_return")]
        assert low <= ret.mean() <= high, (name, ret.mean())
        assert s.repetition == pytest.approx(np.nanmean(s.phrase_return))      # the descriptor is their mean
    X = np.random.default_rng(3).standard_normal((60, 12))
    X[40:] = X[:20]
    returns = st.phrase_returns(X, phrase_blocks=8, min_lag_blocks=16)
    np.testing.assert_allclose(returns[:13], 1.0)                    # these phrases come back exactly
    assert st.repetition(X, phrase_blocks=8, min_lag_blocks=16) == pytest.approx(returns.mean())
    assert np.isnan(st.phrase_returns(X[:30], phrase_blocks=8, min_lag_blocks=16)).any()   # no partner far enough


def test_the_duration_row_says_how_long_the_song_is_at_every_frame():
    """A 30-s and a 60-s song: their duration rows read log2(30/120) = -2 and -1 at every frame; the
    CNN input that hears the length ends in it, and the previous default input is as it was."""
    from progrock.model import inputs

    for seconds, octaves in ((30.0, -2.0), (60.0, -1.0)):
        x = seed43(as_audio(tones(major_progression(60, int(seconds / 2)), chord_s=2.0, partials=[1, .5, .3])))
        s = st.analyse_song(x, frame_rate=FRAME_RATE)
        rows = st.structure_rows(s, n_frames=x.shape[1], frame_rate=FRAME_RATE, names=("duration_oct", "odd_metre"))
        np.testing.assert_allclose(rows[0], octaves, atol=0.01)
        np.testing.assert_array_equal(rows[1], st.structure_rows(s, n_frames=x.shape[1], frame_rate=FRAME_RATE)[0])
        full = inputs.cnn_matrix(x, "seed43+structure+duration", frame_rate=FRAME_RATE)
        assert full.shape == (43 + len(st.STRUCTURE_ROWS) + 1, x.shape[1])
        np.testing.assert_array_equal(full[-1], rows[0])
        np.testing.assert_array_equal(inputs.cnn_matrix(x, "seed43+structure", frame_rate=FRAME_RATE), full[:-1])
    with pytest.raises(ProgrockError, match="unknown structure rows.*'loudness'"):
        st.structure_rows(s, n_frames=x.shape[1], frame_rate=FRAME_RATE, names=("loudness",))


def test_the_cnn_rows_and_the_descriptors_of_a_song_come_from_one_analysis(monkeypatch):
    """Judging a song with the CNN and the structure model analyses it once; an equal matrix finds that
    analysis, a changed one is analysed anew, and both inputs equal the analysis done directly."""
    from progrock.model import inputs

    x = seed43(as_audio(drums([(24.0, 0.25, "KhShKhh")])))
    calls = []
    real = st.analyse_song
    monkeypatch.setattr(st, "analyse_song", lambda m, **kw: calls.append(1) or real(m, **kw))
    view = inputs.cnn_matrix(x, "seed43+structure", frame_rate=FRAME_RATE)
    row = inputs.structure_input(x.copy(), frame_rate=FRAME_RATE, snippet_probs=np.array([0.25, 0.75]))
    assert len(calls) == 1
    direct = real(x, frame_rate=FRAME_RATE)
    np.testing.assert_array_equal(view[43:], st.structure_rows(direct, n_frames=x.shape[1], frame_rate=FRAME_RATE))
    np.testing.assert_array_equal(row, np.append(st.descriptors(direct), 0.5))
    changed = x.copy()
    changed[-1, 100] += 1.0
    inputs.structure_input(changed, frame_rate=FRAME_RATE, snippet_probs=np.zeros(0))
    assert len(calls) == 2
    inputs.forget_analyses()                      # what a benchmark calls to time the analysis afresh
    inputs.cnn_matrix(x, "seed43+structure", frame_rate=FRAME_RATE)
    assert len(calls) == 3
