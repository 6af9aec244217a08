"""Training settings (:class:`TrainConfig`) and the class-imbalance rule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from progrock.config import Config
from progrock.errors import ConfigError

CLASS_WEIGHTS = ("balanced", "none")
PLACEMENTS = ("fixed", "random")
BEST_BY = ("song_balanced_accuracy", "loss")


@dataclass
class TrainConfig(Config):
    """How to train (the defaults are the seed's, plus class weighting).

    Parameters
    ----------
    epochs : int
        Passes over the training snippets (the seed: 300).
    batch_size : int
        Snippets per Adam step (the seed: 1024).
    lr, weight_decay : float
        Adam's learning rate and (L2) weight decay.
    seed : int
        Seeds weight initialisation, dropout, noisy voting and the shuffling;
        the same seed, data and thread count give the same weights.
    class_weight : {"balanced", "none"}
        Prog is the minority class. Two things correct for it, on purpose:

        1. the per-class snippet hop of :class:`~progrock.data.snippets.SnippetConfig`
           (8 s for prog, 12 s for nonprog) takes about 1.5x more snippets per
           prog song, as the seed did - more distinct prog material to learn from;
        2. with ``"balanced"`` (the default) the loss weighs every prog snippet
           by ``pos_weight = n_nonprog / n_prog``, counted on the snippets that
           are actually in the training set. Whatever the hop and the song
           counts, both classes then carry exactly the same total weight, so the
           network is not pushed towards "nonprog" and 0.5 stays a sensible
           threshold. ``"none"`` trains on the raw counts (the seed's loss).
    early_stopping_patience : int, optional
        Stop after this many epochs without a better validation epoch (by
        ``best_by``; ``None``: run all epochs; the best epoch is kept either way).
    placement : {"fixed", "random"}
        Where the training snippets lie: ``"fixed"`` cuts them once at the
        per-class hop (the seed); ``"random"`` draws their positions afresh
        every epoch (the per-class hop sets how many, not where), so each
        epoch sees other cuts of every song.
    best_by : {"song_balanced_accuracy", "loss"}
        What makes an epoch the best one (the one kept) and drives early
        stopping: the validation songs' balanced accuracy by vote at 0.5
        (ties: lower loss; the seed) or the validation loss.
    num_threads : int, optional
        Threads training each batch, one part of it each, every part
        single-threaded (:class:`~progrock.training.threads.BatchThreads`;
        ``None``: the cores this process may run on). The same seed, data and
        thread count give the same weights; another thread count gives the
        same function, summed in another order.
    histogram_every : int
        TensorBoard weight/activation histograms every this many epochs (and
        at the last); 0 turns them off.
    device : str
        Torch device ("cpu"; exact resume is guaranteed on CPU only).
    """

    epochs: int = 300
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    class_weight: str = "balanced"
    early_stopping_patience: int | None = None
    placement: str = "fixed"
    best_by: str = "song_balanced_accuracy"
    num_threads: int | None = None
    histogram_every: int = 10
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs and batch_size must be positive: {self.epochs}, {self.batch_size}")
        if not (0 < self.lr < float("inf")) or not (0 <= self.weight_decay < float("inf")):
            raise ConfigError(f"lr must be a positive number and weight_decay a number >= 0, got "
                              f"{self.lr} and {self.weight_decay}")
        if self.class_weight not in CLASS_WEIGHTS:
            raise ConfigError(f"class_weight must be one of {CLASS_WEIGHTS}, got {self.class_weight!r}")
        if self.placement not in PLACEMENTS:
            raise ConfigError(f"placement must be one of {PLACEMENTS}, got {self.placement!r}")
        if self.best_by not in BEST_BY:
            raise ConfigError(f"best_by must be one of {BEST_BY}, got {self.best_by!r}")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ConfigError(f"early_stopping_patience must be >= 1 or None, got {self.early_stopping_patience}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ConfigError(f"num_threads must be >= 1 or None, got {self.num_threads}")
        if self.histogram_every < 0:
            raise ConfigError(f"histogram_every must be >= 0, got {self.histogram_every}")


def positive_weight(y: np.ndarray, class_weight: str) -> float | None:
    """``n_nonprog / n_prog`` over snippet labels ``y`` for ``"balanced"``, else ``None``."""
    if class_weight not in CLASS_WEIGHTS:
        raise ConfigError(f"class_weight must be one of {CLASS_WEIGHTS}, got {class_weight!r}")
    if class_weight == "none":
        return None
    y = np.asarray(y)
    n_pos, n_neg = int(np.sum(y == 1)), int(np.sum(y == 0))
    if n_pos == 0 or n_neg == 0:
        raise ConfigError(f"training needs snippets of both classes: {n_neg} nonprog, {n_pos} prog")
    return n_neg / n_pos
