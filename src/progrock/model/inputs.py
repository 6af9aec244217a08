"""What each song-level model reads: one vector per song, made from the song's features.

Every song-level model of a run names its input here (:data:`INPUTS`); the
same function makes the input when the model is trained and when it judges a
song, so the two cannot drift apart.

``song_statistics``
    means, spreads and frame-to-frame changes of the seed43 features
    (:func:`progrock.features.summary.song_statistics`);
``structure``
    the song's structure descriptors (:mod:`progrock.features.structure`)
    and the profile of the CNN's snippet probabilities along it
    (:func:`snippet_profile`).

The musicnn models read their feature set's rows directly (tags, embeddings per patch).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

PROFILE_NAMES: tuple[str, ...] = (
    "cnn_mean", "cnn_std", "cnn_q10", "cnn_q50", "cnn_q90", "cnn_share_prog", "cnn_longest_prog_share",
    "cnn_centre", "cnn_spread")
"""Entries of :func:`snippet_profile`."""


def snippet_profile(probs: np.ndarray, starts: np.ndarray, duration: float) -> np.ndarray:
    """How the CNN's snippet probabilities lie along a song.

    Parameters
    ----------
    probs : np.ndarray [shape=(n_snippets,)]
        Probability of prog of each snippet.
    starts : np.ndarray [shape=(n_snippets,)]
        Snippet starts in seconds.
    duration : float
        The song's length in seconds.

    Returns
    -------
    np.ndarray [shape=(len(PROFILE_NAMES),), dtype=float64]
        Mean, standard deviation, 10th, 50th and 90th percentiles of the
        probabilities; the share of snippets at or above 0.5 and the longest
        run of such snippets as a share of all; where the prog-like evidence
        sits (the probability-weighted centre of the snippet starts, 0 = the
        song's start, 1 = its end) and how spread it is (weighted standard
        deviation of the positions). Always finite.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.size == 0:
        return np.zeros(len(PROFILE_NAMES))
    pos = np.asarray(starts, dtype=np.float64) / max(float(duration), 1e-9)
    prog = p >= 0.5
    longest = run = 0
    for v in prog:
        run = run + 1 if v else 0
        longest = max(longest, run)
    w = p / p.sum() if p.sum() > 0 else np.full(p.size, 1.0 / p.size)
    centre = float(np.sum(w * pos))
    spread = float(np.sqrt(np.sum(w * (pos - centre) ** 2)))
    q10, q50, q90 = np.percentile(p, [10, 50, 90])
    return np.array([p.mean(), p.std(), q10, q50, q90, prog.mean(), longest / p.size, centre, spread])


def statistics_input(seed43: np.ndarray, **_) -> np.ndarray:
    """The ``song_statistics`` input of one song."""
    from progrock.features.summary import song_statistics

    return song_statistics(seed43)


def structure_input(seed43: np.ndarray, *, frame_rate: float, snippet_probs: np.ndarray,
                    snippet_starts: np.ndarray, duration: float, **_) -> np.ndarray:
    """The ``structure`` input of one song: descriptors, then the CNN's snippet profile."""
    from progrock.features.structure import describe_song

    return np.concatenate([describe_song(seed43, frame_rate=frame_rate),
                           snippet_profile(snippet_probs, snippet_starts, duration)])


def input_names(name: str) -> list[str]:
    """Names of the entries of input ``name``, for explanations."""
    if name == "structure":
        from progrock.features.structure import DESCRIPTOR_NAMES

        return list(DESCRIPTOR_NAMES) + list(PROFILE_NAMES)
    from progrock.features.sets import FeatureConfig
    from progrock.features.summary import statistics_names

    return statistics_names(FeatureConfig.named("seed43").feature_names)


INPUTS: dict[str, Callable[..., np.ndarray]] = {
    "song_statistics": statistics_input,
    "structure": structure_input,
}
"""Song-level inputs by name."""
