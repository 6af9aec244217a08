"""The musicnn models of a trained run: the tag zero-shot, and a logistic head on the embeddings.

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

from progrock.evaluation.metrics import choose_threshold
from progrock.evaluation.verdict import song_vote_scores
from progrock.model.classical import fit_logistic
from progrock.model.musicnn.features import patch_embeddings, prog_tag
from progrock.model.run import ModelEntry, Run, Songs

TITLES = {"musicnn": "musicnn tagger, zero-shot (Progressive rock tag)",
          "musicnn_head": "musicnn embeddings + logistic head (transfer)"}
RULE = "chosen on the validation songs: the balanced accuracy's maximiser nearest 0.5"


def _threshold(y: np.ndarray, scores: np.ndarray) -> float:
    return float(np.clip(choose_threshold(y, scores), 1e-6, 1 - 1e-6))


def fit_musicnn_models(run: Run, models: list[str], train: Songs, y_train: np.ndarray, val: Songs,
                       y_val: np.ndarray, *, seed: int = 0) -> None:
    """Add the musicnn models named in ``models`` to ``run`` (the songs carry the ``musicnn`` set)."""
    if "musicnn" in models:
        scores = np.array([prog_tag(x).mean() for x in val.features["musicnn"]])
        run.entries["musicnn"] = ModelEntry("musicnn", TITLES["musicnn"], "mean", _threshold(y_val, scores),
                                            threshold_rule=RULE)
    if "musicnn_head" in models:
        X = [patch_embeddings(x) for x in train.features["musicnn"]]
        weights = np.concatenate([np.full(len(e), 1.0 / max(len(e), 1)) for e in X])
        y = np.concatenate([np.full(len(e), label) for e, label in zip(X, y_train)])
        head = fit_logistic(np.concatenate(X), y, seed=seed, sample_weight=weights)
        run.classical["musicnn_head"] = head
        val_probs = [head.predict(patch_embeddings(x)) for x in val.features["musicnn"]]
        song = np.concatenate([np.full(len(p), i) for i, p in enumerate(val_probs)])
        vote = song_vote_scores(np.concatenate(val_probs), song, len(val_probs))
        run.entries["musicnn_head"] = ModelEntry("patches", TITLES["musicnn_head"], "vote",
                                                 _threshold(y_val, vote), input="musicnn", threshold_rule=RULE)
