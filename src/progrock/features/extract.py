"""Feature extractors: pure functions ``(y, sr, ...) -> ndarray [n_features, n_frames]``.

The seed's 43 features share one STFT: its power spectrogram feeds a 128-band
mel spectrogram (for the MFCCs and the onset strength, as librosa computes
both), the 10 mel bands and the chroma. Each step is librosa's own function
given that spectrogram, so the result equals librosa's per-feature calls on
the waveform (``reference_seed43``) up to float32 rounding; ``tests/
test_features.py`` checks it on real audio.
"""

from __future__ import annotations

import numpy as np
import librosa

from progrock.constants import HOP_LENGTH, N_FFT, SR


def power_spectrogram(y: np.ndarray, *, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> np.ndarray:
    """Power spectrogram ``|STFT|**2`` (Hann window, centred frames, zero padding).

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]

    Returns
    -------
    np.ndarray [shape=(1 + n_fft // 2, 1 + n_samples // hop_length), dtype=float32]
    """
    D = librosa.stft(y, n_fft=n_fft, hop_length=hop_length, center=True, pad_mode="constant")
    return (D.real ** 2 + D.imag ** 2).astype(np.float32, copy=False)


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
    if S is None:
        S = power_spectrogram(y, n_fft=n_fft, hop_length=hop_length)
    mel128_db = librosa.power_to_db(librosa.feature.melspectrogram(S=S, sr=sr, n_fft=n_fft))
    mfcc = librosa.feature.mfcc(S=mel128_db, n_mfcc=n_mfcc)
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=S, sr=sr, n_fft=n_fft, n_mels=n_mels))
    chroma = librosa.feature.chroma_stft(S=S, sr=sr, n_fft=n_fft, n_chroma=n_chroma)
    onset = librosa.onset.onset_strength(S=mel128_db, sr=sr, n_fft=n_fft, hop_length=hop_length)
    return np.vstack([mfcc, mel_db, chroma, onset[None, :]]).astype(np.float32, copy=False)


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
    if S is None:
        S = power_spectrogram(y, n_fft=n_fft, hop_length=hop_length)
    mel = librosa.feature.melspectrogram(S=S, sr=sr, n_fft=n_fft, n_mels=n_mels)
    return librosa.power_to_db(mel).astype(np.float32, copy=False)
