"""Classical models on song-level inputs, fitted with scikit-learn and saved as plain arrays.

Two kinds, enough for every song-level model of a run (the baselines, the
structure model, the head on the pretrained embeddings):

``"logistic"``
    standardisation then logistic regression (``StandardScaler`` +
    ``LogisticRegression``): arrays ``mean``, ``scale``, ``coef``, ``intercept``;
``"forest"``
    a forest of decision trees (``ExtraTreesClassifier``): every tree's nodes
    end to end, arrays ``left``, ``right``, ``feature``, ``threshold``,
    ``prob`` (the leaf's share of prog) and ``roots`` (each tree's first node).

Fitting is scikit-learn's. Saving keeps only those arrays (safetensors, no
pickle: loading runs no code), and :class:`ClassicalModel` predicts from them
with numpy: the same probabilities as scikit-learn's ``predict_proba``
(``tests/test_classical.py``), and no scikit-learn import when a run is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from progrock.errors import ConfigError, ModelError

KINDS = ("logistic", "forest")

LOGISTIC_C = 0.1
"""The logistic models' inverse regularisation unless another is asked for."""


@dataclass
class ClassicalModel:
    """A fitted classical model as arrays: ``predict(X [n, d]) -> p(prog) [n]``.

    Attributes
    ----------
    kind : {"logistic", "forest"}
    arrays : dict of np.ndarray
        See the module's docstring.
    """

    kind: str
    arrays: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        need = {"logistic": {"mean", "scale", "coef", "intercept"},
                "forest": {"left", "right", "feature", "threshold", "prob", "roots"}}.get(self.kind)
        if need is None:
            raise ModelError(f"unknown classical model kind {self.kind!r}; known: {KINDS}")
        if missing := need - set(self.arrays):
            raise ModelError(f"a {self.kind} model needs the arrays {sorted(missing)}")
        if not all(np.all(np.isfinite(a)) for k, a in self.arrays.items() if a.dtype.kind == "f"):
            raise ModelError(f"the {self.kind} model's arrays hold NaN or infinity")

    @property
    def n_inputs(self) -> int:
        """Columns of ``X``."""
        if self.kind == "logistic":
            return int(self.arrays["coef"].shape[0])
        return int(self.arrays["n_inputs"][0]) if "n_inputs" in self.arrays else -1

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Probability of prog per row of ``X [n, d]`` -> ``[n]`` float64."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if self.kind == "logistic":
            return _sigmoid(self.linear(X))
        return self._forest(X)

    def linear(self, X: np.ndarray) -> np.ndarray:
        """The logistic model's logit per row (before the sigmoid)."""
        z = (np.asarray(X, dtype=np.float64) - self.arrays["mean"]) / self.arrays["scale"]
        return z @ self.arrays["coef"] + float(self.arrays["intercept"][0])

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per row and input, the term it adds to the logit: ``coef * standardised value`` [n, d].

        Positive terms push towards prog. Logistic models only.
        """
        if self.kind != "logistic":
            raise ConfigError("contributions are defined for logistic models only")
        z = (np.atleast_2d(np.asarray(X, dtype=np.float64)) - self.arrays["mean"]) / self.arrays["scale"]
        return z * self.arrays["coef"]

    def _forest(self, X: np.ndarray) -> np.ndarray:
        a = self.arrays
        left, right, feature, threshold = a["left"], a["right"], a["feature"], a["threshold"]
        # scikit-learn's trees compare float32 inputs with float64 thresholds
        Xf = X.astype(np.float32).astype(np.float64)
        rows = np.arange(len(Xf))
        total = np.zeros(len(Xf))
        for root in a["roots"]:
            node = np.full(len(Xf), root, dtype=np.int64)
            inner = left[node] >= 0
            while inner.any():
                n = node[inner]
                go_left = Xf[rows[inner], feature[n]] <= threshold[n]
                node[inner] = np.where(go_left, left[n], right[n])
                inner = left[node] >= 0
            total += a["prob"][node]
        return total / len(a["roots"])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def fit_logistic(X: np.ndarray, y: np.ndarray, *, C: float = LOGISTIC_C, seed: int = 0,
                 sample_weight: np.ndarray | None = None) -> ClassicalModel:
    """Standardise and fit an L2 logistic regression, classes weighted by their frequency.

    Parameters
    ----------
    X : np.ndarray [shape=(n, d)]
    y : np.ndarray [shape=(n,)]
        0 = nonprog, 1 = prog; both classes needed.
    C : float
        Inverse regularisation strength.
    sample_weight : np.ndarray [shape=(n,)], optional
        E.g. ``1 / snippets of the song`` so that every song weighs the same.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X, y = _check_xy(X, y)
    with np.errstate(invalid="ignore"):
        # a constant column (a musicnn unit that never fires) can get a weighted variance of -1e-17:
        # its sqrt warns, and scikit-learn then gives the column scale 1 as it does any constant column
        scaler = StandardScaler().fit(X, sample_weight=sample_weight)
    if not np.all(np.isfinite(scaler.scale_)):
        raise ConfigError("standardisation gave a non-finite scale")
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=5000, random_state=seed)
    clf.fit(scaler.transform(X), y, sample_weight=sample_weight)
    sign = 1.0 if list(clf.classes_) == [0, 1] else -1.0
    return ClassicalModel("logistic", {
        "mean": scaler.mean_.astype(np.float64), "scale": scaler.scale_.astype(np.float64),
        "coef": sign * clf.coef_[0].astype(np.float64), "intercept": sign * clf.intercept_.astype(np.float64)})


def fit_forest(X: np.ndarray, y: np.ndarray, *, n_trees: int = 500, min_samples_leaf: int = 2,
               seed: int = 0) -> ClassicalModel:
    """Fit extremely randomised trees (``ExtraTreesClassifier``), classes weighted by their frequency."""
    from sklearn.ensemble import ExtraTreesClassifier

    X, y = _check_xy(X, y)
    clf = ExtraTreesClassifier(n_estimators=n_trees, min_samples_leaf=min_samples_leaf,
                               class_weight="balanced", random_state=seed, n_jobs=1).fit(X, y)
    return forest_arrays(clf, n_inputs=X.shape[1])


def forest_arrays(clf, *, n_inputs: int) -> ClassicalModel:
    """A fitted scikit-learn forest classifier's trees as arrays (see the module's docstring)."""
    prog = list(clf.classes_).index(1)
    parts = {k: [] for k in ("left", "right", "feature", "threshold", "prob")}
    roots, offset = [], 0
    for est in clf.estimators_:
        t = est.tree_
        leaf = t.children_left < 0
        value = t.value[:, 0, :]
        share = value[:, prog] / np.maximum(value.sum(axis=1), np.finfo(float).tiny)
        parts["left"].append(np.where(leaf, -1, t.children_left + offset))
        parts["right"].append(np.where(leaf, -1, t.children_right + offset))
        parts["feature"].append(np.where(leaf, 0, t.feature))
        parts["threshold"].append(t.threshold)
        parts["prob"].append(share)
        roots.append(offset)
        offset += t.node_count
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    arrays = {"left": arrays["left"].astype(np.int64), "right": arrays["right"].astype(np.int64),
              "feature": arrays["feature"].astype(np.int64), "threshold": arrays["threshold"].astype(np.float64),
              "prob": arrays["prob"].astype(np.float64), "roots": np.asarray(roots, dtype=np.int64),
              "n_inputs": np.asarray([n_inputs], dtype=np.int64)}
    return ClassicalModel("forest", arrays)


def _check_xy(X, y) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).astype(np.int64)
    if X.ndim != 2 or len(X) != len(y):
        raise ConfigError(f"X must be [n, d] with one label per row, got {X.shape} and {y.shape}")
    if len(np.unique(y)) < 2:
        raise ConfigError("a classical model needs both classes in its training songs")
    if not np.all(np.isfinite(X)):
        raise ConfigError("inputs hold NaN or infinity")
    return X, y


def choose_C(X: np.ndarray, y: np.ndarray, fold: np.ndarray, *, Cs: tuple[float, ...], seed: int = 0) -> float:
    """The logistic regression's ``C`` with the lowest out-of-fold log-loss on ``(X, y)``.

    Each candidate is refitted (standardisation included) without each fold
    and scored on it; the loss weighs the classes equally, as the fit does.
    Ties go to the smaller ``C`` (the stronger regularisation).

    Parameters
    ----------
    X : np.ndarray [shape=(n, d)]
    y : np.ndarray [shape=(n,)]
        0 = nonprog, 1 = prog.
    fold : np.ndarray [shape=(n,), dtype=int]
        Each row's fold; every fold's complement must hold both classes.
    Cs : tuple of float
        Candidates, each > 0.
    """
    X, y = _check_xy(X, y)
    fold = np.asarray(fold)
    if fold.shape != y.shape or not Cs or min(Cs) <= 0:
        raise ConfigError(f"choose_C needs one fold per row and positive candidates, got {fold.shape} and {Cs}")
    weight = np.where(y == 1, 0.5 / max(np.mean(y == 1), 1e-12), 0.5 / max(np.mean(y == 0), 1e-12))
    losses = []
    for C in sorted(Cs):
        p = np.empty(len(y))
        for k in np.unique(fold):
            out = fold == k
            p[out] = fit_logistic(X[~out], y[~out], C=C, seed=seed).predict(X[out])
        p = np.clip(p, 1e-12, 1 - 1e-12)
        losses.append(float(np.mean(weight * -(y * np.log(p) + (1 - y) * np.log(1 - p)))))
    return float(sorted(Cs)[int(np.argmin(losses))])
