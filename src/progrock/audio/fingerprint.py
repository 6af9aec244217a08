"""A coarse audio fingerprint to find copies of one recording across formats.

Haitsma & Kalker's idea (2002): the sign of the energy difference between
neighbouring bands, differenced over time, is stable under lossy coding,
resampling and level changes. Two copies of one recording differ in a few per
cent of the bits; unrelated songs in about half.
"""

from __future__ import annotations

import numpy as np
import librosa

from progrock.constants import SR

FP_N_FFT = 4096
FP_HOP = 1024
FP_BANDS = 17


def fingerprint(y: np.ndarray, *, sr: int = SR) -> np.ndarray:
    """Binary fingerprint of a signal.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]
    sr : int

    Returns
    -------
    np.ndarray [shape=(FP_BANDS - 1, n_frames - 1), dtype=bool]
        About 21.5 frames per second at 22,050 Hz; frames overlap by 3/4 so
        that an encoder's delay (MP3, AAC priming) shifts few bits.
    """
    E = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=FP_N_FFT, hop_length=FP_HOP,
                                       n_mels=FP_BANDS, fmin=300.0, fmax=4000.0)
    band_diff = E[:-1] - E[1:]
    return (band_diff[:, 1:] - band_diff[:, :-1]) > 0


def fingerprint_distance(a: np.ndarray, b: np.ndarray, *, max_shift: int = 4,
                         min_frames: int = 1) -> float:
    """Bit error rate between two fingerprints, minimised over small time shifts.

    Parameters
    ----------
    a, b : np.ndarray [shape=(n_bits, n_frames), dtype=bool]

    Returns
    -------
    float
        In [0, 1]: ~0 for copies of one recording, ~0.5 for unrelated audio;
        1.0 when either is empty.
    """
    best = 1.0
    for shift in range(-max_shift, max_shift + 1):
        aa = a[:, max(shift, 0):]
        bb = b[:, max(-shift, 0):]
        n = min(aa.shape[1], bb.shape[1])
        if n < max(min_frames, 1):
            continue
        best = min(best, float(np.mean(aa[:, :n] != bb[:, :n])))
    return best
