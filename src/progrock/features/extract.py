"""Feature extractors: pure functions ``(y, sr, ...) -> ndarray [n_features, n_frames]``.

The seed's 43 features share one STFT: its power spectrogram feeds a 128-band
mel spectrogram (for the MFCCs and the onset strength, as librosa computes
both), the 10 mel bands and the chroma. The work is done by
:mod:`progrock.features.fast`, which repeats librosa's arithmetic on that one
spectrogram (sparse mel filterbanks, a vectorised ``estimate_tuning``), so the
result equals librosa's per-feature calls on the waveform
(``reference_seed43``) up to float32 rounding, with the same tuning estimate;
``tests/test_features.py`` and ``tests/test_fast_features.py`` check it.
"""

from __future__ import annotations

import numpy as np
import librosa

from progrock.constants import HOP_LENGTH, N_FFT, SR
from progrock.features import fast


def power_spectrogram(y: np.ndarray, *, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> np.ndarray:
    """Power spectrogram ``|STFT|**2`` (Hann window, centred frames, zero padding).

    Equal bit for bit to ``np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length)) ** 2``.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]

    Returns
    -------
    np.ndarray [shape=(1 + n_fft // 2, 1 + n_samples // hop_length), dtype=float32]
        A transposed view of the frames-major :func:`progrock.features.fast.power_frames`.
    """
    return fast.power_frames(y, n_fft=n_fft, hop_length=hop_length).T


def seed43(y: np.ndarray, *, sr: int = SR, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH,
           n_mfcc: int = 20, n_mels: int = 10, n_chroma: int = 12,
           S: np.ndarray | None = None) -> np.ndarray:
    """The seed's per-frame features: MFCCs, mel bands in dB, chroma, onset strength.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]
        Mono audio at ``sr``.
    sr, n_fft, hop_length : int
        Sample rate (Hz), STFT window and hop (samples).
    n_mfcc, n_mels, n_chroma : int
        Rows of each block (20, 10 and 12 in the seed).
    S : np.ndarray [shape=(1 + n_fft // 2, n_frames)], optional
        A precomputed power spectrogram of ``y``.

    Returns
    -------
    np.ndarray [shape=(n_mfcc + n_mels + n_chroma + 1, n_frames), dtype=float32]
        Rows in the seed's order: MFCC 0..19, mel dB 0..9, chroma C..B, onset.
    """
    S_T = fast.power_frames(y, n_fft=n_fft, hop_length=hop_length) if S is None else np.asarray(S).T
    acc = fast.Seed43Stream(sr=sr, n_fft=n_fft, hop_length=hop_length, n_mfcc=n_mfcc,
                            n_mels=n_mels, n_chroma=n_chroma, spool_bytes=float("inf"))
    acc.update(np.asarray(S_T, dtype=np.float32))
    return acc.finish()


def reference_seed43(y: np.ndarray, *, sr: int = SR, n_fft: int = N_FFT,
                     hop_length: int = HOP_LENGTH) -> np.ndarray:
    """The seed's features by the straightforward librosa calls, each from the waveform.

    This is the reference :func:`seed43` is tested and benchmarked against.

    Returns
    -------
    np.ndarray [shape=(43, n_frames), dtype=float32]
    """
    kw = dict(sr=sr, n_fft=n_fft, hop_length=hop_length)
    mfcc = librosa.feature.mfcc(y=y, n_mfcc=20, **kw)
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, n_mels=10, **kw))
    chroma = librosa.feature.chroma_stft(y=y, **kw)
    onset = librosa.onset.onset_strength(y=y, **kw)
    return np.vstack([mfcc, mel, chroma, onset[None, :]]).astype(np.float32)


def logmel(y: np.ndarray, *, sr: int = SR, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH,
           n_mels: int = 96, S: np.ndarray | None = None) -> np.ndarray:
    """Log-mel spectrogram in dB (``power_to_db`` with ``ref=1``, ``top_db=80``).

    Returns
    -------
    np.ndarray [shape=(n_mels, n_frames), dtype=float32]
    """
    S_T = fast.power_frames(y, n_fft=n_fft, hop_length=hop_length) if S is None else np.asarray(S).T
    acc = fast.LogmelStream(sr=sr, n_fft=n_fft, n_mels=n_mels, spool_bytes=float("inf"))
    acc.update(np.asarray(S_T, dtype=np.float32))
    return acc.finish()
