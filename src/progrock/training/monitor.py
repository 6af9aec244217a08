"""TensorBoard monitoring of a training run, and its PNG plots.

Written to the training's log folder (a run's ``RUN/tensorboard/cnn-<k>``, so
``tensorboard --logdir RUN/tensorboard`` names each member):

* every epoch, scalars ``loss/train``, ``loss/validation``, ``accuracy/snippet_train``,
  ``accuracy/snippet_validation``, ``balanced_accuracy/snippet_validation``,
  ``accuracy/song_train`` (from the training passes, dropout on),
  ``accuracy/song_validation``, ``balanced_accuracy/song_validation``; and the
  same pairs on one chart each (``loss``, ``accuracy_snippet``, ``accuracy_song``:
  train and validation overlaid);
* every ``histogram_every`` epochs and at the last, histograms ``weights/<layer>``
  of each convolution and ``activations/<layer>`` of its output on a fixed
  validation batch (forward hooks on the modules of :meth:`SeedCNN.forward`,
  evaluation mode);
* at the end, at the best epoch's step (the weights they describe):
  ``confusion/song_validation`` (image), ``pr/song_validation`` (precision-recall
  curve over the songs' mean probabilities) and the text ``best_epoch``.

:func:`write_plots` writes ``curves.png`` and ``confusion_validation.png``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from progrock.constants import CLASSES
from progrock.report.plots import confusion_figure, plot_confusion, plot_curves
from progrock.model.network import SeedCNN

SCALARS = {
    "loss_train": "loss/train",
    "loss_validation": "loss/validation",
    "accuracy_snippet_train": "accuracy/snippet_train",
    "accuracy_snippet_validation": "accuracy/snippet_validation",
    "balanced_accuracy_snippet_validation": "balanced_accuracy/snippet_validation",
    "accuracy_song_train": "accuracy/song_train",
    "accuracy_song_validation": "accuracy/song_validation",
    "balanced_accuracy_song_validation": "balanced_accuracy/song_validation",
}
"""History key -> TensorBoard tag."""

PAIRS = {"loss": ("loss_train", "loss_validation"),
         "accuracy_snippet": ("accuracy_snippet_train", "accuracy_snippet_validation"),
         "accuracy_song": ("accuracy_song_train", "accuracy_song_validation")}
"""Charts with train and validation overlaid: chart -> (train key, validation key)."""


class TrainingMonitor:
    """Writes one run's TensorBoard events.

    Parameters
    ----------
    log_dir : path-like
        Event files go here.
    model : SeedCNN
        The model being trained (read, never changed).
    probe : np.ndarray [shape=(n, n_features, n_frames)]
        A fixed batch of validation snippets for activation histograms.
    histogram_every : int
        Histogram period in epochs (0: never).
    purge_step : int, optional
        When resuming, events from this step on are dropped from the old files.
    """

    def __init__(self, log_dir: str | os.PathLike, model: SeedCNN, probe: np.ndarray, *,
                 histogram_every: int = 10, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.model = model
        self.probe = torch.from_numpy(np.ascontiguousarray(probe, dtype=np.float32))
        self.histogram_every = histogram_every
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def log_epoch(self, epoch: int, record: dict) -> None:
        """Scalars of one epoch's history record."""
        for key, tag in SCALARS.items():
            value = record.get(key)
            if value is not None:
                self.writer.add_scalar(tag, float(value), epoch)
        for chart, (train, validation) in PAIRS.items():
            if record.get(train) is not None and record.get(validation) is not None:
                self.writer.add_scalars(chart, {"train": float(record[train]),
                                                "validation": float(record[validation])}, epoch)

    def wants_histograms(self, epoch: int, last: bool) -> bool:
        return self.histogram_every > 0 and (last or epoch % self.histogram_every == 0)

    def log_histograms(self, epoch: int) -> None:
        """Weights of each convolution and its activations on the probe batch."""
        for name, conv in self.model.conv_layers().items():
            self.writer.add_histogram(f"weights/{name}", conv.weight.detach().cpu(), epoch)
        acts: dict[str, torch.Tensor] = {}
        hooks = [mod.register_forward_hook(lambda _m, _i, out, name=name: acts.__setitem__(name, out.detach()))
                 for name, mod in self.model.activation_modules().items()]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                # the modules in order (the backends call no modules to hook)
                self.model.scores(self.probe.to(next(self.model.parameters()).device))
        finally:
            for h in hooks:
                h.remove()
            self.model.train(was_training)
        for name, a in acts.items():
            self.writer.add_histogram(f"activations/{name}", a.cpu(), epoch)

    def log_final(self, epoch: int, confusion, y_true: np.ndarray, song_scores: np.ndarray) -> None:
        """The kept (best) epoch's song-level confusion matrix image and precision-recall curve, at its step."""
        fig = confusion_figure(confusion, CLASSES, "songs, validation")
        self.writer.add_figure("confusion/song_validation", fig, epoch, close=False)
        y = np.asarray(y_true)
        if y.size:
            self.writer.add_pr_curve("pr/song_validation", torch.as_tensor(y == 1),
                                     torch.as_tensor(np.asarray(song_scores, dtype=np.float32)), epoch)
        self.writer.add_text("best_epoch", f"the weights kept are epoch {epoch}'s", epoch)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


def write_plots(out_dir: str | os.PathLike, history: list[dict], confusion, best_epoch: int | None = None
                ) -> list[Path]:
    """``curves.png`` (loss/accuracy per epoch, the kept epoch marked) and ``confusion_validation.png``."""
    out_dir = Path(out_dir)
    return [plot_curves(history, out_dir / "curves.png", best_epoch=best_epoch),
            plot_confusion(confusion, CLASSES, "songs, validation", out_dir / "confusion_validation.png")]


__all__ = ["SCALARS", "TrainingMonitor", "plot_confusion", "write_plots"]
