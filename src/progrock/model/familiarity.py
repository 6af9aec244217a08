"""Is a song like the music a model was trained on? A distance to the training songs, and a cut-off.

A model trained on synthetic songs answers "prog, 0.99" on a real recording
with the same confidence as on what it knows. This check says when not to
trust it: every song is summarised by the means, spreads and frame-to-frame
changes of its features (:func:`~progrock.features.summary.song_statistics`),
and its Mahalanobis distance to the training songs' summaries is measured
under a shrunk covariance (Ledoit-Wolf: many statistics, few songs).

The cut-off is a one-sided prediction bound (:data:`PERCENTILE`) for the
distance of a new song from the same music, from the training songs' own
distances, each measured *out of fold* (to a covariance fitted without the
song), so the training songs' closeness to their own fit does not make the
bound too tight. The bound is taken on the log distances (about normal for a
Mahalanobis distance in many dimensions) with Student's t and the
``sqrt(1 + 1/n)`` of a prediction interval: with a few dozen songs the
empirical 99th percentile is just the largest distance, which a new song of
the same music exceeds one time in ``n + 1``, not one in a hundred. A song
beyond the cut-off is *unlike the training music*.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from progrock.errors import ConfigError, ModelError

PERCENTILE = 99.0
"""A new song of the training music stays under the cut-off with this probability (in percent)."""

MIN_SONGS = 10
"""Fewest training songs the check can be fitted on (two per fold)."""

FOLDS = 5
"""Folds for the training songs' out-of-fold distances."""


@dataclass
class Familiarity:
    """The training songs' location and shrunk precision, and the cut-off.

    Attributes
    ----------
    location : np.ndarray [shape=(d,)]
    precision : np.ndarray [shape=(d, d)]
        Inverse of the Ledoit-Wolf covariance of the standardised summaries.
    scale : np.ndarray [shape=(d,)]
        Standard deviation of each summary over the training songs (the summaries are
        standardised first, so decibels and chroma weigh alike).
    cutoff : float
        Distances above it are unlike the training music.
    """

    location: np.ndarray
    precision: np.ndarray
    scale: np.ndarray
    cutoff: float

    def distance(self, X: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row of ``X [n, d]`` (song summaries) to the training songs."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if X.shape[1] != self.location.shape[0]:
            raise ConfigError(f"summaries have {X.shape[1]} values, the familiarity check {self.location.shape[0]}")
        z = (X - self.location) / self.scale
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", z, self.precision, z), 0.0))

    def unfamiliar(self, X: np.ndarray) -> np.ndarray:
        """Per row, whether the song is unlike the training music [n] bool."""
        return self.distance(X) > self.cutoff

    def arrays(self) -> dict[str, np.ndarray]:
        return {"location": self.location, "precision": self.precision, "scale": self.scale,
                "cutoff": np.array([self.cutoff])}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "Familiarity":
        try:
            f = cls(arrays["location"].astype(np.float64), arrays["precision"].astype(np.float64),
                    arrays["scale"].astype(np.float64), float(arrays["cutoff"][0]))
        except KeyError as exc:
            raise ModelError(f"the familiarity check lacks its array {exc}") from None
        d = f.location.shape[0]
        if f.precision.shape != (d, d) or f.scale.shape != (d,) or not np.all(f.scale > 0):
            raise ModelError("the familiarity check's arrays do not fit together")
        return f


def _fit(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.covariance import LedoitWolf

    location = X.mean(axis=0)
    scale = X.std(axis=0)
    scale = np.where(scale > 1e-9 * max(1.0, float(np.abs(location).max())), scale, 1.0)
    lw = LedoitWolf().fit((X - location) / scale)
    return location, lw.precision_, scale


def fit_familiarity(X: np.ndarray, *, seed: int = 0, percentile: float = PERCENTILE) -> Familiarity:
    """Fit the check on the training songs' summaries ``X [n_songs, d]``.

    The cut-off is :func:`prediction_bound` of the out-of-fold distances (:data:`FOLDS` folds).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) < MIN_SONGS:
        raise ConfigError(f"the familiarity check needs at least {MIN_SONGS} training songs, got {len(X)}")
    folds = np.random.default_rng(seed).permutation(len(X)) % FOLDS
    oof = np.empty(len(X))
    for k in range(FOLDS):
        location, precision, scale = _fit(X[folds != k])
        oof[folds == k] = Familiarity(location, precision, scale, 0.0).distance(X[folds == k])
    location, precision, scale = _fit(X)
    return Familiarity(location, precision, scale, prediction_bound(oof, percentile))


def prediction_bound(distances: np.ndarray, percentile: float = PERCENTILE) -> float:
    """The distance a new song of the same music stays under with probability ``percentile`` %.

    A one-sided normal prediction bound on the log distances: ``exp(mean + t * sd * sqrt(1 + 1/n))``
    with ``t`` Student's quantile for ``n - 1`` degrees of freedom.

    Parameters
    ----------
    distances : np.ndarray [shape=(n,)]
        The training songs' out-of-fold distances (positive), ``n >= 3``.
    percentile : float
    """
    from scipy.stats import t as student

    logs = np.log(np.maximum(np.asarray(distances, dtype=np.float64), 1e-12))
    n = len(logs)
    q = student.ppf(percentile / 100.0, n - 1)
    return float(np.exp(logs.mean() + q * logs.std(ddof=1) * np.sqrt(1.0 + 1.0 / n)))
