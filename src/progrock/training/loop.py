"""The training loop: :func:`train_model`.

One epoch = one shuffled pass over the training snippets, one Adam step per
batch, each batch split over the threads
(:class:`~progrock.training.threads.BatchThreads`); then an evaluation pass
over the validation snippets. Both passes run on the model's backend
(:mod:`progrock.model.backends`: on the CPU one compiled loop per snippet),
which reads the snippets in place from the songs' frames. With
``placement="random"`` the training snippets are drawn afresh every epoch
(from a generator seeded by the seed and the epoch, so a resumed run draws
the same). Recorded per epoch:

* loss (BCE with logits, prog weighted by ``pos_weight`` - see
  :class:`~progrock.training.config.TrainConfig`; the validation loss uses the
  same weight so the two curves are comparable);
* snippet accuracy (p >= 0.5) and balanced accuracy;
* song accuracy and balanced accuracy on validation with the seed's vote rule
  at 0.5 (:func:`~progrock.evaluation.verdict.song_verdicts`); the song
  accuracy on training comes from the training passes themselves (dropout on).

The best epoch is kept (:class:`Best`: by validation song balanced accuracy,
ties to the lower loss, as the seed; or by validation loss). After training,
its weights get a threshold: the snippet threshold of the vote that maximises
song balanced accuracy on validation. Since a song is prog by vote at
threshold ``t`` exactly when its ``ceil(n/2)``-th largest snippet probability
is ``>= t`` (:func:`~progrock.evaluation.verdict.song_vote_scores`), this is
:func:`~progrock.evaluation.metrics.choose_threshold` on those scores: exact,
no grid, and 0.5 unless moving it helps. The validation metrics at the chosen
threshold are therefore optimistic; judge the model on the test split.

Files in ``out_dir``: ``model.safetensors`` + ``model.json`` (the best model,
rewritten whenever validation improves and at the end with the chosen
threshold), ``last.*`` (the resumable state, :mod:`.state`),
``history.json`` (one record per epoch), ``tensorboard/``, ``curves.png``,
``confusion_validation.png`` (:mod:`.monitor`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from progrock.atomic import atomic_write_json
from progrock.constants import CLASSES
from progrock.data.snippets import SnippetConfig, SnippetSet
from progrock.errors import ConfigError, DatasetError, ModelError
from progrock.evaluation.metrics import binary_metrics, choose_threshold
from progrock.evaluation.verdict import song_verdicts, song_vote_scores
from progrock.features.sets import FeatureConfig
from progrock.model.backends import backend_for
from progrock.model.checkpoint import save_model
from progrock.model.network import ModelConfig, SeedCNN
from progrock.parallel.malloc import array_friendly_malloc
import progrock.training.state as state
from progrock.training.config import TrainConfig, positive_weight
from progrock.training.monitor import TrainingMonitor, write_plots
from progrock.training.threads import BatchThreads, available_cores

PROBE_SIZE = 64
"""Validation snippets in the fixed batch used for activation histograms."""


@dataclass
class TrainResult:
    """What :func:`train_model` returns.

    Attributes
    ----------
    model : SeedCNN
        The best epoch's weights, in evaluation mode.
    model_path : Path
        Its ``model.json``.
    threshold : float
        The chosen snippet threshold of the song vote.
    best_epoch : int
        1-based epoch of the best validation epoch.
    metrics : dict
        Validation metrics of the best model (``snippet``, ``song`` at 0.5,
        ``song_at_threshold``).
    history : list of dict
        One record per epoch (as in ``history.json``).
    stopped_early : bool
    out_dir : Path
    """

    model: SeedCNN
    model_path: Path
    threshold: float
    best_epoch: int
    metrics: dict
    history: list[dict]
    stopped_early: bool
    out_dir: Path


@dataclass
class Best:
    """The best epoch so far, and how long ago it was.

    ``by``: ``"song_balanced_accuracy"`` (higher is better, ties to the lower
    validation loss) or ``"loss"`` (the validation loss, lower is better).
    """

    by: str
    epoch: int = 0
    metric: float = -1.0
    loss: float = float("inf")
    since: int = 0
    weights: dict = field(default_factory=dict, repr=False)

    def update(self, epoch: int, record: dict, model: SeedCNN) -> bool:
        """Take an epoch's validation record; whether it is the new best (its weights are then kept)."""
        metric, loss = record["balanced_accuracy_song_validation"], record["loss_validation"]
        if self.by == "loss":
            improved = loss < self.loss
        else:
            improved = metric > self.metric or (metric == self.metric and loss < self.loss)
        if improved:
            self.epoch, self.metric, self.loss, self.since = epoch, metric, loss, 0
            self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.since += 1
        return improved

    def to_meta(self) -> dict:
        return {"best_epoch": self.epoch, "best_metric": self.metric, "best_loss": self.loss,
                "epochs_since_best": self.since}

    def restore(self, meta: dict, weights: dict) -> None:
        self.epoch, self.metric = int(meta["best_epoch"]), float(meta["best_metric"])
        self.loss, self.since, self.weights = float(meta["best_loss"]), int(meta["epochs_since_best"]), weights


@dataclass
class _Run:
    """What every step of one training needs: the data, the settings and where results go."""

    train: SnippetSet
    validation: SnippetSet
    model_config: ModelConfig
    train_config: TrainConfig
    feature_config: FeatureConfig
    snippet_config: SnippetConfig
    out_dir: Path
    pos_weight: float | None
    log_dir: Path
    cnn_input: str = "seed43"

    def describe(self, history: list[dict], best: Best, *, complete: bool, stopped_early: bool) -> dict:
        """The ``training`` entry of ``model.json``."""
        return {
            "config": self.train_config.to_dict(), "pos_weight": self.pos_weight,
            "n_train_snippets": len(self.train), "n_train_songs": len(self.train.songs),
            "n_train_prog_snippets": int((self.train.y == 1).sum()),
            "n_train_songs_per_class": {c: int((self.train.song_labels == i).sum()) for i, c in enumerate(CLASSES)},
            "n_validation_snippets": len(self.validation), "n_validation_songs": len(self.validation.songs),
            "epochs_run": history[-1]["epoch"] if history else 0, "best_epoch": best.epoch,
            "best_by": best.by, "best": next((h for h in history if h["epoch"] == best.epoch), None),
            "last": history[-1] if history else None, "stopped_early": stopped_early,
            "complete": complete, "classes": list(CLASSES),
        }

    def save(self, weights: dict, history: list[dict], best: Best, *, threshold: float = 0.5,
             metrics: dict | None = None, complete: bool = False, stopped_early: bool = False) -> Path:
        model = SeedCNN(self.model_config)
        model.load_state_dict(weights)
        return save_model(self.out_dir, model, model_config=self.model_config,
                          feature_config=self.feature_config, snippet_config=self.snippet_config,
                          cnn_input=self.cnn_input,
                          threshold=threshold, metrics=metrics,
                          training=self.describe(history, best, complete=complete, stopped_early=stopped_early))


def _statistics(chunks: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation over chunks ``[n, F, T]``, in float64 (Chan's update)."""
    n_total, mean, m2 = 0, None, None
    for chunk in chunks:
        c = np.asarray(chunk, dtype=np.float64)
        if mean is None:
            mean, m2 = np.zeros(c.shape[1]), np.zeros(c.shape[1])
        n = c.shape[0] * c.shape[2]
        if n == 0:
            continue
        c_mean = c.mean(axis=(0, 2))
        c_m2 = ((c - c_mean[None, :, None]) ** 2).sum(axis=(0, 2))
        delta = c_mean - mean
        total = n_total + n
        mean = mean + delta * n / total
        m2 = m2 + c_m2 + delta ** 2 * n_total * n / total
        n_total = total
    if n_total == 0:
        raise DatasetError("no training snippets to compute feature statistics from")
    return mean, np.sqrt(m2 / n_total)


def feature_statistics(x: np.ndarray, *, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation over snippets and frames, in float64.

    ``x [N, F, T] -> (mean [F], std [F])``; chunked, so no float64 copy of the
    whole set is made.
    """
    return _statistics(x[i:i + chunk] for i in range(0, len(x), chunk))


def snippet_statistics(s: SnippetSet, *, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """:func:`feature_statistics` of a snippet set's snippets, read in chunks (never all copied out)."""
    return _statistics(SnippetSet(s.frames, s.song[i:i + chunk], s.start[i:i + chunk], s.length).x
                       for i in range(0, len(s), chunk))


def _check_set(s: SnippetSet, name: str, config: ModelConfig) -> None:
    if len(s) == 0:
        raise DatasetError(f"the {name} set has no snippets")
    if s.frames.n_features != config.n_features or s.length != config.n_frames:
        raise ConfigError(f"{name} snippets have shape {(s.frames.n_features, s.length)}, the model expects "
                          f"({config.n_features}, {config.n_frames})")
    if (s.y < 0).any():
        raise DatasetError(f"the {name} set has snippets of songs without a label")


def _accuracies(prefix: str, y_true, y_pred) -> dict:
    m = binary_metrics(y_true, y_pred)
    return {f"accuracy_{prefix}": m["accuracy"], f"balanced_accuracy_{prefix}": m["balanced_accuracy"]}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z.astype(np.float64)))


def _train_epoch(model: SeedCNN, optimizer: torch.optim.Optimizer, snippets: SnippetSet,
                 pos_weight: float | None, generator: torch.Generator, batch_size: int,
                 threads: BatchThreads) -> tuple[float, np.ndarray]:
    """One shuffled pass, one Adam step per batch; the mean training loss and each snippet's probability.

    Each batch's random draws are made first (:meth:`SeedCNN.draw_noise`), so
    the parts of the batch on the threads get exactly the draws one pass makes.
    """
    backend = backend_for(model)
    model.train()
    n = len(snippets)
    params = [p for p in model.parameters() if p.requires_grad]
    perm = torch.randperm(n, generator=generator).numpy()
    offsets, y = snippets.offsets, snippets.y.astype(np.float32)
    probs = np.empty(n, dtype=np.float64)
    total = 0.0
    for a in range(0, n, batch_size):
        idx = perm[a:a + batch_size]
        noise = model.draw_noise(len(idx))
        loss, grads, logits = backend.loss_and_gradients(
            model, snippets.frames.x, offsets[idx], y[idx], noise, pos_weight=pos_weight,
            scale=1.0 / len(idx), map_parts=threads.map)
        for p, g in zip(params, grads):
            p.grad = g.to(p.device)
        optimizer.step()
        total += loss * len(idx)
        probs[idx] = _sigmoid(logits)
    return total / n, probs


def snippet_logits(model: SeedCNN, s: SnippetSet, threads: BatchThreads | None = None) -> np.ndarray:
    """Evaluation-mode logits of every snippet of ``s`` [shape=(n_snippets,), float32], on the model's backend."""
    return backend_for(model).logits(model, s.frames.x, s.offsets,
                                     map_parts=None if threads is None else threads.map)


def snippet_probabilities(model: SeedCNN, s: SnippetSet, threads: BatchThreads | None = None) -> np.ndarray:
    """Evaluation-mode probability of prog of every snippet of ``s`` [shape=(n_snippets,), float64]."""
    return _sigmoid(snippet_logits(model, s, threads))


def _validate(model: SeedCNN, s: SnippetSet, pos_weight: float | None, threads: BatchThreads) -> dict:
    """Validation record: loss (same weighting as training), snippet and song accuracies."""
    logits = snippet_logits(model, s, threads)
    probs = _sigmoid(logits)
    y = s.y
    criterion = nn.BCEWithLogitsLoss(pos_weight=None if pos_weight is None else torch.tensor([pos_weight]))
    with torch.no_grad():
        loss = float(criterion(torch.from_numpy(logits), torch.from_numpy(y.astype(np.float32))))
    record = {"loss_validation": loss}
    record.update(_accuracies("snippet_validation", y, probs >= 0.5))
    verdicts = song_verdicts(probs, s.song, len(s.songs), threshold=0.5, rule="vote")
    record.update(_accuracies("song_validation", s.song_labels, [v.is_prog for v in verdicts]))
    return record


def _epoch_snippets(run: _Run, epoch: int) -> SnippetSet:
    """The training snippets of an epoch: the given ones, or positions drawn for this epoch."""
    if run.train_config.placement == "fixed":
        return run.train
    rng = np.random.default_rng([run.train_config.seed, epoch])
    return SnippetSet.place(run.train.frames, run.snippet_config, by_class=True, rng=rng)


def _one_epoch(run: _Run, epoch: int, model: SeedCNN, optimizer, generator, threads) -> dict:
    t0 = time.perf_counter()
    snippets = _epoch_snippets(run, epoch)
    loss, probs = _train_epoch(model, optimizer, snippets, run.pos_weight, generator,
                               run.train_config.batch_size, threads)
    t_train = time.perf_counter() - t0
    record: dict = {"epoch": epoch, "loss_train": loss}
    record.update(_accuracies("snippet_train", snippets.y, probs >= 0.5))
    verdicts = song_verdicts(probs, snippets.song, len(snippets.songs))
    record["accuracy_song_train"] = binary_metrics(snippets.song_labels, [v.is_prog for v in verdicts])["accuracy"]
    record.update(_validate(model, run.validation, run.pos_weight, threads))
    record["seconds_train"] = t_train
    record["seconds"] = time.perf_counter() - t0
    return record


def _resume(run: _Run, model, optimizer, generator, best: Best, log) -> tuple[int, list[dict]]:
    """Restore ``out_dir/last.*``; the epoch it ends after and the history up to it."""
    out_dir = run.out_dir
    meta, weights = state.load_state(out_dir, model=model, optimizer=optimizer, generator=generator)
    state.check_resume(meta, model_config=run.model_config, train_config=run.train_config,
                       train_fp=state.fingerprint(run.train), val_fp=state.fingerprint(run.validation),
                       path=out_dir / "last.json")
    start = int(meta["epoch"])
    best.restore(meta, weights)
    hist_path = out_dir / "history.json"
    history = json.loads(hist_path.read_text())[:start] if hist_path.is_file() else []
    if [h.get("epoch") for h in history] != list(range(1, start + 1)):
        raise ModelError(f"{hist_path}: does not hold epochs 1 to {start} of the saved "
                         f"training state; cannot resume (train again without --resume)")
    log(f"resuming after epoch {start} (best so far: epoch {best.epoch}, "
        f"song balanced accuracy {best.metric:.3f}, validation loss {best.loss:.4f})")
    return start, history


def _checkpoint(run: _Run, epoch: int, model, optimizer, generator, best: Best, history: list[dict]) -> None:
    """The history first, the state last: a kill between the two leaves a history one epoch
    ahead, which a resume cuts back; the other order would lose an epoch's record."""
    atomic_write_json(run.out_dir / "history.json", history)
    state.save_state(run.out_dir, model=model, optimizer=optimizer, generator=generator,
                     best_state=best.weights,
                     meta={"format": state.STATE_FORMAT, "version": state.STATE_VERSION, "epoch": epoch,
                           **best.to_meta(), "model_config": run.model_config.to_dict(),
                           "train_config": run.train_config.to_dict(),
                           "train_data": state.fingerprint(run.train),
                           "validation_data": state.fingerprint(run.validation)})


def _final_metrics(model: SeedCNN, validation: SnippetSet, threads: BatchThreads
                   ) -> tuple[dict, float, np.ndarray]:
    """Validation metrics of the final model, the chosen vote threshold, and song mean probabilities."""
    probs = snippet_probabilities(model, validation, threads)
    n_songs = len(validation.songs)
    vote_scores = song_vote_scores(probs, validation.song, n_songs)
    threshold = float(np.clip(choose_threshold(validation.song_labels, vote_scores), 1e-6, 1 - 1e-6))
    at_half = song_verdicts(probs, validation.song, n_songs, threshold=0.5)
    at_t = song_verdicts(probs, validation.song, n_songs, threshold=threshold)
    song_mean = np.array([v.probability for v in at_half])
    metrics = {
        "split": "validation",
        "threshold_rule": "snippet threshold of the song vote maximising validation song balanced accuracy",
        "threshold": threshold,
        "snippet": binary_metrics(validation.y, probs >= 0.5, probs),
        "song": binary_metrics(validation.song_labels, [v.is_prog for v in at_half], song_mean),
        "song_at_threshold": binary_metrics(validation.song_labels, [v.is_prog for v in at_t], vote_scores),
    }
    return metrics, threshold, song_mean


def _epoch_line(record: dict, epochs: int, improved: bool) -> str:
    return (f"epoch {record['epoch']:3d}/{epochs}  loss {record['loss_train']:.4f}/{record['loss_validation']:.4f}  "
            f"snippets {record['accuracy_snippet_train']:.3f}/{record['accuracy_snippet_validation']:.3f}  "
            f"songs (val) {record['accuracy_song_validation']:.3f} "
            f"balanced {record['balanced_accuracy_song_validation']:.3f}{'  *' if improved else ''}  "
            f"{record['seconds']:.1f} s")


def train_model(train: SnippetSet, validation: SnippetSet, *, model_config: ModelConfig,
                train_config: TrainConfig, out_dir: str | os.PathLike, feature_config: FeatureConfig,
                snippet_config: SnippetConfig, log: Callable[[str], None] | None = None,
                progress: Callable[[int, dict], None] | None = None,
                resume: bool = False, log_dir: str | os.PathLike | None = None,
                cnn_input: str = "seed43") -> TrainResult:
    """Train :class:`~progrock.model.network.SeedCNN` and save the best epoch.

    Parameters
    ----------
    train, validation : SnippetSet
        Windows of the songs' feature matrices, with their songs and labels.
        Validation songs are judged with the vote rule (place them with the
        class-free placement for an unbiased song verdict).
    model_config, train_config
        The network and the training settings.
    out_dir : path-like
        Where the model, the resumable state, the history and the monitoring go.
    feature_config, snippet_config
        Saved with the model so it describes its own input.
    cnn_input : str
        What the snippets hold (:data:`progrock.model.inputs.CNN_INPUTS`): the
        feature set's rows and any the input adds below them; saved too.
    log : callable, optional
        Receives one human-readable line per epoch and a few more.
    progress : callable, optional
        ``progress(epoch, record)`` after every epoch.
    resume : bool
        Continue from ``out_dir/last.*`` if present (the settings and data must
        match; ``epochs`` and the patience may change).
    log_dir : path-like, optional
        TensorBoard's folder for this training (default ``out_dir/tensorboard``).

    Returns
    -------
    TrainResult
    """
    log = log or (lambda _msg: None)
    out_dir = Path(out_dir)
    from progrock.model.inputs import cnn_rows, cnn_rows_said

    if cnn_rows(feature_config, cnn_input) != model_config.n_features:
        raise ConfigError(f"the model expects {model_config.n_features} features, "
                          f"{cnn_rows_said(feature_config, cnn_input)}")
    snippet_config.check_frame_rate(feature_config)
    _check_set(train, "training", model_config)
    _check_set(validation, "validation", model_config)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(train, validation, model_config, train_config, feature_config, snippet_config, out_dir,
               positive_weight(train.y, train_config.class_weight),
               Path(log_dir) if log_dir is not None else out_dir / "tensorboard", cnn_input)
    # a training step allocates and frees hundreds of MB: keep them in the process (page faults
    # took a quarter of a step's time with glibc's default thresholds)
    array_friendly_malloc(trim_bytes=512 << 20)
    with BatchThreads(train_config.num_threads or available_cores()) as threads:
        return _train(run, threads, log, progress, resume)


def _train(run: _Run, threads: BatchThreads, log, progress, resume: bool) -> TrainResult:
    """:func:`train_model` once its inputs are checked: set up, the epochs, the best epoch's finish."""
    tc, out_dir, validation = run.train_config, run.out_dir, run.validation
    torch.manual_seed(tc.seed)
    np.random.seed(tc.seed)
    generator = torch.Generator().manual_seed(tc.seed)
    model = SeedCNN(run.model_config)
    model.normalisation.initialise(*snippet_statistics(run.train))
    model.to(torch.device(tc.device))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                                 lr=tc.lr, weight_decay=tc.weight_decay)
    best = Best(tc.best_by, weights={k: v.detach().clone() for k, v in model.state_dict().items()})
    start, history = 0, []
    if resume and (out_dir / "last.json").is_file():
        start, history = _resume(run, model, optimizer, generator, best, log)
    elif resume:
        log(f"nothing to resume in {out_dir}; starting afresh")
    log(f"training on {len(run.train)} snippets of {len(run.train.songs)} songs ({int((run.train.y == 1).sum())} "
        f"prog snippets, {tc.placement} placement), validating on {len(validation)} snippets of "
        f"{len(validation.songs)} songs; pos_weight {run.pos_weight and round(run.pos_weight, 3)}, "
        f"{threads.n_threads} threads")
    probe = np.sort(np.random.default_rng(tc.seed).choice(
        len(validation), size=min(PROBE_SIZE, len(validation)), replace=False))
    monitor = TrainingMonitor(run.log_dir, model,
                              SnippetSet(validation.frames, validation.song[probe], validation.start[probe],
                                         validation.length).x,
                              histogram_every=tc.histogram_every, purge_step=start + 1)
    patience = tc.early_stopping_patience
    stopped_early = bool(start and patience and best.since >= patience)
    try:
        for epoch in range(start + 1, tc.epochs + 1):
            if stopped_early:
                break
            record = _one_epoch(run, epoch, model, optimizer, generator, threads)
            improved = best.update(epoch, record, model)
            record["best_epoch"] = best.epoch
            stopped_early = bool(patience and best.since >= patience)
            history.append(record)
            monitor.log_epoch(epoch, record)
            if monitor.wants_histograms(epoch, last=epoch == tc.epochs or stopped_early):
                monitor.log_histograms(epoch)
            if improved:
                run.save(best.weights, history, best)
            _checkpoint(run, epoch, model, optimizer, generator, best, history)
            log(_epoch_line(record, tc.epochs, improved))
            if progress is not None:
                progress(epoch, record)
        if stopped_early:
            log(f"stopped early: no better validation epoch ({tc.best_by}) for {patience} epochs")
        return _finish(run, model, best, history, stopped_early, monitor, threads, log)
    finally:
        monitor.close()


def _finish(run: _Run, model: SeedCNN, best: Best, history: list[dict], stopped_early: bool,
            monitor: TrainingMonitor, threads: BatchThreads, log) -> TrainResult:
    """The best epoch's weights, their threshold and validation metrics, saved; the last plots."""
    model.load_state_dict(best.weights)
    model.eval()
    metrics, threshold, song_mean = _final_metrics(model, run.validation, threads)
    model_path = run.save(best.weights, history, best, threshold=threshold, metrics=metrics,
                          complete=True, stopped_early=stopped_early)
    confusion = metrics["song"]["confusion"]
    monitor.log_final(best.epoch, confusion, run.validation.song_labels, song_mean)
    if history:
        write_plots(run.out_dir, history, confusion, best_epoch=best.epoch)
    log(f"best epoch {best.epoch}: validation song balanced accuracy {best.metric:.3f}, loss {best.loss:.4f}; "
        f"threshold {threshold:.3f} -> {metrics['song_at_threshold']['balanced_accuracy']:.3f}; "
        f"saved {model_path}")
    return TrainResult(model=model, model_path=model_path, threshold=threshold, best_epoch=best.epoch,
                       metrics=metrics, history=history, stopped_early=stopped_early, out_dir=run.out_dir)
