"""musicnn's input: log-compressed mel power in patches of 187 frames (3 s).

The original (``musicnn.extractor.batch_data``) computes, on mono audio at
16 kHz::

    S = librosa.feature.melspectrogram(y=y, sr=16000, hop_length=256, n_fft=512, n_mels=96).T
    S = S.astype(np.float16)
    x = np.log10(10000 * S + 1)          # float32 under numpy 1.x

that is a centred power STFT (Hann window), Slaney mel filters, the power
rounded to float16, then the log in float32; and it cuts ``x`` into
non-overlapping patches of 187 frames, dropping the tail. :func:`log_mel`
and :func:`patches` do the same, with two differences where the original
fails:

* mel power above float16's largest value (65504, far above full-scale
  music) becomes 65504 here, where the original's log-mel becomes ``inf``;
* a song shorter than one patch (2.98 s) has its frames looped to one patch,
  as musicnn's training looped short clips ("repeat-pad"); the original
  crashes.

The centring pads with zeros, as librosa >= 0.10 does and as the reference
outputs in ``tests/data`` were made (librosa 0.11). musicnn 0.1.0 was made
with librosa 0.7, which padded by reflection: that changes a song's first
frame only (measured on a real song: the first patch's tags by up to 0.002,
the song mean by 3e-5).
"""

from __future__ import annotations

from functools import lru_cache

import librosa
import numpy as np
import soxr

from progrock.features.spectral import BlockSTFT, one_blas_thread

SR: int = 16_000
"""Sample rate of musicnn's input, in Hz."""

N_FFT: int = 512
"""STFT window length, in samples (32 ms at 16 kHz)."""

HOP_LENGTH: int = 256
"""STFT hop, in samples (16 ms at 16 kHz: 62.5 frames per second)."""

N_MELS: int = 96
"""Mel bands (Slaney scale and normalisation, librosa's default)."""

PATCH_FRAMES: int = 187
"""Frames per patch: 3 s as musicnn counts them (``librosa.time_to_frames(3, ...) + 1``)."""

PATCH_SECONDS: float = PATCH_FRAMES * HOP_LENGTH / SR
"""Time from one patch's first frame to the next patch's first frame: 2.992 s."""

LOG_SCALE: float = 10_000.0
"""The log compression is ``log10(LOG_SCALE * S + 1)``."""

MAX_POWER: float = float(np.finfo(np.float16).max)
"""Mel power is clipped to float16's largest value (65504) before the rounding to float16."""

MAX_LOG_MEL: float = float(np.log10(np.float32(LOG_SCALE) * np.float32(MAX_POWER) + np.float32(1.0)))
"""Largest value :func:`log_mel` gives (8.816); its smallest is 0 (silence)."""

MEL_BLOCK: int = 256
"""Frames per mel product: the same block sizes for a whole song and a stream give the same bits."""

CHUNK_SAMPLES: int = 2**18
"""Samples :func:`log_mel` turns into frames at a time (16 s: 1 MB of power frames)."""


@lru_cache(maxsize=4)
def mel_basis_T(sr: int = SR) -> np.ndarray:
    """``librosa.filters.mel(sr=sr, n_fft=512, n_mels=96).T``, C-contiguous float32 [257, 96]."""
    M = librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=N_MELS)
    return np.ascontiguousarray(M.T, dtype=np.float32)


@one_blas_thread
def log_mel_frames(S_T: np.ndarray) -> np.ndarray:
    """musicnn's log compression of power frames.

    Parameters
    ----------
    S_T : np.ndarray [shape=(n_frames, 257), dtype=float32]
        Power STFT frames (n_fft 512), frames-major, as
        :class:`progrock.features.spectral.BlockSTFT` gives them; the first
        frame's index must be a multiple of :data:`MEL_BLOCK`, so the blocks
        of the mel product are the same whichever way the song is cut.

    Returns
    -------
    np.ndarray [shape=(n_frames, 96), dtype=float32]
        ``log10(10000 * float16(mel power) + 1)``.
    """
    M_T = mel_basis_T()
    out = np.empty((S_T.shape[0], N_MELS), dtype=np.float32)
    for s in range(0, S_T.shape[0], MEL_BLOCK):
        mel = S_T[s:s + MEL_BLOCK] @ M_T
        np.minimum(mel, np.float32(MAX_POWER), out=mel)
        rounded = mel.astype(np.float16).astype(np.float32)
        out[s:s + MEL_BLOCK] = np.log10(np.float32(LOG_SCALE) * rounded + np.float32(1.0))
    return out


def log_mel(y: np.ndarray, *, sr: int = SR) -> np.ndarray:
    """musicnn's log-mel spectrogram of a mono signal.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]
        Mono audio.
    sr : int
        Sample rate of ``y`` in Hz; other rates than 16,000 are resampled with
        soxr's high-quality filter, as :func:`progrock.audio.decode` and
        ``librosa.load`` resample.

    Returns
    -------
    np.ndarray [shape=(1 + n_samples_16k // 256, 96), dtype=float32]
        Frames-major, as the original holds it; silence gives zeros.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"log_mel takes mono audio [n_samples], not shape {y.shape}")
    if sr != SR:
        y = soxr.resample(y, sr, SR, quality="HQ").astype(np.float32, copy=False)
    # The centred STFT in chunks, so only the log-mel of the whole song is held.
    stft = BlockSTFT(n_fft=N_FFT, hop_length=HOP_LENGTH, block_frames=MEL_BLOCK)
    parts = []
    for s in range(0, len(y), CHUNK_SAMPLES):
        S_T = stft.push(y[s:s + CHUNK_SAMPLES])
        if S_T is not None:
            parts.append(log_mel_frames(S_T))
    parts.append(log_mel_frames(stft.finish()))
    return np.concatenate(parts)


def patches(mel: np.ndarray, *, n_frames: int = PATCH_FRAMES) -> np.ndarray:
    """Non-overlapping patches of a log-mel spectrogram, as musicnn cuts them.

    Patch ``i`` holds frames ``[i * n_frames, (i + 1) * n_frames)``; the
    frames after the last whole patch are dropped (as the original drops
    them). A spectrogram shorter than one patch is looped to one patch.

    Parameters
    ----------
    mel : np.ndarray [shape=(n_mel_frames, 96)]
        From :func:`log_mel`; at least one frame.
    n_frames : int
        Frames per patch.

    Returns
    -------
    np.ndarray [shape=(max(1, n_mel_frames // n_frames), n_frames, 96), dtype=float32]
    """
    mel = np.asarray(mel, dtype=np.float32)
    if mel.ndim != 2 or mel.shape[0] == 0:
        raise ValueError(f"patches needs a log-mel spectrogram [n_frames >= 1, n_mels], not shape {mel.shape}")
    if mel.shape[0] < n_frames:
        mel = np.resize(mel, (n_frames, mel.shape[1]))  # repeats the rows in order
    n_patches = mel.shape[0] // n_frames
    return np.ascontiguousarray(mel[:n_patches * n_frames]).reshape(n_patches, n_frames, mel.shape[1])


def patch_starts(n_patches: int, *, n_frames: int = PATCH_FRAMES) -> np.ndarray:
    """Time of each patch's first frame, in seconds.

    Returns
    -------
    np.ndarray [shape=(n_patches,), dtype=float64]
        ``i * n_frames * 256 / 16000`` (frame ``j`` is centred on sample ``j * 256``).
    """
    return np.arange(n_patches) * (n_frames * HOP_LENGTH / SR)
