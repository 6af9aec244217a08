"""The feature sets computed the straightforward way, with librosa's per-feature calls.

Not used to compute features: these are the definitions the fast path
(:mod:`progrock.features.spectral`) is tested and benchmarked against.
"""

from __future__ import annotations

import librosa
import numpy as np

from progrock.constants import HOP_LENGTH, N_FFT, SR


def reference_seed43(y: np.ndarray, *, sr: int = SR, n_fft: int = N_FFT,
                     hop_length: int = HOP_LENGTH) -> np.ndarray:
    """The seed43 set by librosa's calls, each from the waveform.

    Returns
    -------
    np.ndarray [shape=(43, n_frames), dtype=float32]
        20 MFCC, 10 mel bands in dB, 12 chroma (estimated tuning), onset strength.
    """
    kw = dict(sr=sr, n_fft=n_fft, hop_length=hop_length)
    mfcc = librosa.feature.mfcc(y=y, n_mfcc=20, **kw)
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, n_mels=10, **kw))
    chroma = librosa.feature.chroma_stft(y=y, **kw)
    onset = librosa.onset.onset_strength(y=y, **kw)
    return np.vstack([mfcc, mel, chroma, onset[None, :]]).astype(np.float32)


def reference_power_spectrogram(y: np.ndarray, *, n_fft: int = N_FFT,
                                hop_length: int = HOP_LENGTH) -> np.ndarray:
    """``|STFT|**2`` by librosa: ``np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length)) ** 2``.

    Returns
    -------
    np.ndarray [shape=(1 + n_fft // 2, 1 + n_samples // hop_length), dtype=float32]
    """
    return np.abs(librosa.stft(np.asarray(y, dtype=np.float32), n_fft=n_fft, hop_length=hop_length)) ** 2
