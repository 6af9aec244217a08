"""The familiarity check: songs of the training music are rarely flagged, songs of other music are."""

from __future__ import annotations

import numpy as np
import pytest

from progrock.errors import ConfigError
from progrock.model.familiarity import MIN_SONGS, Familiarity, fit_familiarity, prediction_bound


def _music(rng, n: int, mix: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """Song summaries: correlated normal vectors (``mix`` correlates them), moved by ``shift`` SDs in 5 values."""
    X = rng.standard_normal((n, mix.shape[0])) @ mix.T
    X[:, :5] += shift * np.sqrt((mix[:5] ** 2).sum(axis=1))
    return X


def test_new_songs_of_the_training_music_are_flagged_about_as_rarely_as_promised():
    """30 training songs, 40 statistics each, as in a small collection: the empirical 99th percentile
    of 30 distances is their largest, which new songs exceed several times in a hundred; the prediction
    bound keeps the rate near the promised 1 %."""
    rates = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        mix = rng.standard_normal((40, 40)) / np.sqrt(40) + np.eye(40)
        check = fit_familiarity(_music(rng, 30, mix), seed=seed)
        rates.append(check.unfamiliar(_music(rng, 4000, mix)).mean())
    assert np.mean(rates) <= 0.015 and max(rates) <= 0.05, rates


def test_other_music_is_flagged():
    rng = np.random.default_rng(7)
    mix = rng.standard_normal((40, 40)) / np.sqrt(40) + np.eye(40)
    check = fit_familiarity(_music(rng, 30, mix), seed=0)
    assert check.unfamiliar(_music(rng, 500, mix, shift=4.0)).mean() >= 0.95
    assert np.all(check.distance(_music(rng, 50, mix, shift=8.0)) > 2 * check.cutoff)


def test_the_bound_is_a_normal_prediction_bound_on_the_log_distances():
    from scipy.stats import t

    d = np.exp(np.random.default_rng(3).normal(1.0, 0.2, size=25))
    logs = np.log(d)
    expected = np.exp(logs.mean() + t.ppf(0.99, 24) * logs.std(ddof=1) * np.sqrt(1 + 1 / 25))
    assert prediction_bound(d) == pytest.approx(expected, rel=1e-12)


def test_too_few_songs_are_refused_and_the_arrays_round_trip():
    rng = np.random.default_rng(1)
    with pytest.raises(ConfigError, match=f"at least {MIN_SONGS}"):
        fit_familiarity(rng.standard_normal((MIN_SONGS - 1, 4)))
    check = fit_familiarity(rng.standard_normal((12, 4)))
    again = Familiarity.from_arrays(check.arrays())
    X = rng.standard_normal((5, 4))
    np.testing.assert_array_equal(again.distance(X), check.distance(X))
