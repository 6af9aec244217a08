"""The feature sets: one lookup table, checked once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from progrock.features import extract
from progrock.features.config import FeatureConfig

_PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


@dataclass(frozen=True)
class FeatureSet:
    """A named feature set: its extractor, row names and default configuration."""

    name: str
    compute: Callable[[np.ndarray, FeatureConfig], np.ndarray]
    names: Callable[[FeatureConfig], list[str]]
    description: str

    @property
    def default(self) -> FeatureConfig:
        return _DEFAULTS[self.name]


def _seed43_names(c: FeatureConfig) -> list[str]:
    chroma = list(_PITCH_CLASSES) if c.n_chroma == 12 else [str(i) for i in range(c.n_chroma)]
    return ([f"mfcc_{i}" for i in range(c.n_mfcc)] + [f"mel_db_{i}" for i in range(c.n_mels)]
            + [f"chroma_{p}" for p in chroma] + ["onset_strength"])


FEATURE_SETS: dict[str, FeatureSet] = {
    "seed43": FeatureSet(
        name="seed43",
        compute=lambda y, c: extract.seed43(y, sr=c.sr, n_fft=c.n_fft, hop_length=c.hop_length,
                                            n_mfcc=c.n_mfcc, n_mels=c.n_mels, n_chroma=c.n_chroma),
        names=_seed43_names,
        description="the course's standard set: 20 MFCC, 10 mel bands in dB, 12 chroma, onset strength",
    ),
    "logmel": FeatureSet(
        name="logmel",
        compute=lambda y, c: extract.logmel(y, sr=c.sr, n_fft=c.n_fft, hop_length=c.hop_length,
                                            n_mels=c.n_mels),
        names=lambda c: [f"logmel_{i}" for i in range(c.n_mels)],
        description="log-mel spectrogram in dB (96 bands by default)",
    ),
}

_DEFAULTS: dict[str, FeatureConfig] = {}


def _init_defaults() -> None:
    _DEFAULTS["seed43"] = FeatureConfig(set="seed43")
    _DEFAULTS["logmel"] = FeatureConfig(set="logmel", n_mels=96, n_mfcc=0, n_chroma=0)


def compute_features(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Feature matrix of a mono signal under ``config``.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]
        Mono audio at ``config.sr``.
    config : FeatureConfig

    Returns
    -------
    np.ndarray [shape=(config.n_features, 1 + n_samples // config.hop_length), dtype=float32]
    """
    return FEATURE_SETS[config.set].compute(y, config)
