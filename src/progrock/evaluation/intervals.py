"""How sure a figure is: bootstrap intervals over songs, and paired comparisons of two models.

A song balanced accuracy from 24 test songs can lie anywhere in a wide
range: every figure progrock shows comes with the number of songs and a 95 %
interval, made by resampling the songs with replacement (the percentile
bootstrap, :data:`RESAMPLES` resamples, seeded: the same songs give the same
interval). Two models judged on the same songs are compared by resampling
the songs once for both (:func:`paired_difference`): the interval of the
difference says whether the data can tell them apart.

All metrics here take prog (1) as the positive class and are computed for
every resample at once.
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 2000
"""Bootstrap resamples per interval."""

LEVEL = 0.95
"""Coverage of every interval."""

METRICS = ("balanced_accuracy", "mcc", "roc_auc")
"""The figures given with an interval."""

MIN_PER_CLASS = 3
"""Fewer songs of a class than this give no interval: resampling two songs says nothing."""

MIN_TO_COMPARE = 5
"""Fewer songs of a class than this: no claim that one model beats another."""


def _confusion(y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, ...]:
    """``tp, tn, fp, fn`` per row of ``y, pred [B, n]`` (0/1)."""
    tp = np.sum((y == 1) & (pred == 1), axis=-1).astype(np.float64)
    tn = np.sum((y == 0) & (pred == 0), axis=-1).astype(np.float64)
    fp = np.sum((y == 0) & (pred == 1), axis=-1).astype(np.float64)
    fn = np.sum((y == 1) & (pred == 0), axis=-1).astype(np.float64)
    return tp, tn, fp, fn


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.full(np.shape(a), np.nan), where=b > 0)


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Mean of the two recalls, per row (NaN where a class is absent from the row)."""
    tp, tn, fp, fn = _confusion(y, pred)
    return (_ratio(tp, tp + fn) + _ratio(tn, tn + fp)) / 2


def mcc(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Matthews correlation per row (0 where a margin is empty, as scikit-learn)."""
    tp, tn, fp, fn = _confusion(y, pred)
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return np.divide(tp * tn - fp * fn, denom, out=np.zeros_like(denom), where=denom > 0)


def roc_auc(y: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Area under the ROC curve per row, by the rank-sum (ties count half; NaN without both classes)."""
    from scipy.stats import rankdata

    y = np.atleast_2d(y)
    ranks = rankdata(np.atleast_2d(score), axis=-1)
    n1 = y.sum(axis=-1).astype(np.float64)
    n0 = y.shape[-1] - n1
    u = np.sum(ranks * (y == 1), axis=-1) - n1 * (n1 + 1) / 2
    return _ratio(u, n1 * n0)


def _metric(name: str, y: np.ndarray, pred: np.ndarray, score: np.ndarray | None) -> np.ndarray:
    if name == "balanced_accuracy":
        return balanced_accuracy(y, pred)
    if name == "mcc":
        return mcc(y, pred)
    if name == "roc_auc":
        return roc_auc(y, score) if score is not None else np.full(y.shape[:-1] or (1,), np.nan)
    raise ValueError(f"no interval for the metric {name!r}")


def _resamples(n: int, *, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _interval(values: np.ndarray, level: float) -> tuple[float | None, float | None]:
    v = values[np.isfinite(values)]
    if v.size < 0.5 * values.size:               # most resamples lack a class: no honest interval
        return None, None
    lo, hi = np.percentile(v, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def with_intervals(y, pred, score=None, *, metrics=METRICS, resamples: int = RESAMPLES, seed: int = 0,
                   level: float = LEVEL) -> dict[str, dict]:
    """Each metric with its bootstrap interval over the songs.

    Parameters
    ----------
    y, pred : array-like [shape=(n,)]
        True and predicted classes (0/1).
    score : array-like [shape=(n,)], optional
        Scores for ROC-AUC (higher = more prog).

    Returns
    -------
    dict
        ``{metric: {"value", "low", "high", "n"}}``; ``low``/``high`` are ``None``
        when the songs are too few (fewer than :data:`MIN_PER_CLASS` of a class).
    """
    y = np.asarray(y).astype(np.int64)
    pred = np.asarray(pred).astype(np.int64)
    s = None if score is None else np.asarray(score, dtype=np.float64)
    idx = _resamples(len(y), resamples=resamples, seed=seed)
    enough = min(int((y == 0).sum()), int((y == 1).sum())) >= MIN_PER_CLASS
    out = {}
    for name in metrics:
        value = float(_metric(name, y[None], pred[None], None if s is None else s[None])[0])
        if len(y) == 0 or not np.isfinite(value):
            out[name] = {"value": None, "low": None, "high": None, "n": int(len(y))}
            continue
        lo = hi = None
        if enough:
            lo, hi = _interval(_metric(name, y[idx], pred[idx], None if s is None else s[idx]), level)
        out[name] = {"value": value, "low": lo, "high": hi, "n": int(len(y))}
    return out


def paired_difference(y, pred_a, pred_b, score_a=None, score_b=None, *, metric: str = "balanced_accuracy",
                      resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> dict:
    """Metric of model A minus model B on the same songs, with its paired bootstrap interval.

    Returns
    -------
    dict
        ``{"value", "low", "high", "n", "verdict"}`` with ``verdict`` one of
        ``"A better"``, ``"B better"`` (the interval excludes 0, and each class
        has at least :data:`MIN_TO_COMPARE` songs) or ``"cannot tell apart"``.
    """
    y = np.asarray(y).astype(np.int64)
    a, b = np.asarray(pred_a).astype(np.int64), np.asarray(pred_b).astype(np.int64)
    sa = None if score_a is None else np.asarray(score_a, dtype=np.float64)
    sb = None if score_b is None else np.asarray(score_b, dtype=np.float64)
    value = float(_metric(metric, y[None], a[None], None if sa is None else sa[None])[0]
                  - _metric(metric, y[None], b[None], None if sb is None else sb[None])[0])
    idx = _resamples(len(y), resamples=resamples, seed=seed)
    boot = (_metric(metric, y[idx], a[idx], None if sa is None else sa[idx])
            - _metric(metric, y[idx], b[idx], None if sb is None else sb[idx]))
    lo, hi = _interval(boot, level)
    enough = min(int((y == 0).sum()), int((y == 1).sum())) >= MIN_TO_COMPARE
    verdict = ("cannot tell apart" if lo is None or lo <= 0 <= hi or not enough
               else "A better" if lo > 0 else "B better")
    return {"value": value, "low": lo, "high": hi, "n": int(len(y)), "verdict": verdict}


def perfect_score_low(n_prog: int, n_nonprog: int, *, level: float = 0.95) -> float:
    """How low a model's true balanced accuracy may be when it gets every one of these songs right.

    A bootstrap of a perfect score is always 1.0, so it says nothing here. Each
    class's recall gets its exact (Clopper-Pearson) one-sided lower bound for
    ``n`` right of ``n``, ``((1 - level) / 2) ** (1 / n)``; the balanced
    accuracy's bound is their mean. 4 + 4 songs give 0.40; 20 + 20 give 0.83.
    """
    if min(n_prog, n_nonprog) < 1:
        return 0.0
    alpha = (1.0 - level) / 2.0
    return float((alpha ** (1.0 / n_prog) + alpha ** (1.0 / n_nonprog)) / 2.0)


def format_interval(m: dict | None, digits: int = 3) -> str:
    """``0.840 [0.66, 0.97]`` for people (``–`` for a missing value; no brackets without an interval)."""
    if not m or m.get("value") is None:
        return "–"
    text = f"{m['value']:.{digits}f}"
    if m.get("low") is not None:
        text += f" [{m['low']:.2f}, {m['high']:.2f}]"
    return text
