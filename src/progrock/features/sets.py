"""The feature registry: every feature set declared once, with its configuration.

A *feature set* turns mono audio into a matrix ``[n_features, n_frames]``.
Each is declared here once (:data:`FEATURE_SETS`): its default parameters, its
row names, its frame rate and the *accumulator* that computes it from audio
arriving in blocks (``update(y)`` per block, ``finish()`` for the matrix). The
array, file and files layers (:func:`compute_features`,
:mod:`progrock.features.files`) and the cache all go through these entries,
so adding a feature set touches this module and the module holding its
accumulator, nothing else.

This module imports no signal-processing library: reading a model's
description (its :class:`FeatureConfig`) stays cheap. The accumulators are
imported when features are computed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from progrock.config import Config
from progrock.constants import HOP_LENGTH, N_FFT, SR
from progrock.errors import ConfigError

FEATURE_VERSION = 1
"""Bumped whenever an accumulator's output changes: old cache entries then miss."""


class Accumulator(Protocol):
    """Computes one feature matrix from mono audio given block by block."""

    def update(self, y: np.ndarray) -> None:
        """Take the next block ``y [shape=(n,), dtype=float32]`` at the configuration's ``sr``."""

    def finish(self) -> np.ndarray:
        """The matrix ``[n_features, n_frames]`` (float32) of everything given."""

    def close(self) -> None:
        """Drop what is held without finishing (temporary files included)."""


@dataclass(frozen=True)
class FeatureConfig(Config):
    """Everything that determines a feature matrix.

    Parameters
    ----------
    name : str
        The feature set, a key of :data:`FEATURE_SETS` (``"seed43"``, ``"logmel"``, ...).
    sr : int
        Sample rate the set's accumulator receives, in Hz.
    n_fft, hop_length : int
        STFT window and hop, in samples at ``sr``.
    n_mfcc, n_mels, n_chroma : int
        Rows of each block where the set has them (0 where it has none).
    version : int
        :data:`FEATURE_VERSION` when the features were computed.
    """

    name: str = "seed43"
    sr: int = SR
    n_fft: int = N_FFT
    hop_length: int = HOP_LENGTH
    n_mfcc: int = 20
    n_mels: int = 10
    n_chroma: int = 12
    version: int = FEATURE_VERSION

    def __post_init__(self) -> None:
        if self.name not in FEATURE_SETS:
            raise ConfigError(f"unknown feature set {self.name!r}; known: {sorted(FEATURE_SETS)}")

    @classmethod
    def named(cls, name: str) -> "FeatureConfig":
        """The default configuration of a feature set."""
        return feature_set(name).default

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureConfig":
        """Rebuild from :meth:`to_dict`; descriptions written before the set was called ``name`` say ``set``."""
        if isinstance(data, dict) and "set" in data and "name" not in data:
            data = {("name" if k == "set" else k): v for k, v in data.items()}
        return super().from_dict(data)

    @property
    def feature_set(self) -> "FeatureSet":
        return FEATURE_SETS[self.name]

    @property
    def feature_names(self) -> list[str]:
        """One name per row of the feature matrix."""
        return self.feature_set.row_names(self)

    @property
    def n_features(self) -> int:
        """Rows of the feature matrix."""
        return len(self.feature_names)

    @property
    def frame_rate(self) -> float:
        """Columns of the feature matrix per second of audio."""
        return self.feature_set.frame_rate(self)

    def key(self) -> str:
        """A short hash of every parameter: part of the feature cache key.

        Hashed in the form progrock has always used (the set under ``"set"``),
        so caches written before keep their entries.
        """
        legacy = {("set" if k == "name" else k): v for k, v in self.to_dict().items()}
        return hashlib.sha256(json.dumps(legacy, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> str:
        """One line for people, e.g. ``seed43 (43 features, 22050 Hz, n_fft 2048, hop 512)``."""
        return (f"{self.name} ({self.n_features} features, {self.sr} Hz, n_fft {self.n_fft}, "
                f"hop {self.hop_length})")


@dataclass(frozen=True)
class FeatureSet:
    """A feature set's declaration.

    Attributes
    ----------
    name : str
    description : str
        One line for people.
    defaults : dict
        Parameters of its default :class:`FeatureConfig` beyond the name.
    row_names : callable
        ``row_names(config) -> list[str]``, one per row.
    frame_rate : callable
        ``frame_rate(config) -> float``, columns per second.
    accumulator : callable
        ``accumulator(config) -> Accumulator``.
    """

    name: str
    description: str
    defaults: dict
    row_names: Callable[[FeatureConfig], list[str]]
    frame_rate: Callable[[FeatureConfig], float]
    accumulator: Callable[[FeatureConfig], Accumulator]

    @property
    def default(self) -> FeatureConfig:
        return FeatureConfig(name=self.name, **self.defaults)


_PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def _seed43_names(c: FeatureConfig) -> list[str]:
    chroma = list(_PITCH_CLASSES) if c.n_chroma == 12 else [str(i) for i in range(c.n_chroma)]
    return ([f"mfcc_{i}" for i in range(c.n_mfcc)] + [f"mel_db_{i}" for i in range(c.n_mels)]
            + [f"chroma_{p}" for p in chroma] + ["onset_strength"])


def _stft_rate(c: FeatureConfig) -> float:
    return c.sr / c.hop_length


def _seed43(c: FeatureConfig) -> Accumulator:
    from progrock.features import spectral

    return spectral.FromAudio(spectral.Seed43Stream(sr=c.sr, n_fft=c.n_fft, hop_length=c.hop_length,
                                                    n_mfcc=c.n_mfcc, n_mels=c.n_mels, n_chroma=c.n_chroma),
                              n_fft=c.n_fft, hop_length=c.hop_length)


def _logmel(c: FeatureConfig) -> Accumulator:
    from progrock.features import spectral

    return spectral.FromAudio(spectral.LogmelStream(sr=c.sr, n_fft=c.n_fft, n_mels=c.n_mels),
                              n_fft=c.n_fft, hop_length=c.hop_length)


def _musicnn(c: FeatureConfig) -> Accumulator:
    from progrock.features.musicnn.features import MusicnnFeatures

    return MusicnnFeatures()


def _musicnn_names(c: FeatureConfig) -> list[str]:
    from progrock.features.musicnn.features import row_names

    return row_names()


FEATURE_SETS: dict[str, FeatureSet] = {
    "seed43": FeatureSet(
        name="seed43",
        description="the course project's 43 features: 20 MFCC, 10 mel bands in dB, 12 chroma, onset strength",
        defaults=dict(sr=SR, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mfcc=20, n_mels=10, n_chroma=12),
        row_names=_seed43_names, frame_rate=_stft_rate, accumulator=_seed43),
    "logmel": FeatureSet(
        name="logmel",
        description="log-mel spectrogram in dB (96 bands)",
        defaults=dict(sr=SR, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mfcc=0, n_mels=96, n_chroma=0),
        row_names=lambda c: [f"logmel_{i}" for i in range(c.n_mels)], frame_rate=_stft_rate,
        accumulator=_logmel),
    "musicnn": FeatureSet(
        name="musicnn",
        description="musicnn's MSD tagger per 3-s patch: its 200-value penultimate embedding and 50 tags",
        defaults=dict(sr=16_000, n_fft=512, hop_length=256, n_mfcc=0, n_mels=96, n_chroma=0),
        row_names=_musicnn_names, frame_rate=lambda c: c.sr / c.hop_length / 187, accumulator=_musicnn),
}
"""Every feature set, by name."""


def feature_set(name: str) -> FeatureSet:
    """The registry entry of a feature set; an unknown name is a :class:`ConfigError` listing the known ones."""
    if name not in FEATURE_SETS:
        raise ConfigError(f"unknown feature set {name!r}; known: {sorted(FEATURE_SETS)}")
    return FEATURE_SETS[name]


def compute_features(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Feature matrix of a whole mono signal (the array layer).

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]
        Mono audio at ``config.sr``.
    config : FeatureConfig

    Returns
    -------
    np.ndarray [shape=(config.n_features, n_frames), dtype=float32]
        For the STFT sets ``n_frames = 1 + n_samples // config.hop_length``.
    """
    acc = config.feature_set.accumulator(config)
    try:
        acc.update(np.ascontiguousarray(y, dtype=np.float32))
        return acc.finish()
    finally:
        acc.close()
