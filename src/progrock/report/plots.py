"""Matplotlib figures for training and evaluation (Agg canvas, no pyplot state).

:func:`confusion_figure` / :func:`plot_confusion` draw a confusion matrix,
:func:`confusions_figure` several side by side; :func:`curves_figure` /
:func:`plot_curves` the per-epoch training history; :func:`roc_figure`,
:func:`pr_figure` and :func:`calibration_figure` compare models on one set of
songs. :func:`png_bytes` renders any of them for embedding in a page.
Figures are built on :class:`matplotlib.figure.Figure` directly, so nothing
here touches the global pyplot backend or opens a window.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from progrock.constants import CLASSES


def confusion_figure(confusion, classes=CLASSES, title: str = "Confusion matrix"):
    """A matplotlib Figure of a confusion matrix (rows true, columns predicted).

    Cells show the count and the share of the true class (row).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 3.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    im = _confusion_panel(ax, confusion, classes)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of true class")
    return fig


def _confusion_panel(ax, confusion, classes):
    """One confusion matrix on ``ax``: cells coloured by the share of the true class, count and share written."""
    c = np.asarray(confusion, dtype=np.int64)
    row = c.sum(axis=1, keepdims=True)
    share = np.divide(c, row, out=np.zeros(c.shape, dtype=np.float64), where=row > 0)
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(c.shape[0]):
        for j in range(c.shape[1]):
            ax.text(j, i, f"{c[i, j]}\n{share[i, j]:.0%}", ha="center", va="center",
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(classes)), labels=list(classes))
    ax.set_yticks(range(len(classes)), labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return im


def plot_confusion(confusion, classes=CLASSES, title: str = "Confusion matrix",
                   path: str | os.PathLike = "confusion.png") -> Path:
    """Write :func:`confusion_figure` to ``path`` (PNG); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    confusion_figure(confusion, classes, title).savefig(path)
    return path


def curves_figure(history: list[dict], best_epoch: int | None = None):
    """Loss and accuracy per epoch, train vs validation, from a training history.

    Uses the keys ``loss_train``, ``loss_validation``, ``accuracy_snippet_train``,
    ``accuracy_snippet_validation``, ``accuracy_song_validation`` and
    ``balanced_accuracy_song_validation`` where present; ``best_epoch`` (the
    weights kept) is marked by a vertical line.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]

    def line(ax, key, label, **kw):
        ys = [h.get(key) for h in history]
        if any(y is not None for y in ys):
            ax.plot(epochs, [np.nan if y is None else y for y in ys], label=label, **kw)

    line(ax_loss, "loss_train", "train")
    line(ax_loss, "loss_validation", "validation")
    ax_loss.set_title("loss (weighted BCE)")
    line(ax_acc, "accuracy_snippet_train", "snippets, train", color="C0")
    line(ax_acc, "accuracy_snippet_validation", "snippets, validation", color="C1")
    line(ax_acc, "accuracy_song_validation", "songs, validation", color="C2")
    line(ax_acc, "balanced_accuracy_song_validation", "songs, validation (balanced)",
         color="C2", linestyle="--")
    ax_acc.set_title("accuracy")
    ax_acc.set_ylim(0.0, 1.02)
    for ax in (ax_loss, ax_acc):
        if best_epoch:
            ax.axvline(best_epoch, color="0.4", linestyle=":", label=f"kept: epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return fig


def plot_curves(history: list[dict], path: str | os.PathLike, best_epoch: int | None = None) -> Path:
    """Write :func:`curves_figure` to ``path`` (PNG); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    curves_figure(history, best_epoch).savefig(path)
    return path


def png_bytes(fig) -> bytes:
    """A Figure rendered as PNG (Agg), for a data URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def confusions_figure(confusions: dict[str, list], classes=CLASSES, title: str = "", per_row: int = 3):
    """Several confusion matrices, one panel each, on one colour scale (share of the true class).

    Parameters
    ----------
    confusions : dict
        Panel title -> ``[[tn, fp], [fn, tp]]`` (rows true, columns predicted).
    """
    from matplotlib.figure import Figure

    n = max(len(confusions), 1)
    cols = min(n, per_row)
    rows = -(-n // cols)
    fig = Figure(figsize=(3.1 * cols, 2.9 * rows + 0.4), dpi=90, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, (name, confusion) in zip(axes, confusions.items()):
        _confusion_panel(ax, confusion, classes)
        ax.set_title(name, fontsize=9)
    for ax in axes[len(confusions):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


def _scored(models: dict[str, tuple]) -> dict[str, tuple[int, np.ndarray, np.ndarray]]:
    """The models whose songs hold both classes: ``(colour index, y [n] 0/1, score [n])``.

    The colour index is the model's place in ``models``, so a model keeps its colour in every figure.
    """
    out = {}
    for k, (name, (y, score)) in enumerate(models.items()):
        y = np.asarray(y, dtype=np.int64)
        if len(np.unique(y)) == 2:
            out[name] = (k, y, np.asarray(score, dtype=np.float64))
    return out


def roc_figure(models: dict[str, tuple], *, points: dict[str, tuple[float, float]] | None = None,
               title: str = "ROC curves"):
    """ROC curves of several models on the same songs, with each model's operating point.

    Parameters
    ----------
    models : dict
        Model title -> ``(y, score)``: arrays ``[n_songs]`` of true classes (1 = prog)
        and probabilities of prog. Models whose songs lack a class are left out.
    points : dict, optional
        Model title -> ``(false positive rate, true positive rate)`` of its verdicts at its threshold.
    """
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_auc_score, roc_curve

    fig = Figure(figsize=(4.6, 5.6), dpi=90, layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.7", linestyle=":", label="chance")
    for name, (k, y, s) in _scored(models).items():
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, color=f"C{k}", label=f"{name} (AUC {roc_auc_score(y, s):.2f})")
        if points and name in points:
            ax.plot(*points[name], "o", color=f"C{k}", markersize=6, markeredgecolor="black")
    _finish_axes(ax, "false positive rate (nonprog called prog)", "true positive rate (prog found)", title)
    return fig


def pr_figure(models: dict[str, tuple], *, points: dict[str, tuple[float, float]] | None = None,
              title: str = "Precision-recall curves"):
    """Precision-recall curves (prog as the positive class) of several models on the same songs.

    Parameters are those of :func:`roc_figure`; ``points`` holds ``(recall, precision)``.
    The dotted line is the share of prog songs: what guessing achieves.
    """
    from matplotlib.figure import Figure
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig = Figure(figsize=(4.6, 5.6), dpi=90, layout="constrained")
    ax = fig.add_subplot()
    scored = _scored(models)
    if scored:
        y0 = next(iter(scored.values()))[1]
        ax.axhline(y0.mean(), color="0.7", linestyle=":", label=f"share of prog ({y0.mean():.2f})")
    for name, (k, y, s) in scored.items():
        precision, recall, _ = precision_recall_curve(y, s)
        ax.plot(recall, precision, color=f"C{k}", drawstyle="steps-post",
                label=f"{name} (AP {average_precision_score(y, s):.2f})")
        if points and name in points:
            ax.plot(*points[name], "o", color=f"C{k}", markersize=6, markeredgecolor="black")
    _finish_axes(ax, "recall (prog found)", "precision (prog verdicts right)", title)
    return fig


def calibration_figure(tables: dict[str, list[dict]], *, title: str = "Reliability"):
    """Reliability diagram: per probability bin, the share of prog songs against the mean probability.

    Parameters
    ----------
    tables : dict
        Model title -> bins ``{"low", "high", "n", "mean_probability", "share_prog"}``
        (:func:`progrock.evaluation.evaluate.calibration`). A calibrated model's
        points lie on the diagonal; the lower panel counts the songs per bin.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 6.4), dpi=90, layout="constrained")
    ax, counts = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    ax.plot([0, 1], [0, 1], color="0.7", linestyle=":", label="calibrated")
    width = 1.0 / max(len(tables), 1)
    for k, (name, bins) in enumerate(tables.items()):
        full = [b for b in bins if b["n"]]
        ax.plot([b["mean_probability"] for b in full], [b["share_prog"] for b in full], "o-", color=f"C{k}",
                label=name, markersize=4)
        lows = np.array([b["low"] for b in bins])
        spans = np.array([b["high"] - b["low"] for b in bins])
        counts.bar(lows + spans * width * k, [b["n"] for b in bins], width=spans * width, align="edge",
                   color=f"C{k}")
    _finish_axes(ax, "", "share of prog songs", title, square=False)
    counts.set_xlabel("probability of prog (mean in the bin)")
    counts.set_ylabel("songs")
    counts.grid(alpha=0.3)
    return fig


def _finish_axes(ax, xlabel: str, ylabel: str, title: str, *, square: bool = True) -> None:
    """Unit square limits, labels, grid, and the legend under the figure (long model names fit there)."""
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    if square:
        ax.set_aspect("equal")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.figure.legend(*ax.get_legend_handles_labels(), fontsize="x-small", loc="outside lower center")
