"""Binary metrics with prog (class 1) as the positive class, and threshold choice.

Conventions when a class is absent (e.g. a set with no prog songs): a ratio
with a zero denominator is 0 (scikit-learn's ``zero_division=0``); balanced
accuracy is the mean recall over the classes present (scikit-learn's rule);
informedness (sensitivity + specificity - 1) and ROC AUC need both classes
and are ``None`` otherwise.
"""

from __future__ import annotations

import math

import numpy as np

from progrock.constants import CLASSES
from progrock.errors import ConfigError


def _div(a: float, b: float) -> float:
    return float(a) / float(b) if b else 0.0


def _labels(y, name: str) -> np.ndarray:
    a = np.asarray(y).ravel()
    if a.dtype == bool:
        a = a.astype(np.int64)
    if a.size and not np.isin(a, (0, 1)).all():
        raise ConfigError(f"{name} must contain only 0 (nonprog) and 1 (prog)")
    return a.astype(np.int64)


def binary_metrics(y_true, y_pred, y_score=None) -> dict:
    """Accuracy, balanced accuracy, informedness, precision, recall, F1, MCC, ROC AUC.

    Parameters
    ----------
    y_true, y_pred : array-like [shape=(n,)]
        0 = nonprog, 1 = prog.
    y_score : array-like [shape=(n,)], optional
        Scores (higher = more prog) for ROC AUC.

    Returns
    -------
    dict
        ``accuracy, balanced_accuracy, informedness, precision, recall, f1, mcc,
        roc_auc, n, n_prog, confusion`` with ``confusion = [[tn, fp], [fn, tp]]``
        (rows: true nonprog, prog; columns: predicted).
    """
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ConfigError(f"y_true and y_pred differ in length: {t.size} and {p.size}")
    tp = int(np.sum((t == 1) & (p == 1)))
    tn = int(np.sum((t == 0) & (p == 0)))
    fp = int(np.sum((t == 0) & (p == 1)))
    fn = int(np.sum((t == 1) & (p == 0)))
    n, n_pos, n_neg = t.size, tp + fn, tn + fp
    recall = _div(tp, n_pos)
    specificity = _div(tn, n_neg)
    precision = _div(tp, tp + fp)
    present = [r for r, c in ((recall, n_pos), (specificity, n_neg)) if c]
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    roc_auc = None
    if y_score is not None and n_pos and n_neg:
        from sklearn.metrics import roc_auc_score

        s = np.asarray(y_score, dtype=np.float64).ravel()
        if s.shape != t.shape:
            raise ConfigError(f"y_score has {s.size} values for {t.size} labels")
        roc_auc = float(roc_auc_score(t, s))
    return {
        "accuracy": _div(tp + tn, n),
        "balanced_accuracy": float(np.mean(present)) if present else 0.0,
        "informedness": recall + specificity - 1.0 if (n_pos and n_neg) else None,
        "precision": precision,
        "recall": recall,
        "specificity": specificity,
        "f1": _div(2 * precision * recall, precision + recall),
        "mcc": _div(tp * tn - fp * fn, denom),
        "roc_auc": roc_auc,
        "n": n,
        "n_prog": n_pos,
        "confusion": [[tn, fp], [fn, tp]],
    }


def balanced_accuracy_at(y_true, scores, thresholds) -> np.ndarray:
    """Balanced accuracy of ``scores >= t`` for each ``t`` in ``thresholds`` (both classes needed)."""
    t = _labels(y_true, "y_true")
    s = np.asarray(scores, dtype=np.float64).ravel()
    th = np.asarray(thresholds, dtype=np.float64).ravel()
    pos, neg = np.sort(s[t == 1]), np.sort(s[t == 0])
    if not (pos.size and neg.size):
        raise ConfigError("balanced accuracy over thresholds needs both classes")
    tpr = 1.0 - np.searchsorted(pos, th, side="left") / pos.size   # share of pos with s >= t
    tnr = np.searchsorted(neg, th, side="left") / neg.size           # share of neg with s < t
    return (tpr + tnr) / 2.0


def choose_threshold(y_true, scores) -> float:
    """The threshold maximising balanced accuracy of ``scores >= threshold``.

    Candidates are 0.5 and the midpoints between consecutive distinct scores
    (plus one point below the lowest and one above the highest); among equally
    good candidates the one closest to 0.5 wins, so 0.5 stays unless moving it
    helps. With a single class or a single distinct score, 0.5 is returned.
    """
    t = _labels(y_true, "y_true")
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.shape != t.shape:
        raise ConfigError(f"{s.size} scores for {t.size} labels")
    u = np.unique(s)
    if u.size < 2 or t.min(initial=1) == t.max(initial=0):
        return 0.5
    mids = (u[:-1] + u[1:]) / 2.0
    candidates = np.concatenate([[0.5], mids, [u[0] - 1e-6, u[-1] + 1e-6]])
    bal = balanced_accuracy_at(t, s, candidates)
    best = np.flatnonzero(bal >= bal.max() - 1e-12)
    winner = best[np.argmin(np.abs(candidates[best] - 0.5))]
    return float(candidates[winner])


def format_confusion(confusion, classes=CLASSES) -> str:
    """A text table of a 2x2 confusion matrix (rows true, columns predicted).

    >>> print(format_confusion([[5, 1], [2, 3]]))
    true \\ predicted  nonprog  prog
    nonprog                 5     1
    prog                    2     3
    """
    c = np.asarray(confusion, dtype=np.int64)
    if c.shape != (len(classes), len(classes)):
        raise ConfigError(f"confusion must be {len(classes)}x{len(classes)}, got {c.shape}")
    corner = "true \\ predicted"
    first = max(len(corner), *(len(k) for k in classes))
    widths = [max(len(k), len(str(c[:, j].max()))) for j, k in enumerate(classes)]
    lines = [corner.ljust(first) + "".join("  " + k.rjust(w) for k, w in zip(classes, widths))]
    for i, k in enumerate(classes):
        lines.append(k.ljust(first) + "".join("  " + str(c[i, j]).rjust(w) for j, w in enumerate(widths)))
    return "\n".join(lines)
