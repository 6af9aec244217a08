"""The models a run gets from the pretrained tagger (musicnn, MSD): zero-shot, and a head on its embeddings.

The built-in run ``musicnn`` (:func:`builtin_run`) is usable wherever a run
folder is (``progrock predict musicnn SONGS``, ``progrock serve musicnn``,
``progrock evaluate musicnn DATA``) without any training: the song's
probability of prog is the mean over its 3-s patches of the tagger's
"Progressive rock" tag, the barcode the tag along the song.

The default threshold, :data:`DEFAULT_THRESHOLD`, was chosen without any prog
recording (none can be had here): the tag's song-mean probability on every
non-prog recording at hand — the eleven songs of Debian's free-music packages
``fretsonfire-songs-muldjord``, ``fretsonfire-songs-sectoid`` and
``asc-music`` (death metal, hard rock, game music) — lies between 0.007 and
0.056, and 0.10 sits above all of them with a margin, so that a song must
sound clearly more like the tag than any of those to be called prog. It is a
guard against false alarms, not a tuned operating point: ``progrock
evaluate musicnn DATA`` reports the threshold-free figures (ROC-AUC, the
best threshold's balanced accuracy) on a labelled collection.

A trained run holds two models from the tagger (:func:`fit_musicnn_models`):

``musicnn``
    the "Progressive rock" tag's song-mean probability, its threshold chosen
    on the run's validation songs (nothing else is fitted);
``musicnn_head``
    transfer learning: a logistic regression on the 200-value embedding of
    every 3-s patch of the training songs (each patch labelled with its
    song's class, each song weighing the same whatever its length), whose
    patch probabilities make the verdict by the seed's vote; the vote's
    threshold chosen on validation.
"""

from __future__ import annotations

import numpy as np

from progrock.data.snippets import SnippetConfig
from progrock.evaluation.metrics import choose_threshold
from progrock.evaluation.verdict import song_vote_scores
from progrock.features.musicnn.features import patch_embeddings, prog_tag
from progrock.features.sets import FeatureConfig
from progrock.model.classical import fit_logistic
from progrock.model.run import ModelEntry, Run, Songs

TITLES = {"musicnn": "musicnn tagger, zero-shot (Progressive rock tag)",
          "musicnn_head": "musicnn embeddings + logistic head (transfer)"}
RULE = "chosen on the validation songs: the balanced accuracy's maximiser nearest 0.5"


def _threshold(y: np.ndarray, scores: np.ndarray) -> float:
    return float(np.clip(choose_threshold(y, scores), 1e-6, 1 - 1e-6))


def _fit_head(features: list[np.ndarray], y: np.ndarray, *, seed: int):
    """The logistic head on every patch of ``features`` (each song weighing the same)."""
    X = [patch_embeddings(x) for x in features]
    weights = np.concatenate([np.full(len(e), 1.0 / max(len(e), 1)) for e in X])
    labels = np.concatenate([np.full(len(e), label) for e, label in zip(X, y)])
    return fit_logistic(np.concatenate(X), labels, seed=seed, sample_weight=weights)


def _vote_scores(head, features: list[np.ndarray]) -> np.ndarray:
    """Per song, the vote score of the head's patch probabilities (see :func:`song_vote_scores`)."""
    probs = [head.predict(patch_embeddings(x)) for x in features]
    song = np.concatenate([np.full(len(p), i) for i, p in enumerate(probs)])
    return song_vote_scores(np.concatenate(probs), song, len(probs))


def head_out_of_fold(features: list[np.ndarray], y: np.ndarray, folds: np.ndarray, threshold: float, *,
                     seed: int = 0) -> np.ndarray:
    """The head's verdicts (0/1) on songs from heads fitted without the song's fold."""
    out = np.zeros(len(y), dtype=np.int64)
    for k in np.unique(folds):
        held = np.flatnonzero(folds == k)
        head = _fit_head([x for i, x in enumerate(features) if folds[i] != k], y[folds != k], seed=seed)
        out[held] = _vote_scores(head, [features[i] for i in held]) >= threshold
    return out


def fit_musicnn_models(run: Run, models: list[str], train: Songs, y_train: np.ndarray, val: Songs,
                       y_val: np.ndarray, *, seed: int = 0) -> None:
    """Add the musicnn models named in ``models`` to ``run`` (the songs carry the ``musicnn`` set)."""
    if "musicnn" in models:
        scores = np.array([prog_tag(x).mean() for x in val.features["musicnn"]])
        run.entries["musicnn"] = ModelEntry("musicnn", TITLES["musicnn"], "mean", _threshold(y_val, scores),
                                            threshold_rule=RULE)
    if "musicnn_head" in models:
        head = _fit_head(train.features["musicnn"], y_train, seed=seed)
        run.classical["musicnn_head"] = head
        vote = _vote_scores(head, val.features["musicnn"])
        run.entries["musicnn_head"] = ModelEntry("patches", TITLES["musicnn_head"], "vote",
                                                 _threshold(y_val, vote), input="musicnn", threshold_rule=RULE)


DEFAULT_THRESHOLD = 0.10
"""Song-mean "Progressive rock" probability at or above which the built-in run says prog (see above)."""


def builtin_run() -> Run:
    """The run ``musicnn``: one model, no training data of progrock's, no familiarity check."""
    entry = ModelEntry("musicnn", TITLES["musicnn"], "mean", DEFAULT_THRESHOLD,
                       threshold_rule="a guard against false alarms on non-prog music, chosen without any prog "
                                      "recording (progrock.model.pretrained)")
    return Run({"musicnn": entry}, "musicnn",
               {"seed43": FeatureConfig.named("seed43"), "musicnn": FeatureConfig.named("musicnn")},
               SnippetConfig(),
               description={"trained_on": {"source": "the Million Song Dataset (musicnn 0.1.0, MSD_musicnn; "
                                                     "Pons & Serra 2019, ISC licence)",
                                           "synthetic": False, "songs": None, "feature_sets": ["musicnn"]},
                            "recipe": "pretrained", "built_in": "musicnn"})
