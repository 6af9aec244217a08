"""Bootstrap intervals: right values, right coverage on a known answer, paired comparisons that can tell."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, matthews_corrcoef, roc_auc_score

from progrock.evaluation.intervals import format_interval, paired_difference, roc_auc, with_intervals


def _songs(n: int, accuracy: float, seed: int):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    pred = np.where(rng.random(n) < accuracy, y, 1 - y)
    score = np.clip(pred * 0.6 + rng.random(n) * 0.4, 0, 1)
    return y, pred, score


def test_values_equal_scikit_learn():
    y, pred, score = _songs(60, 0.8, 0)
    m = with_intervals(y, pred, score, resamples=200)
    assert m["balanced_accuracy"]["value"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["mcc"]["value"] == pytest.approx(matthews_corrcoef(y, pred))
    assert m["roc_auc"]["value"] == pytest.approx(roc_auc_score(y, score))
    assert all(v["n"] == 60 for v in m.values())
    for v in m.values():
        assert v["low"] <= v["value"] <= v["high"]
    # ties in the scores count half, as scikit-learn counts them
    s = np.round(score, 1)
    assert roc_auc(y, s)[0] == pytest.approx(roc_auc_score(y, s))


def test_interval_narrows_with_more_songs_and_covers_the_truth():
    """With 90 % accurate verdicts, the interval from 24 songs is wide, from 600 narrow; both hold 0.9
    in most of 40 independent samples (the 95 % interval's coverage, loosely)."""
    widths, covered = {}, 0
    for n in (24, 600):
        y, pred, _ = _songs(n, 0.9, 1)
        m = with_intervals(y, pred, metrics=("balanced_accuracy",), resamples=500)["balanced_accuracy"]
        widths[n] = m["high"] - m["low"]
    assert widths[24] > 2 * widths[600]                 # about sqrt(600 / 24) = 5 times, loosely
    for seed in range(40):
        y, pred, _ = _songs(150, 0.9, 100 + seed)
        m = with_intervals(y, pred, metrics=("balanced_accuracy",), resamples=300, seed=seed)["balanced_accuracy"]
        covered += m["low"] <= 0.9 <= m["high"]
    assert covered >= 33


def test_paired_difference_tells_apart_only_when_the_data_can():
    y, good, _ = _songs(300, 0.95, 2)
    _, bad, _ = _songs(300, 0.6, 3)
    bad = np.where(np.random.default_rng(4).random(300) < 0.6, y, 1 - y)
    assert paired_difference(y, good, bad, resamples=500)["verdict"] == "A better"
    assert paired_difference(y, bad, good, resamples=500)["verdict"] == "B better"
    # two models that differ on one song out of 20: no claim
    y, a, _ = _songs(20, 0.85, 5)
    b = a.copy()
    b[0] = 1 - b[0]
    d = paired_difference(y, a, b, resamples=500)
    assert d["verdict"] == "cannot tell apart" and d["low"] <= 0 <= d["high"]


def test_too_few_songs_give_no_interval():
    m = with_intervals([1, 0], [1, 0], metrics=("balanced_accuracy",), resamples=200)["balanced_accuracy"]
    assert m["value"] == 1.0 and m["low"] is None and format_interval(m) == "1.000"
    assert format_interval({"value": 0.84, "low": 0.66, "high": 0.97}) == "0.840 [0.66, 0.97]"
