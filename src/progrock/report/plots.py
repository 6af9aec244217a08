"""Matplotlib figures for training and evaluation (Agg canvas, no pyplot state).

:func:`confusion_figure` / :func:`plot_confusion` draw a confusion matrix;
:func:`curves_figure` / :func:`plot_curves` the per-epoch training history.
Figures are built on :class:`matplotlib.figure.Figure` directly, so nothing
here touches the global pyplot backend or opens a window.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from progrock.constants import CLASSES


def confusion_figure(confusion, classes=CLASSES, title: str = "Confusion matrix"):
    """A matplotlib Figure of a confusion matrix (rows true, columns predicted).

    Cells show the count and the share of the true class (row).
    """
    from matplotlib.figure import Figure

    c = np.asarray(confusion, dtype=np.int64)
    row = c.sum(axis=1, keepdims=True)
    share = np.divide(c, row, out=np.zeros(c.shape, dtype=np.float64), where=row > 0)
    fig = Figure(figsize=(4.2, 3.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(c.shape[0]):
        for j in range(c.shape[1]):
            ax.text(j, i, f"{c[i, j]}\n{share[i, j]:.0%}", ha="center", va="center",
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(classes)), labels=list(classes))
    ax.set_yticks(range(len(classes)), labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of true class")
    return fig


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
