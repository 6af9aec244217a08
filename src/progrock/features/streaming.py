"""Features of a file in bounded memory: decode in blocks → STFT in blocks → features.

The file layer of :mod:`progrock.features.fast`. Samples come from
:func:`progrock.audio.decode.stream_decode` (the samples and hash of
:func:`progrock.audio.decode`), frames from :class:`~progrock.features.fast.BlockSTFT`,
and the features from the set's accumulator, so the result equals
``compute_features(decode(path).y, config)`` bit for bit while memory stays
about flat in the song's length (the spooled frames beyond
:data:`~progrock.features.fast.SPOOL_BYTES` wait in a temporary file).

A feature set without an accumulator in :data:`STREAMING` is computed the
plain way, from the whole decoded signal.
"""

from __future__ import annotations

import os
from typing import Callable, Protocol

import numpy as np

from progrock.audio.decode import StreamInfo, stream_decode
from progrock.features import fast
from progrock.features.config import FeatureConfig
from progrock.features.sets import compute_features


class Accumulator(Protocol):
    """Takes power frames block by block and gives the feature matrix at the end."""

    def update(self, S_T: np.ndarray) -> None: ...

    def finish(self) -> np.ndarray: ...

    def close(self) -> None: ...


STREAMING: dict[str, Callable[[FeatureConfig], Accumulator]] = {
    "seed43": lambda c: fast.Seed43Stream(sr=c.sr, n_fft=c.n_fft, hop_length=c.hop_length,
                                          n_mfcc=c.n_mfcc, n_mels=c.n_mels, n_chroma=c.n_chroma),
    "logmel": lambda c: fast.LogmelStream(sr=c.sr, n_fft=c.n_fft, n_mels=c.n_mels),
}
"""Feature sets computed block by block, by name (keys of ``FEATURE_SETS``)."""


class FeatureSink:
    """Receives decoded blocks (``update``), gives the features (``finish``).

    Parameters
    ----------
    config : FeatureConfig
    """

    def __init__(self, config: FeatureConfig):
        self.config = config
        make = STREAMING.get(config.set)
        self._acc = make(config) if make is not None else None
        self._stft = fast.BlockSTFT(n_fft=config.n_fft, hop_length=config.hop_length)
        self._blocks: list[np.ndarray] = []  # only for sets without an accumulator

    def update(self, y: np.ndarray) -> None:
        """Take the next mono block at ``config.sr``."""
        if self._acc is None:
            self._blocks.append(y)
            return
        S_T = self._stft.push(y)
        if S_T is not None:
            self._acc.update(S_T)

    def finish(self) -> np.ndarray:
        """The feature matrix [config.n_features, n_frames], float32."""
        if self._acc is None:
            y = np.concatenate(self._blocks) if self._blocks else np.zeros(0, np.float32)
            self._blocks = []
            return compute_features(y, self.config)
        self._acc.update(self._stft.finish())
        return self._acc.finish()

    def close(self) -> None:
        """Drop everything held (the spool's temporary file included)."""
        self._blocks = []
        if self._acc is not None:
            self._acc.close()


def stream_features(path: str | os.PathLike, config: FeatureConfig) -> tuple[FeatureSink, StreamInfo]:
    """Decode a file into a :class:`FeatureSink`; call ``finish()`` for the features.

    Splitting the two steps lets the caller look the audio hash up in a cache
    first and skip the second step (``close()`` then drops the held frames).

    Raises
    ------
    DecodeError
        As :func:`progrock.audio.decode`.
    """
    return stream_decode(path, lambda: FeatureSink(config), sr=config.sr)


def extract_streamed(path: str | os.PathLike, config: FeatureConfig) -> tuple[np.ndarray, str]:
    """Features of a file, in bounded memory.

    Returns
    -------
    features : np.ndarray [shape=(config.n_features, n_frames), dtype=float32]
        Equal to ``compute_features(decode(path, sr=config.sr).y, config)``.
    audio_sha256 : str
        Equal to ``decode(path, sr=config.sr).sha256``.
    """
    sink, info = stream_features(path, config)
    return sink.finish(), info.sha256
