"""Judge a trained run on named sets: the CNN at snippet and song level, and the baselines.

The CNN's song verdict is the seed's vote (the fraction of snippets with
``p >= threshold``; a tie counts as prog) with the threshold stored in the
model, and, for comparison, the mean snippet probability against the same
threshold. The baselines are fitted on the train set's song statistics, their
threshold chosen on validation like the CNN's. Every set is cut with the
class-free snippet placement a user's song gets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from progrock.constants import CLASSES
from progrock.data.dataset import SongFeatures
from progrock.data.snippets import SnippetSet
from progrock.evaluation.baselines import BASELINES, fit_baseline, prog_probability, song_statistics
from progrock.evaluation.metrics import binary_metrics, choose_threshold
from progrock.evaluation.verdict import song_verdicts
from progrock.model.checkpoint import LoadedModel

CNN_MODELS = {
    "cnn": "1D-CNN, snippet vote",
    "cnn_mean": "1D-CNN, mean probability",
    "cnn_snippet": "1D-CNN, single snippets",
}
"""The CNN's rows in the metrics table: song verdict by vote, by mean, and per snippet."""


@dataclass
class SongRow:
    """One song of the per-song table."""

    path: str
    label: str
    probability: float
    vote_fraction: float
    predicted: str
    n_snippets: int
    snippet_starts: list[float]
    snippet_probs: list[float]
    duration: float

    @property
    def correct(self) -> bool | None:
        return None if not self.label else self.label == self.predicted

    def to_dict(self) -> dict:
        d = asdict(self)
        d["correct"] = self.correct
        return d


@dataclass
class Evaluation:
    """Metrics per set and model, and the CNN's per-song rows per set."""

    metrics: dict[str, dict[str, dict]] = field(default_factory=dict)
    songs: dict[str, list[SongRow]] = field(default_factory=dict)
    threshold: float = 0.5
    baseline_thresholds: dict[str, float] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self, *, songs: bool = True) -> dict:
        out = {"threshold": self.threshold, "baseline_thresholds": self.baseline_thresholds,
               "sets": self.metrics,
               "skipped": [{"path": p, "reason": r} for p, r in self.skipped]}
        if songs:
            out["songs"] = {k: [r.to_dict() for r in v] for k, v in self.songs.items()}
        return out

    def best_model(self, set_name: str, metric: str = "balanced_accuracy") -> str | None:
        """The model with the highest ``metric`` on a set (song-level models only)."""
        rows = {m: v.get(metric) for m, v in self.metrics.get(set_name, {}).items()
                if m != "cnn_snippet" and v.get(metric) is not None}
        return max(rows, key=rows.get) if rows else None


def evaluate_cnn(model: LoadedModel, snips: SnippetSet, durations: dict[str, float] | None = None
                 ) -> tuple[dict[str, dict], list[SongRow]]:
    """Metrics of the CNN on one set and its per-song rows.

    Parameters
    ----------
    model : LoadedModel
    snips : SnippetSet
        Cut with the class-free placement.
    durations : dict, optional
        Song durations in seconds, for the barcode's time axis.

    Returns
    -------
    metrics : dict
        ``{"cnn": ..., "cnn_mean": ..., "cnn_snippet": ...}``, each from
        :func:`binary_metrics`; empty when the set has no labels.
    rows : list of SongRow
    """
    p = model.predict_proba(snips.x)
    n_songs = len(snips.songs)
    t = model.threshold
    vote = song_verdicts(p, snips.song, n_songs, threshold=t, rule="vote")
    frame_rate = model.snippet_config.frame_rate
    rows = []
    for i, (song_id, v) in enumerate(zip(snips.songs, vote)):
        mask = snips.song == i
        label = snips.song_labels[i]
        rows.append(SongRow(
            path=song_id, label=CLASSES[label] if label >= 0 else "",
            probability=v.probability, vote_fraction=v.vote_fraction,
            predicted=CLASSES[int(v.is_prog)], n_snippets=v.n_snippets,
            snippet_starts=[round(float(s) / frame_rate, 2) for s in snips.start[mask]],
            snippet_probs=[round(float(q), 4) for q in p[mask]],
            duration=(durations or {}).get(song_id, 0.0)))
    labelled = snips.song_labels >= 0
    if not labelled.any():
        return {}, rows
    y = snips.song_labels[labelled]
    mean_prob = np.array([v.probability for v in vote])[labelled]
    metrics = {
        "cnn": binary_metrics(y, np.array([v.is_prog for v in vote])[labelled], mean_prob),
        "cnn_mean": binary_metrics(y, mean_prob >= t, mean_prob),
    }
    snip_ok = snips.y >= 0
    metrics["cnn_snippet"] = binary_metrics(snips.y[snip_ok], p[snip_ok] >= t, p[snip_ok])
    return metrics, rows


def evaluate_baselines(data: SongFeatures, sets: list[str], *, seed: int = 0,
                       names: tuple[str, ...] = tuple(BASELINES)) -> tuple[dict, dict[str, float]]:
    """Fit each baseline on the train set's song statistics and judge it on ``sets``.

    Returns
    -------
    metrics : dict
        ``{set: {baseline: binary_metrics}}`` for labelled sets.
    thresholds : dict
        The probability threshold of each baseline, chosen on validation
        (0.5 without a validation set).
    """
    stats = {name: [] for name in set(sets) | {"train", "validation"}}
    for song, x in zip(data.songs, data.features):
        if song.split in stats and song.label in CLASSES:
            stats[song.split].append((song_statistics(x), CLASSES.index(song.label)))

    def arrays(name):
        rows = stats.get(name) or []
        return (np.array([r[0] for r in rows]), np.array([r[1] for r in rows], dtype=np.int64))

    X_train, y_train = arrays("train")
    metrics: dict[str, dict] = {s: {} for s in sets}
    thresholds: dict[str, float] = {}
    if len(np.unique(y_train)) < 2:
        return metrics, thresholds
    X_val, y_val = arrays("validation")
    for name in names:
        model = fit_baseline(name, X_train, y_train, seed=seed)
        thresholds[name] = (choose_threshold(y_val, prog_probability(model, X_val))
                            if len(y_val) else 0.5)
        for s in sets:
            X, y = arrays(s)
            if len(y):
                prob = prog_probability(model, X)
                metrics[s][name] = binary_metrics(y, prob >= thresholds[name], prob)
    return metrics, thresholds


def evaluate(model: LoadedModel, data: SongFeatures, snippet_sets: dict[str, SnippetSet], *,
             baselines: tuple[str, ...] = tuple(BASELINES), seed: int = 0) -> Evaluation:
    """The CNN and the baselines on every set of ``snippet_sets``.

    Parameters
    ----------
    model : LoadedModel
    data : SongFeatures
        Features of the manifest's songs (the baselines' input).
    snippet_sets : dict of SnippetSet
        Per set name, cut with the class-free placement.
    baselines : tuple of str
        Keys of :data:`~progrock.evaluation.baselines.BASELINES`; empty to skip.
    seed : int
        Seed of the baselines.
    """
    durations = {s.path: s.duration for s in data.songs}
    result = Evaluation(threshold=model.threshold)
    for name, snips in snippet_sets.items():
        metrics, rows = evaluate_cnn(model, snips, durations)
        result.metrics[name] = metrics
        result.songs[name] = rows
    if baselines:
        base, thresholds = evaluate_baselines(data, list(snippet_sets), seed=seed, names=baselines)
        result.baseline_thresholds = thresholds
        for name, m in base.items():
            result.metrics.setdefault(name, {}).update(m)
    return result
