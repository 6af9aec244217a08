"""Song-level summaries of a per-frame feature matrix: one vector per song.

The classical baselines read these statistics, and the familiarity check
(:mod:`progrock.model.familiarity`) compares a song's with the training songs'.
"""

from __future__ import annotations

import numpy as np


def song_statistics(features: np.ndarray) -> np.ndarray:
    """Mean, standard deviation and mean absolute frame-to-frame change of every feature.

    The change is a cheap measure of how busy the song is.

    Parameters
    ----------
    features : np.ndarray [shape=(n_features, n_frames)]

    Returns
    -------
    np.ndarray [shape=(3 * n_features,), dtype=float64]
    """
    x = np.asarray(features, dtype=np.float64)
    delta = np.abs(np.diff(x, axis=1)).mean(axis=1) if x.shape[1] > 1 else np.zeros(x.shape[0])
    return np.concatenate([x.mean(axis=1), x.std(axis=1), delta])


def statistics_names(feature_names: list[str]) -> list[str]:
    """Column names of :func:`song_statistics` for the given feature names."""
    return ([f"mean_{n}" for n in feature_names] + [f"std_{n}" for n in feature_names]
            + [f"delta_{n}" for n in feature_names])
