"""Feature configurations: what a feature matrix means, and the key that caches it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields

from progrock.constants import HOP_LENGTH, N_FFT, SR
from progrock.errors import ConfigError

FEATURE_VERSION = 1
"""Bumped whenever an extractor's output changes: old cache entries then miss."""


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that determines a feature matrix.

    Parameters
    ----------
    set : str
        Name of the feature set, a key of :data:`progrock.features.FEATURE_SETS`:
        ``"seed43"`` (20 MFCC, 10 mel bands in dB, 12 chroma, 1 onset strength)
        or ``"logmel"`` (``n_mels`` log-mel bands).
    sr : int
        Sample rate in Hz.
    n_fft : int
        STFT window in samples.
    hop_length : int
        STFT hop in samples.
    n_mfcc : int
        MFCCs in ``seed43``.
    n_mels : int
        Mel bands in dB: 10 in ``seed43``; 96 by default in ``logmel``.
    n_chroma : int
        Chroma bins in ``seed43``.
    """

    set: str = "seed43"
    sr: int = SR
    n_fft: int = N_FFT
    hop_length: int = HOP_LENGTH
    n_mfcc: int = 20
    n_mels: int = 10
    n_chroma: int = 12
    version: int = FEATURE_VERSION

    def __post_init__(self) -> None:
        from progrock.features.sets import FEATURE_SETS

        if self.set not in FEATURE_SETS:
            raise ConfigError(f"unknown feature set {self.set!r}; known: {sorted(FEATURE_SETS)}")

    @classmethod
    def named(cls, name: str) -> "FeatureConfig":
        """The default configuration of a feature set (``"seed43"``, ``"logmel"``)."""
        from progrock.features.sets import FEATURE_SETS

        if name not in FEATURE_SETS:
            raise ConfigError(f"unknown feature set {name!r}; known: {sorted(FEATURE_SETS)}")
        return FEATURE_SETS[name].default

    @property
    def feature_names(self) -> list[str]:
        """One name per row of the feature matrix."""
        from progrock.features.sets import FEATURE_SETS

        return FEATURE_SETS[self.set].names(self)

    @property
    def n_features(self) -> int:
        """Rows of the feature matrix."""
        return len(self.feature_names)

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sr / self.hop_length

    def to_dict(self) -> dict:
        """A JSON-ready dictionary; :meth:`from_dict` reverses it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureConfig":
        """Rebuild from :meth:`to_dict`'s output; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown feature configuration keys: {sorted(unknown)}")
        return cls(**data)

    def key(self) -> str:
        """A short hash of every parameter: part of the feature cache key."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        """One line for people, e.g. ``seed43 (43 features, 22050 Hz, hop 512)``."""
        return f"{self.set} ({self.n_features} features, {self.sr} Hz, n_fft {self.n_fft}, hop {self.hop_length})"
