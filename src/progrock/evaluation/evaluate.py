"""Judge a run on named sets of songs: every model as it was trained, every figure with its interval.

Nothing is refitted here: each of the run's models judges the songs with its
stored threshold (:meth:`progrock.model.run.Run.judge`). Per set and model:

* the song-level metrics at the model's threshold (:func:`~progrock.evaluation.metrics.binary_metrics`),
  the main ones with a bootstrap interval over the songs (:mod:`.intervals`);
* threshold-free figures that travel to new music: ROC-AUC, and the balanced
  accuracy at the best threshold *for this set* (an upper bound, labelled so);
* a reliability (calibration) table: mean predicted probability against the
  share of prog songs, in bins;
* whether the model's probabilities have shifted against the run's
  validation songs (the mean per class, :data:`SHIFT`);
* each model against the CNN, by a paired bootstrap interval of the
  difference in song balanced accuracy: a claim only where the interval
  excludes zero.

For the CNN, ``cnn_snippet`` also gives the snippet-level figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from progrock.constants import CLASSES
from progrock.evaluation.intervals import paired_difference, with_intervals
from progrock.evaluation.metrics import balanced_accuracy_at, binary_metrics
from progrock.evaluation.verdict import SongResult
from progrock.model.run import Run, Songs

SHIFT = 0.15
"""A class's mean probability that moves by more than this from validation is reported as shifted."""

CALIBRATION_BINS = 5
REFERENCE = "cnn"
"""The model every other is compared with."""


@dataclass
class Evaluation:
    """Metrics per set and model, the per-song results, comparisons and warnings.

    Attributes
    ----------
    metrics : dict
        ``{set: {model: metrics}}`` for labelled songs: :func:`binary_metrics`'s keys plus
        ``intervals`` (balanced accuracy, MCC, ROC-AUC with 95 % bootstrap intervals),
        ``best_balanced_accuracy`` (at the best threshold for the set: an upper bound),
        ``calibration`` and ``shift``.
    songs : dict
        ``{set: {model: [SongResult]}}``.
    comparisons : dict
        ``{set: {model: paired difference against the CNN}}``.
    thresholds : dict
        Each model's threshold.
    default_model : str
    skipped : list of (path, reason)
    copies : list of (path, training song)
        Songs of new data that are copies of the run's training songs (judged apart, in the set ``copies``).
    notes : list of str
        What a reader of these figures must know (e.g. a pretrained model judged on synthetic music).
    """

    metrics: dict[str, dict[str, dict]] = field(default_factory=dict)
    songs: dict[str, dict[str, list[SongResult]]] = field(default_factory=dict)
    comparisons: dict[str, dict[str, dict]] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)
    default_model: str = "cnn"
    skipped: list[tuple[str, str]] = field(default_factory=list)
    copies: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self, *, songs: bool = True) -> dict:
        out = {"default_model": self.default_model, "thresholds": self.thresholds, "titles": self.titles,
               "sets": self.metrics, "comparisons": self.comparisons,
               "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
               "copies_of_training_songs": [{"path": p, "training_song": t} for p, t in self.copies],
               "notes": self.notes}
        if songs:
            out["songs"] = {s: {m: [r.to_dict() for r in rows] for m, rows in ms.items()}
                            for s, ms in self.songs.items()}
        return out

    def best_model(self, set_name: str, metric: str = "balanced_accuracy") -> str | None:
        """The model with the highest ``metric`` on a set (song-level models only)."""
        rows = {m: v.get(metric) for m, v in self.metrics.get(set_name, {}).items()
                if m != "cnn_snippet" and v.get(metric) is not None}
        return max(rows, key=rows.get) if rows else None


def _labelled(rows: list[SongResult]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    keep = [i for i, r in enumerate(rows) if r.truth in CLASSES]
    y = np.array([CLASSES.index(rows[i].truth) for i in keep], dtype=np.int64)
    pred = np.array([rows[i].is_prog for i in keep], dtype=np.int64)
    prob = np.array([rows[i].probability for i in keep], dtype=np.float64)
    return y, pred, prob, keep


def calibration(y: np.ndarray, prob: np.ndarray, bins: int = CALIBRATION_BINS) -> list[dict]:
    """Reliability table: per probability bin, the songs, their mean probability and the share of prog."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(prob, edges[1:-1]), 0, bins - 1)
    return [{"low": float(edges[b]), "high": float(edges[b + 1]), "n": int((which == b).sum()),
             "mean_probability": float(prob[which == b].mean()) if (which == b).any() else None,
             "share_prog": float(y[which == b].mean()) if (which == b).any() else None} for b in range(bins)]


def _shift(y: np.ndarray, prob: np.ndarray, reference: dict | None) -> dict | None:
    """Each class's mean probability here against validation's; ``shifted`` when one moved by > :data:`SHIFT`."""
    if not reference:
        return None
    here = {c: float(prob[y == i].mean()) for i, c in enumerate(CLASSES) if (y == i).any()}
    moved = {c: round(here[c] - reference[c], 4) for c in here if reference.get(c) is not None}
    return {"validation": reference, "here": here, "moved": moved,
            "shifted": any(abs(v) > SHIFT for v in moved.values())}


def model_metrics(rows: list[SongResult], *, seed: int = 0, validation_means: dict | None = None) -> dict:
    """Every figure of one model on one set's labelled songs (empty when none is labelled)."""
    y, pred, prob, _ = _labelled(rows)
    if not len(y):
        return {}
    m = binary_metrics(y, pred, prob)
    m["intervals"] = with_intervals(y, pred, prob, seed=seed)
    if len(np.unique(y)) == 2:
        u = np.unique(prob)
        candidates = np.concatenate([(u[:-1] + u[1:]) / 2, [u[0] - 1e-9, u[-1] + 1e-9]]) if u.size > 1 else u
        m["best_balanced_accuracy"] = float(balanced_accuracy_at(y, prob, candidates).max())
    else:
        m["best_balanced_accuracy"] = None
    m["calibration"] = calibration(y, prob)
    m["shift"] = _shift(y, prob, validation_means)
    return m


def snippet_metrics(rows: list[SongResult]) -> dict:
    """The CNN's figures per snippet (every snippet labelled with its song's class)."""
    y = np.concatenate([[CLASSES.index(r.truth)] * r.n_snippets for r in rows if r.truth in CLASSES] or [[]])
    p = np.concatenate([r.snippet_probs for r in rows if r.truth in CLASSES] or [[]])
    if not len(y):
        return {}
    t = rows[0].threshold
    return binary_metrics(y.astype(np.int64), p >= t, p)


def evaluate(run: Run, sets: dict[str, Songs], *, models: list[str] | None = None, seed: int = 0) -> Evaluation:
    """Every model of ``run`` on every set of songs.

    Parameters
    ----------
    run : Run
    sets : dict of Songs
        Per set name, the songs with their features and (where known) their class.
    models : list of str, optional
        A subset of the run's models.
    seed : int
        Seed of the bootstrap.
    """
    names = run.model_names(models)
    result = Evaluation(thresholds={m: run.entries[m].threshold for m in names},
                        titles={m: run.entries[m].title for m in names}, default_model=run.default_model)
    means = run.description.get("validation", {}).get("class_means", {})
    for set_name, songs in sets.items():
        judged = run.judge(songs, names)
        result.skipped += judged.skipped
        result.songs[set_name] = judged.results
        metrics = {m: model_metrics(rows, seed=seed, validation_means=None if set_name in ("train", "validation")
                                    else means.get(m)) for m, rows in judged.results.items()}
        if "cnn" in judged.results:
            metrics["cnn_snippet"] = snippet_metrics(judged.results["cnn"])
        result.metrics[set_name] = {m: v for m, v in metrics.items() if v}
        result.comparisons[set_name] = _compare(judged.results, seed=seed)
    return result


def _compare(results: dict[str, list[SongResult]], *, seed: int) -> dict[str, dict]:
    """Each model's song balanced accuracy minus the CNN's, paired over the same songs."""
    if REFERENCE not in results:
        return {}
    y, ref_pred, _, keep = _labelled(results[REFERENCE])
    if len(np.unique(y)) < 2:
        return {}
    out = {}
    for m, rows in results.items():
        if m == REFERENCE:
            continue
        pred = np.array([rows[i].is_prog for i in keep], dtype=np.int64)
        out[m] = paired_difference(y, pred, ref_pred, seed=seed)
    return out
