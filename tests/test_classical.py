"""Classical models saved as arrays predict what scikit-learn predicts."""

from __future__ import annotations

import numpy as np
import pytest

from progrock.errors import ConfigError, ModelError
from progrock.model.classical import ClassicalModel, choose_C, fit_forest, fit_logistic


def _data(seed: int, n: int = 120, d: int = 12):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 50, d) + rng.uniform(-100, 100, d)
    y = ((X[:, 0] - X[:, 0].mean()) / X[:, 0].std() + 0.8 * rng.normal(size=n) > 0.6).astype(int)
    return X, y


def test_logistic_arrays_equal_scikit_learn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _data(0)
    ours = fit_logistic(X, y, C=0.1, seed=0)
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=5000,
                                                             random_state=0)).fit(X, y)
    X_new, _ = _data(1)
    np.testing.assert_allclose(ours.predict(X_new), ref.predict_proba(X_new)[:, 1], rtol=1e-10, atol=1e-12)
    # the contributions add up to the logit
    logit = np.log(ours.predict(X_new)) - np.log1p(-ours.predict(X_new))
    np.testing.assert_allclose(ours.contributions(X_new).sum(axis=1) + ours.arrays["intercept"][0], logit,
                               rtol=1e-8, atol=1e-8)
    assert ours.contributions(X_new)[:, 0].std() > ours.contributions(X_new)[:, 5].std()   # x0 decides


def test_forest_arrays_equal_scikit_learn():
    from sklearn.ensemble import ExtraTreesClassifier

    X, y = _data(2)
    ours = fit_forest(X, y, n_trees=60, seed=3)
    ref = ExtraTreesClassifier(n_estimators=60, min_samples_leaf=2, class_weight="balanced", random_state=3,
                               n_jobs=1).fit(X, y)
    X_new, y_new = _data(4)
    np.testing.assert_allclose(ours.predict(X_new), ref.predict_proba(X_new)[:, 1], rtol=1e-12, atol=1e-12)
    assert ((ours.predict(X_new) >= 0.5) == y_new).mean() > 0.6          # better than the 0.5 of chance


def test_bad_inputs_and_arrays_are_refused():
    X, y = _data(5)
    with pytest.raises(ConfigError, match="both classes"):
        fit_logistic(X, np.zeros(len(X), int))
    with pytest.raises(ConfigError, match="NaN"):
        fit_forest(np.where(X > 50, np.nan, X), y)
    model = fit_logistic(X, y)
    with pytest.raises(ModelError, match="needs the arrays"):
        ClassicalModel("logistic", {k: v for k, v in model.arrays.items() if k != "coef"})
    with pytest.raises(ModelError, match="NaN"):
        ClassicalModel("logistic", {**model.arrays, "coef": model.arrays["coef"] * np.nan})
    with pytest.raises(ModelError, match="unknown"):
        ClassicalModel("svm", model.arrays)


def _reference_C(X, y, fold, Cs):
    """scikit-learn's own pipeline, refitted without each fold, scored by class-balanced log-loss."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.model_selection import PredefinedSplit, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.utils.class_weight import compute_sample_weight

    losses = []
    for C in Cs:
        pipe = make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=5000))
        p = cross_val_predict(pipe, X, y, cv=PredefinedSplit(fold), method="predict_proba")[:, 1]
        losses.append(log_loss(y, p, sample_weight=compute_sample_weight("balanced", y)))
    return Cs[int(np.argmin(losses))]


def test_choose_C_regularises_few_noisy_songs_and_frees_many_clean_ones():
    Cs = (0.001, 0.01, 0.1, 1.0, 10.0)
    rng = np.random.default_rng(0)
    # few rows, one weak signal among many noise columns: strong regularisation predicts best
    X = rng.normal(size=(40, 60))
    y = (X[:, 0] + 2 * rng.normal(size=40) > 0.3).astype(int)
    fold = np.arange(40) % 5
    few = choose_C(X, y, fold, Cs=Cs)
    assert few == _reference_C(X, y, fold, Cs)
    # many rows, a clean signal in few columns: little regularisation predicts best
    X = rng.normal(size=(400, 4))
    y = (X[:, 0] - X[:, 1] + 0.05 * rng.normal(size=400) > 0.2).astype(int)
    fold = np.arange(400) % 5
    many = choose_C(X, y, fold, Cs=Cs)
    assert many == _reference_C(X, y, fold, Cs)
    assert few <= 0.01 < 1.0 <= many
    with pytest.raises(ConfigError, match="positive"):
        choose_C(X, y, fold, Cs=(0.0, 1.0))
