"""The training loop: :func:`train_model`.

One epoch = one shuffled pass over all training snippets, one Adam step per
batch, each batch split over the threads
(:class:`~progrock.training.threads.BatchThreads`); then an evaluation pass
over the validation snippets. On the CPU both passes are the compiled loop of
:mod:`progrock.model.fused`, reading the sets as they are (``[N, features,
frames]`` float32); elsewhere the model's own PyTorch pass, on a copy of each
set transposed once (``[N, frames, features]``) so that its channels-last
convolutions need no per-batch copy (:func:`_training_layout`). Recorded:

* loss (BCE with logits, prog weighted by ``pos_weight`` - see
  :class:`~progrock.training.config.TrainConfig`; the validation loss uses the
  same weight so the two curves are comparable);
* snippet accuracy (p >= 0.5) and balanced accuracy;
* song accuracy and balanced accuracy on validation with the seed's vote rule
  at 0.5 (:func:`~progrock.evaluation.verdict.song_verdicts`); the song
  accuracy on training comes from the training passes themselves (dropout on).

The best epoch is the one with the highest validation song balanced accuracy
(ties: lower validation loss). After training, its weights get a threshold:
the snippet threshold of the vote that maximises song balanced accuracy on
validation. Since a song is prog by vote at threshold ``t`` exactly when its
``ceil(n/2)``-th largest snippet probability is ``>= t``
(:func:`~progrock.evaluation.verdict.song_vote_scores`), this is
:func:`~progrock.evaluation.metrics.choose_threshold` on those scores: exact,
no grid, and 0.5 unless moving it helps. The validation metrics at the chosen
threshold are therefore optimistic; judge the model on the test split.

Files in ``out_dir``:

``model.safetensors`` + ``model.json``
    the best model (:func:`~progrock.model.checkpoint.save_model`), rewritten
    whenever validation improves and finally with the chosen threshold;
``last.safetensors`` + ``last.json``
    the resumable state after the last finished epoch: model, Adam state, the
    best weights, RNG states (torch, the shuffling generator, numpy) and the
    best metric, written atomically every epoch;
``history.json``
    one record per epoch;
``tensorboard/``, ``curves.png``, ``confusion_validation.png``
    see :mod:`progrock.training.monitor`.

``train_model(..., resume=True)`` continues from ``last.*``; on CPU with the
same thread count the result equals an uninterrupted run's bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from progrock.constants import CLASSES
from progrock.data.snippets import SnippetConfig, SnippetSet
from progrock.errors import ConfigError, DatasetError, ModelError
from progrock.evaluation.metrics import binary_metrics, choose_threshold
from progrock.evaluation.verdict import song_verdicts, song_vote_scores
from progrock.features.config import FeatureConfig
from progrock.parallel.malloc import array_friendly_malloc
from progrock.atomic import atomic_write_json, jsonable
from progrock.model.checkpoint import (
    atomic_save_tensors,
    read_json,
    read_tensors,
    save_model,
    sha256_file,
)
from progrock.model.network import ModelConfig, SeedCNN, predict_logits
from progrock.training.config import TrainConfig, positive_weight
from progrock.training.monitor import TrainingMonitor, write_plots
from progrock.training.threads import BatchThreads, available_cores

STATE_FORMAT = "progrock-training-state"
STATE_VERSION = 1
PROBE_SIZE = 64
"""Validation snippets in the fixed batch used for activation histograms."""

# Settings that may change between an interrupted run and its resumption.
_RESUMABLE_CHANGES = {"epochs", "early_stopping_patience", "num_threads", "histogram_every"}


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
        1-based epoch of the best validation song balanced accuracy.
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


def feature_statistics(x: np.ndarray, *, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation over snippets and frames, in float64.

    ``x [N, F, T] -> (mean [F], std [F])``; chunked (Chan's parallel update), so
    no float64 copy of the whole set is made.
    """
    n_total = 0
    mean = np.zeros(x.shape[1], dtype=np.float64)
    m2 = np.zeros(x.shape[1], dtype=np.float64)
    for i in range(0, len(x), chunk):
        c = np.asarray(x[i:i + chunk], dtype=np.float64)
        n = c.shape[0] * c.shape[2]
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


def _fingerprint(s: SnippetSet) -> str:
    """A cheap identity of a snippet set (shapes, songs, labels, a stride of the values)."""
    h = hashlib.sha256()
    h.update(repr(tuple(s.x.shape)).encode())
    h.update(json.dumps(list(s.songs)).encode())
    h.update(np.ascontiguousarray(s.song_labels, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(s.song, dtype=np.int64).tobytes())
    flat = s.x.reshape(-1)
    h.update(np.ascontiguousarray(flat[:: max(1, flat.size // 100_000)]).tobytes())
    return h.hexdigest()


def _check_set(s: SnippetSet, name: str, config: ModelConfig) -> None:
    if len(s) == 0:
        raise DatasetError(f"the {name} set has no snippets")
    if s.x.ndim != 3 or s.x.shape[1:] != (config.n_features, config.n_frames):
        raise ConfigError(f"{name} snippets have shape {tuple(s.x.shape[1:])}, the model expects "
                          f"({config.n_features}, {config.n_frames})")
    y = s.y
    if (y < 0).any():
        raise DatasetError(f"the {name} set has snippets of songs without a label")


def _record_metrics(prefix: str, y_true, y_pred, y_score=None) -> dict:
    m = binary_metrics(y_true, y_pred, y_score)
    return {f"accuracy_{prefix}": m["accuracy"], f"balanced_accuracy_{prefix}": m["balanced_accuracy"]}


def _time_major(x: np.ndarray, *, chunk: int = 256) -> torch.Tensor:
    """Snippets ``[N, F, T]`` as one contiguous float32 tensor ``[N, T, F]``, copied in chunks.

    The layout :meth:`SeedCNN.scores` runs its convolutions in (``time_major=True``):
    transposed once here, a batch is then a plain gather, with no per-step copy.
    """
    out = torch.empty((x.shape[0], x.shape[2], x.shape[1]), dtype=torch.float32)
    for i in range(0, len(x), chunk):
        c = torch.from_numpy(np.ascontiguousarray(x[i:i + chunk], dtype=np.float32))
        out[i:i + chunk].copy_(c.transpose(1, 2))
    return out


def _fused():
    """:mod:`progrock.model.fused`, imported on first use: it loads numba (half a second),
    which only training needs, not everything that imports this module (``progrock evaluate``)."""
    from progrock.model import fused

    return fused


def _training_layout(model: SeedCNN, x: np.ndarray) -> np.ndarray | torch.Tensor:
    """A set's snippets ``[N, F, T]`` as the training step reads them, made once per training.

    On the CPU the fused pass (:mod:`progrock.model.fused`) reads the snippets
    as they are: a C-contiguous float32 array, no copy when it already is one.
    Elsewhere :meth:`SeedCNN.scores` reads a time-major tensor (:func:`_time_major`).
    """
    if _fused().supports(model):
        return np.ascontiguousarray(x, dtype=np.float32)
    return _time_major(x).to(next(model.parameters()).device)


def _logits(model: SeedCNN, x: np.ndarray | torch.Tensor, batch_size: int, threads: BatchThreads,
            time_major: bool = False) -> np.ndarray:
    """Evaluation-mode logits of snippets ``x``, one contiguous part per thread.

    ``x``: as :func:`_training_layout` gives it, or ``[N, F, T]`` (``[N, T, F]``
    with ``time_major``).
    """
    if isinstance(x, torch.Tensor):
        x, time_major = x.cpu().numpy(), True
    elif _fused().supports(model):
        return _fused().logits(model, np.ascontiguousarray(x, dtype=np.float32), map_parts=threads.map)
    was_training = model.training
    model.eval()                            # here, not in the threads: the flag is shared
    try:
        parts = threads.map(lambda _i, rows: predict_logits(model, x[rows], batch_size=batch_size,
                                                            time_major=time_major), len(x))
    finally:
        model.train(was_training)
    return np.concatenate(parts)


def _evaluate(model: SeedCNN, s: SnippetSet, criterion: nn.Module, batch_size: int,
              x: np.ndarray | torch.Tensor, threads: BatchThreads) -> tuple[dict, np.ndarray]:
    """Validation record (loss, snippet and song accuracies) and snippet probabilities.

    ``x``: ``s.x`` as :func:`_training_layout` gives it, made once per training.
    """
    logits = _logits(model, x, batch_size, threads)
    y = s.y
    with torch.no_grad():
        loss = float(criterion(torch.from_numpy(logits), torch.from_numpy(y.astype(np.float32))))
    probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    record = {"loss_validation": loss}
    record.update(_record_metrics("snippet_validation", y, probs >= 0.5))
    verdicts = song_verdicts(probs, s.song, len(s.songs), threshold=0.5, rule="vote")
    record.update(_record_metrics("song_validation", s.song_labels, [v.is_prog for v in verdicts]))
    return record, probs


def _batch_gradients(model: SeedCNN, params: list[torch.Tensor], x: np.ndarray | torch.Tensor,
                     y: torch.Tensor, idx: torch.Tensor, pos_weight: torch.Tensor | None,
                     threads: BatchThreads):
    """Mean loss of the batch ``x[idx]``, its gradient and its logits.

    ``x``: the training set as :func:`_training_layout` gives it; an array runs
    the fused pass (:func:`progrock.model.fused.training_pass`), a tensor the
    model's own pass (time-major) with autograd. ``params``: the model's
    parameters that require a gradient, in order.

    The batch is split into one part per thread (:class:`BatchThreads`). The
    random draws of the whole batch are made first (:meth:`SeedCNN.draw_noise`),
    each part computes the gradient of its share of the batch's mean loss, and
    the parts' gradients are added in part order: the gradient one pass over
    the whole batch gives, with the same draws.

    Returns
    -------
    loss : float
    grads : list of torch.Tensor
        One per entry of ``params``.
    logits : torch.Tensor
        ``[len(idx)]``, detached.
    """
    noise = model.draw_noise(len(idx))
    if isinstance(x, np.ndarray):
        loss, grads, logits = _fused().training_pass(
            model, x, idx.numpy(), y.index_select(0, idx).numpy(), noise,
            pos_weight=None if pos_weight is None else float(pos_weight), scale=1.0 / len(idx),
            map_parts=threads.map)
        by_param = dict(zip([p for p in model.parameters() if p.requires_grad], grads))
        return loss, [by_param[p] for p in params], torch.from_numpy(logits)

    def part(_k: int, rows: slice):
        i = idx[rows].to(x.device)
        logits = model(x, time_major=True, index=i, noise=noise.rows(rows))   # reads x[i] in chunks
        loss = nn.functional.binary_cross_entropy_with_logits(
            logits, y.index_select(0, i), pos_weight=pos_weight, reduction="sum") / len(idx)
        return float(loss.detach()), torch.autograd.grad(loss, params), logits.detach()

    results = threads.map(part, len(idx))
    grads = [sum((r[1][j] for r in results[1:]), results[0][1][j]) for j in range(len(params))]
    return sum(r[0] for r in results), grads, torch.cat([r[2] for r in results])


def _train_epoch(model: SeedCNN, optimizer: torch.optim.Optimizer, pos_weight: torch.Tensor | None,
                 x: np.ndarray | torch.Tensor, y: torch.Tensor, generator: torch.Generator, batch_size: int,
                 threads: BatchThreads) -> tuple[float, np.ndarray]:
    """One shuffled pass; returns the mean training loss and each snippet's probability.

    ``x`` is the training set as :func:`_training_layout` gives it.
    One Adam step per batch (:func:`_batch_gradients`).
    """
    model.train()
    n = len(x)
    params = [p for p in model.parameters() if p.requires_grad]
    perm = torch.randperm(n, generator=generator)
    probs = np.empty(n, dtype=np.float64)
    total = 0.0
    for start in range(0, n, batch_size):
        idx = perm[start:start + batch_size]
        loss, grads, logits = _batch_gradients(model, params, x, y, idx, pos_weight, threads)
        for p, g in zip(params, grads):
            p.grad = g
        optimizer.step()
        total += loss * len(idx)
        probs[idx.numpy()] = torch.sigmoid(logits).double().cpu().numpy()
    return total / n, probs


# ---------------------------------------------------------------------------------------------
# resumable state


def _save_state(out_dir: Path, *, model, optimizer, generator, best_state, meta: dict) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v for k, v in best_state.items()})
    opt = optimizer.state_dict()
    for pid, st in opt["state"].items():
        for k, v in st.items():
            tensors[f"optim.{pid}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.shuffle"] = generator.get_state()
    np_state = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np_state[1].astype(np.int64))
    meta = dict(meta)
    meta["optimizer_param_groups"] = opt["param_groups"]
    meta["numpy_rng"] = {"name": np_state[0], "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                         "cached_gaussian": float(np_state[4])}
    weights = out_dir / "last.safetensors"
    # The description also travels inside the weights file: the two files are replaced one after
    # the other, and a kill between them must leave a state that can still be resumed.
    atomic_save_tensors(weights, tensors, metadata={_STATE_KEY: json.dumps(jsonable(meta))})
    meta["sha256"] = sha256_file(weights)
    atomic_write_json(out_dir / "last.json", meta)


_STATE_KEY = "progrock_training_state"
"""safetensors metadata key under which ``last.safetensors`` carries its own description."""


def _embedded_state(weights: Path) -> dict | None:
    """The description saved inside a training-state weights file, or ``None``."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            text = (f.metadata() or {}).get(_STATE_KEY)
        return json.loads(text) if text else None
    except Exception:  # noqa: BLE001 - any failure means: no usable description
        return None


def _load_state(out_dir: Path, *, model, optimizer, generator) -> tuple[dict, dict]:
    """Restore model, optimizer and RNGs from ``last.*``; returns (meta, best_state)."""
    meta_path, weights = out_dir / "last.json", out_dir / "last.safetensors"
    meta = read_json(meta_path)
    if meta.get("format") != STATE_FORMAT or meta.get("version") != STATE_VERSION:
        raise ModelError(f"{meta_path}: not a progrock training state of version {STATE_VERSION}")
    if not weights.is_file():
        raise ModelError(f"{weights}: missing; cannot resume")
    t = read_tensors(weights)  # a truncated or garbled file is refused here
    if sha256_file(weights) != meta.get("sha256"):
        # Killed after the weights were replaced but before last.json was: the weights file
        # carries its own description, one epoch ahead of last.json.
        meta = _embedded_state(weights) or {}
        if meta.get("format") != STATE_FORMAT or meta.get("version") != STATE_VERSION:
            raise ModelError(f"{weights}: does not match the hash in {meta_path.name} and holds no "
                             f"training state of its own")
    try:
        model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")}, strict=True)
        best = {k[5:]: v for k, v in t.items() if k.startswith("best.")}
        state: dict = {}
        for k, v in t.items():
            if k.startswith("optim."):
                _, pid, name = k.split(".", 2)
                state.setdefault(int(pid), {})[name] = v
        groups = meta["optimizer_param_groups"]
        for g in groups:
            if "betas" in g:
                g["betas"] = tuple(g["betas"])
        optimizer.load_state_dict({"state": state, "param_groups": groups})
        torch.set_rng_state(t["rng.torch"])
        generator.set_state(t["rng.shuffle"])
        r = meta["numpy_rng"]
        np.random.set_state((r["name"], t["rng.numpy"].numpy().astype(np.uint32), r["pos"],
                             r["has_gauss"], r["cached_gaussian"]))
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise ModelError(f"{weights}: cannot restore the training state ({exc})") from exc
    return meta, best


def _check_resume(meta: dict, *, model_config: ModelConfig, train_config: TrainConfig,
                  train_fp: str, val_fp: str, path: Path) -> None:
    if meta.get("model_config") != model_config.to_dict():
        raise ConfigError(f"{path}: saved with another model configuration: {meta.get('model_config')}")
    saved = {k: v for k, v in meta.get("train_config", {}).items() if k not in _RESUMABLE_CHANGES}
    now = {k: v for k, v in train_config.to_dict().items() if k not in _RESUMABLE_CHANGES}
    if saved != now:
        diffs = [f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(saved) | set(now))
                 if saved.get(k) != now.get(k)]
        raise ConfigError(f"{path}: cannot resume with other training settings ({'; '.join(diffs)})")
    if meta.get("train_data") != train_fp or meta.get("validation_data") != val_fp:
        raise ConfigError(f"{path}: cannot resume on other training or validation snippets")


# ---------------------------------------------------------------------------------------------


def train_model(train: SnippetSet, validation: SnippetSet, *, model_config: ModelConfig,
                train_config: TrainConfig, out_dir: str | os.PathLike, feature_config: FeatureConfig,
                snippet_config: SnippetConfig, log: Callable[[str], None] | None = None,
                progress: Callable[[int, dict], None] | None = None,
                resume: bool = False) -> TrainResult:
    """Train :class:`~progrock.model.network.SeedCNN` and save the best epoch.

    Parameters
    ----------
    train, validation : SnippetSet
        Snippets ``x [N, n_features, n_frames]`` with their songs and labels.
        Validation songs are judged with the vote rule (cut them with the
        class-free placement for an unbiased song verdict).
    model_config, train_config
        The network and the training settings.
    out_dir : path-like
        Where the model, the resumable state, the history and the monitoring go.
    feature_config, snippet_config
        Saved with the model so it describes its own input.
    log : callable, optional
        Receives one human-readable line per epoch and a few more.
    progress : callable, optional
        ``progress(epoch, record)`` after every epoch.
    resume : bool
        Continue from ``out_dir/last.*`` if present (the settings and data must
        match; ``epochs`` and the patience may change).

    Returns
    -------
    TrainResult
    """
    log = log or (lambda _msg: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if feature_config.n_features != model_config.n_features:
        raise ConfigError(f"the model expects {model_config.n_features} features, "
                          f"{feature_config.describe()} gives {feature_config.n_features}")
    _check_set(train, "training", model_config)
    _check_set(validation, "validation", model_config)
    tc = train_config
    pos_weight = positive_weight(train.y, tc.class_weight)
    device = torch.device(tc.device)

    # a training step allocates and frees hundreds of MB: keep them in the process (page faults
    # took a quarter of a step's time with glibc's default thresholds)
    array_friendly_malloc(trim_bytes=512 << 20)
    with BatchThreads(tc.num_threads or available_cores()) as threads:
        torch.manual_seed(tc.seed)
        np.random.seed(tc.seed)
        generator = torch.Generator().manual_seed(tc.seed)
        model = SeedCNN(model_config)
        mean, std = feature_statistics(train.x)
        model.normalisation.initialise(mean, std)
        model.to(device)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                                     lr=tc.lr, weight_decay=tc.weight_decay)
        pos_weight_t = None if pos_weight is None else torch.tensor([pos_weight], dtype=torch.float32)
        criterion = nn.BCEWithLogitsLoss(pos_weight=pos_weight_t)
        x = _training_layout(model, train.x)
        x_val = _training_layout(model, validation.x)
        y = torch.from_numpy(train.y.astype(np.float32)).to(device)
        train_fp, val_fp = _fingerprint(train), _fingerprint(validation)

        start_epoch, best_epoch, best_metric, best_loss, since_best = 0, 0, -1.0, float("inf"), 0
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        history: list[dict] = []
        if resume and (out_dir / "last.json").is_file():
            meta, best_state = _load_state(out_dir, model=model, optimizer=optimizer, generator=generator)
            _check_resume(meta, model_config=model_config, train_config=tc, train_fp=train_fp,
                          val_fp=val_fp, path=out_dir / "last.json")
            start_epoch, best_epoch = int(meta["epoch"]), int(meta["best_epoch"])
            best_metric, best_loss = float(meta["best_metric"]), float(meta["best_loss"])
            since_best = int(meta["epochs_since_best"])
            hist_path = out_dir / "history.json"
            history = json.loads(hist_path.read_text())[:start_epoch] if hist_path.is_file() else []
            if [h.get("epoch") for h in history] != list(range(1, start_epoch + 1)):
                raise ModelError(f"{hist_path}: does not hold epochs 1 to {start_epoch} of the saved "
                                 f"training state; cannot resume (train again without --resume)")
            log(f"resuming after epoch {start_epoch} (best so far: epoch {best_epoch}, "
                f"song balanced accuracy {best_metric:.3f})")
        elif resume:
            log(f"nothing to resume in {out_dir}; starting afresh")

        log(f"training on {len(train)} snippets of {len(train.songs)} songs "
            f"({int((train.y == 1).sum())} prog snippets), validating on {len(validation)} snippets of "
            f"{len(validation.songs)} songs; pos_weight {pos_weight if pos_weight is None else round(pos_weight, 3)}, "
            f"{torch.get_num_threads()} threads")

        rng = np.random.default_rng(tc.seed)
        probe_idx = np.sort(rng.choice(len(validation), size=min(PROBE_SIZE, len(validation)), replace=False))
        monitor = TrainingMonitor(out_dir / "tensorboard", model, validation.x[probe_idx],
                                  histogram_every=tc.histogram_every,
                                  purge_step=start_epoch + 1)   # hide stale events of an earlier run
        stopped_early = False
        try:
            if start_epoch and tc.early_stopping_patience and since_best >= tc.early_stopping_patience:
                stopped_early = True
            epoch = start_epoch
            for epoch in range(start_epoch + 1, tc.epochs + 1):
                if stopped_early:
                    break
                t0 = time.perf_counter()
                loss_train, train_probs = _train_epoch(model, optimizer, pos_weight_t, x, y, generator,
                                                       tc.batch_size, threads)
                t_train = time.perf_counter() - t0
                record: dict = {"epoch": epoch, "loss_train": loss_train}
                record.update(_record_metrics("snippet_train", train.y, train_probs >= 0.5))
                train_verdicts = song_verdicts(train_probs, train.song, len(train.songs))
                record["accuracy_song_train"] = binary_metrics(
                    train.song_labels, [v.is_prog for v in train_verdicts])["accuracy"]
                val_record, _ = _evaluate(model, validation, criterion, tc.batch_size, x_val, threads)
                record.update(val_record)
                record["seconds_train"] = t_train
                record["seconds"] = time.perf_counter() - t0

                metric, vloss = record["balanced_accuracy_song_validation"], record["loss_validation"]
                improved = metric > best_metric or (metric == best_metric and vloss < best_loss)
                if improved:
                    best_epoch, best_metric, best_loss, since_best = epoch, metric, vloss, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    since_best += 1
                record["best_epoch"] = best_epoch
                stopped_early = bool(tc.early_stopping_patience and since_best >= tc.early_stopping_patience)
                history.append(record)

                monitor.log_epoch(epoch, record)
                if monitor.wants_histograms(epoch, last=epoch == tc.epochs or stopped_early):
                    monitor.log_histograms(epoch)
                if improved:
                    _save_best(out_dir, model_config, best_state, feature_config, snippet_config, tc,
                               pos_weight, train, validation, history, best_epoch, threshold=0.5,
                               metrics=None, complete=False, stopped_early=False)
                # The history first, the state last: a kill between the two leaves a history one
                # epoch ahead, which a resume cuts back; the other order would lose an epoch's record.
                atomic_write_json(out_dir / "history.json", history)
                _save_state(out_dir, model=model, optimizer=optimizer, generator=generator,
                            best_state=best_state,
                            meta={"format": STATE_FORMAT, "version": STATE_VERSION, "epoch": epoch,
                                  "best_epoch": best_epoch, "best_metric": best_metric,
                                  "best_loss": best_loss, "epochs_since_best": since_best,
                                  "model_config": model_config.to_dict(), "train_config": tc.to_dict(),
                                  "train_data": train_fp, "validation_data": val_fp})
                log(f"epoch {epoch:3d}/{tc.epochs}  loss {loss_train:.4f}/{vloss:.4f}  "
                    f"snippets {record['accuracy_snippet_train']:.3f}/{record['accuracy_snippet_validation']:.3f}  "
                    f"songs (val) {record['accuracy_song_validation']:.3f} "
                    f"balanced {metric:.3f}{'  *' if improved else ''}  {record['seconds']:.1f} s")
                if progress is not None:
                    progress(epoch, record)
            if stopped_early:
                log(f"stopped early: no better validation song balanced accuracy for "
                    f"{tc.early_stopping_patience} epochs")

            # -- finalise with the best epoch's weights
            model.load_state_dict(best_state)
            model.eval()
            metrics, threshold, scores_mean = _final_metrics(model, validation, tc.batch_size, threads)
            model_path = _save_best(out_dir, model_config, best_state, feature_config, snippet_config, tc,
                                    pos_weight, train, validation, history, best_epoch,
                                    threshold=threshold, metrics=metrics, complete=True,
                                    stopped_early=stopped_early)
            last_epoch = history[-1]["epoch"] if history else start_epoch
            confusion = metrics["song"]["confusion"]
            monitor.log_final(last_epoch, confusion, validation.song_labels, scores_mean)
            if history:
                write_plots(out_dir, history, confusion)
        finally:
            monitor.close()
        log(f"best epoch {best_epoch}: validation song balanced accuracy {best_metric:.3f}; "
            f"threshold {threshold:.3f} -> {metrics['song_at_threshold']['balanced_accuracy']:.3f}; "
            f"saved {model_path}")
        return TrainResult(model=model, model_path=model_path, threshold=threshold, best_epoch=best_epoch,
                           metrics=metrics, history=history, stopped_early=stopped_early, out_dir=out_dir)


def _final_metrics(model: SeedCNN, validation: SnippetSet, batch_size: int,
                   threads: BatchThreads) -> tuple[dict, float, np.ndarray]:
    """Validation metrics of the final model, the chosen vote threshold, and song mean probabilities."""
    logits = _logits(model, validation.x, batch_size, threads)
    probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    n_songs = len(validation.songs)
    vote_scores = song_vote_scores(probs, validation.song, n_songs)
    threshold = choose_threshold(validation.song_labels, vote_scores)
    threshold = float(np.clip(threshold, 1e-6, 1 - 1e-6))
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


def _save_best(out_dir, model_config, best_state, feature_config, snippet_config, tc, pos_weight,
               train, validation, history, best_epoch, *, threshold, metrics, complete, stopped_early) -> Path:
    model = SeedCNN(model_config)
    model.load_state_dict(best_state)
    best_record = next((h for h in history if h["epoch"] == best_epoch), None)
    training = {
        "config": tc.to_dict(),
        "pos_weight": pos_weight,
        "n_train_snippets": len(train),
        "n_train_songs": len(train.songs),
        "n_train_prog_snippets": int((train.y == 1).sum()),
        "n_validation_snippets": len(validation),
        "n_validation_songs": len(validation.songs),
        "epochs_run": history[-1]["epoch"] if history else 0,
        "best_epoch": best_epoch,
        "best": best_record,
        "last": history[-1] if history else None,
        "stopped_early": stopped_early,
        "complete": complete,
        "classes": list(CLASSES),
    }
    return save_model(out_dir, model, model_config=model_config, feature_config=feature_config,
                      snippet_config=snippet_config, threshold=threshold, training=training, metrics=metrics)
