"""Baselines that keep the CNN honest: classical models on song-level statistics.

Each song's feature matrix [n_features, n_frames] is summarised by the mean and
standard deviation of every feature over time, plus the mean absolute
frame-to-frame change (a cheap measure of how busy the song is). ExtraTrees was
the strongest classical model in a published comparison on this task;
logistic regression is the simplest sensible model. Both weight the classes by
their frequency, so prog as the minority is not ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from progrock.errors import ConfigError


def song_statistics(features: np.ndarray) -> np.ndarray:
    """Summary statistics of one song.

    Parameters
    ----------
    features : np.ndarray [shape=(n_features, n_frames)]

    Returns
    -------
    np.ndarray [shape=(3 * n_features,), dtype=float64]
        Mean, standard deviation and mean absolute first difference per feature.
    """
    x = np.asarray(features, dtype=np.float64)
    delta = np.abs(np.diff(x, axis=1)).mean(axis=1) if x.shape[1] > 1 else np.zeros(x.shape[0])
    return np.concatenate([x.mean(axis=1), x.std(axis=1), delta])


def statistics_names(feature_names: list[str]) -> list[str]:
    """Column names of :func:`song_statistics` for the given feature names."""
    return ([f"mean_{n}" for n in feature_names] + [f"std_{n}" for n in feature_names]
            + [f"delta_{n}" for n in feature_names])


@dataclass(frozen=True)
class Baseline:
    """A named baseline: how to build its (unfitted) scikit-learn model."""

    name: str
    title: str
    build: Callable[[int], ClassifierMixin]


BASELINES: dict[str, Baseline] = {
    "extratrees": Baseline(
        "extratrees", "ExtraTrees (song statistics)",
        lambda seed: ExtraTreesClassifier(n_estimators=500, min_samples_leaf=2,
                                          class_weight="balanced", random_state=seed, n_jobs=1)),
    "logreg": Baseline(
        "logreg", "Logistic regression (song statistics)",
        lambda seed: make_pipeline(StandardScaler(),
                                   LogisticRegression(C=0.1, class_weight="balanced",
                                                      max_iter=5000, random_state=seed))),
}


def fit_baseline(name: str, X: np.ndarray, y: np.ndarray, *, seed: int = 0) -> ClassifierMixin:
    """Fit a baseline on song statistics.

    Parameters
    ----------
    name : str
        A key of :data:`BASELINES`.
    X : np.ndarray [shape=(n_songs, n_statistics)]
    y : np.ndarray [shape=(n_songs,)]
        0 = nonprog, 1 = prog.
    seed : int

    Returns
    -------
    A fitted scikit-learn classifier with ``predict_proba``.
    """
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; known: {sorted(BASELINES)}")
    if len(np.unique(y)) < 2:
        raise ConfigError("a baseline needs both classes in its training set")
    return BASELINES[name].build(seed).fit(X, y)


def prog_probability(model: ClassifierMixin, X: np.ndarray) -> np.ndarray:
    """Probability of prog per song [shape=(n_songs,)]."""
    classes = list(model.classes_)
    return model.predict_proba(X)[:, classes.index(1)]
