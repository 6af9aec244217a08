"""The fast feature path equals librosa: the same STFT bits, the same tuning, features within tolerance.

The signal is made here: detuned chords (so the tuning estimate is not 0),
kick, snare and hi-hat, background noise, a quiet intro and a loud ending
(so ``top_db`` clipping acts). Real recordings too: Debian's
``fretsonfire-songs-muldjord`` (see ``conftest.real_songs``).
"""

from __future__ import annotations

import warnings

import librosa
import numpy as np
import pytest

from progrock.features import FeatureConfig, compute_features
from progrock.features import spectral as fast
from progrock.features.reference import reference_power_spectrogram as power_spectrogram, reference_seed43

from conftest import SR, real_songs

# As tests/test_features.py: MFCCs and dB values span about ±600, chroma and onset 0..10.
RTOL = 1e-5
ATOL = 1e-3


def band(seconds: float = 30.0, *, sr: int = SR, detune: float = 0.3, seed: int = 0) -> np.ndarray:
    """A band: chords tuned ``detune`` semitones off A440, drums, noise, a quiet start.

    Returns
    -------
    np.ndarray [shape=(int(seconds * sr),), dtype=float32]
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = np.zeros(n)
    a4 = 440.0 * 2 ** (detune / 12)
    chords = [(0, 4, 7), (5, 9, 12), (7, 11, 14), (-3, 0, 4)]  # A, D, E, F#m around A3
    bar = 2.0
    for i, start in enumerate(np.arange(0, seconds, bar)):
        s, e = int(start * sr), min(n, int((start + bar) * sr))
        tt = t[s:e] - start
        env = np.exp(-1.2 * tt)
        for semi in chords[i % len(chords)]:
            f0 = a4 / 2 * 2 ** (semi / 12)
            for k in (1, 2, 3, 5):
                y[s:e] += 0.08 / k * env * np.sin(2 * np.pi * f0 * k * tt + rng.uniform(0, 2 * np.pi))
    beat = 0.5
    for j, start in enumerate(np.arange(0, seconds - 0.3, beat / 2)):
        s = int(start * sr)
        m = int(0.25 * sr)
        tt = np.arange(m) / sr
        if j % 4 == 0:  # kick: falling sine
            y[s:s + m] += 0.6 * np.exp(-18 * tt) * np.sin(2 * np.pi * (50 + 80 * np.exp(-30 * tt)) * tt)
        if j % 4 == 2:  # snare: noise burst and a tone
            y[s:s + m] += 0.3 * np.exp(-25 * tt) * (rng.standard_normal(m) + np.sin(2 * np.pi * 190 * tt))
        hat = rng.standard_normal(m)
        y[s:s + m] += 0.05 * np.exp(-90 * tt) * np.diff(hat, prepend=0.0)  # hi-hat: differenced noise
    y += 0.002 * rng.standard_normal(n)
    y *= np.clip(t / (0.4 * seconds), 0.003, 1.0)  # quiet intro, so top_db clipping acts
    return (0.8 * y / np.max(np.abs(y))).astype(np.float32)


@pytest.fixture(scope="module")
def y() -> np.ndarray:
    return band()


def test_power_spectrogram_equals_librosa_bit_for_bit(y):
    S = power_spectrogram(y)
    ref = np.abs(librosa.stft(y, n_fft=2048, hop_length=512)) ** 2
    assert S.shape == ref.shape and S.dtype == np.float32
    np.testing.assert_array_equal(S, ref)


@pytest.mark.parametrize("n", [1, 100, 1023, 1024, 1025, 2048, 5000, 512 * 300, 512 * 300 + 7])
def test_block_stft_in_any_blocks_equals_the_whole_signal(n):
    rng = np.random.default_rng(n)
    y = rng.standard_normal(n).astype(np.float32)
    whole = fast.power_frames(y)
    assert whole.shape == (1 + n // 512, 1025)
    cuts = np.sort(rng.integers(0, n + 1, size=7))
    stft = fast.BlockSTFT(block_frames=16)
    out = [stft.push(part) for part in np.split(y, cuts)]
    out.append(stft.finish())
    got = np.concatenate([o for o in out if o is not None])
    assert all(o is None or o.shape[0] % 16 == 0 for o in out[:-1])
    np.testing.assert_array_equal(got, whole)


def test_pitch_peaks_are_librosa_piptracks_peaks(y):
    S = np.abs(librosa.stft(y)) ** 2
    pitches, mags = librosa.piptrack(S=S, sr=SR, n_fft=2048)
    keep = pitches > 0
    p, m = fast.pitch_peaks(S.T, sr=SR, n_fft=2048)
    assert p.size == keep.sum() > 1000
    # Same peaks with the same float32 values (order differs: frames-major here).
    order_ref = np.lexsort((mags[keep], pitches[keep]))
    order = np.lexsort((m, p))
    np.testing.assert_array_equal(p[order], pitches[keep][order_ref])
    np.testing.assert_array_equal(m[order], mags[keep][order_ref])


@pytest.mark.parametrize("detune", [-0.37, 0.0, 0.22, 0.45])
def test_tuning_is_librosas_number_and_finds_the_detuning(detune):
    y = band(20.0, detune=detune, seed=1)
    S = np.abs(librosa.stft(y)) ** 2
    ref = librosa.estimate_tuning(S=S, sr=SR, bins_per_octave=12)
    acc = fast.Seed43Stream()
    acc.update(fast.power_frames(y))
    assert acc.tuning() == ref
    # A known answer: the chords are ``detune`` semitones sharp (mod 1, within +-0.5).
    assert abs(acc.tuning() - detune) <= 0.03


def test_seed43_within_tolerance_of_librosas_per_feature_calls(y):
    ref = reference_seed43(y, sr=SR)
    ours = compute_features(y, FeatureConfig())
    assert ours.shape == ref.shape == (43, 1 + len(y) // 512) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)
    # The signal exercises top_db clipping on the 128 and the 10 bands.
    mel128 = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR))
    assert np.mean(mel128 == mel128.min()) > 0.01
    assert np.sum(ours[20:30] == ours[20:30].min()) > 20
    # Chroma really varies (not a degenerate all-ones or all-zeros block).
    assert 0.1 < ours[30:42].mean() < 0.9


def test_logmel_within_tolerance_of_librosa(y):
    config = FeatureConfig.named("logmel")
    ours = compute_features(y, config)
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, n_mels=config.n_mels))
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)


def test_silence_and_a_very_short_signal_match_librosa():
    for y in (np.zeros(SR * 3, np.float32), band(0.05, seed=2)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa warns about empty pitch sets and short signals
            ref = reference_seed43(y, sr=SR)
            ours = compute_features(y, FeatureConfig())
        np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("spool_bytes", [0, 3 * 2**20, float("inf")])
def test_blocks_and_spooling_to_disk_change_nothing(y, spool_bytes):
    S_T = fast.power_frames(y)
    whole = fast.Seed43Stream(spool_bytes=float("inf"))
    whole.update(S_T)
    expected = whole.finish()
    acc = fast.Seed43Stream(spool_bytes=spool_bytes)
    for s in range(0, S_T.shape[0], 3 * fast.BLOCK_FRAMES):
        acc.update(S_T[s:s + 3 * fast.BLOCK_FRAMES])
    spool = acc._spool
    assert spool.bytes_in_memory <= spool_bytes
    assert (spool.bytes_on_disk > 0) == (spool_bytes < S_T.nbytes)
    np.testing.assert_array_equal(acc.finish(), expected)
    assert spool.bytes_in_memory == 0 and spool._file is None  # drained and closed


def test_spool_gives_blocks_back_in_order_across_memory_and_disk():
    spool = fast.Spool(max_bytes=100)
    blocks = [(np.full((3, 4), i, np.float32), np.arange(i, dtype=np.int64)) for i in range(6)]
    for b in blocks:
        spool.append(*b)
    assert spool.bytes_in_memory <= 100 and spool.bytes_on_disk > 0
    back = list(spool.drain())
    assert len(back) == len(blocks)
    for (a, b), (c, d) in zip(back, blocks):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
        assert a.dtype == c.dtype and b.dtype == d.dtype


@pytest.mark.parametrize("index", [0, 1])
def test_real_recordings_same_tuning_and_features_within_tolerance(index):
    from progrock.audio import decode

    y = decode(real_songs()[index]).y[: 60 * SR]
    S = np.abs(librosa.stft(y)) ** 2
    acc = fast.Seed43Stream()
    acc.update(fast.power_frames(y))
    assert acc.tuning() == librosa.estimate_tuning(S=S, sr=SR, bins_per_octave=12)
    np.testing.assert_allclose(compute_features(y, FeatureConfig()), reference_seed43(y, sr=SR),
                               rtol=RTOL, atol=ATOL)
