"""From snippet probabilities to a song verdict.

Two rules, in :data:`RULES`:

``"vote"`` (the seed's)
    the song is prog iff at least half of its snippets have ``p >= threshold``
    (a tie counts as prog);
``"mean"``
    the song is prog iff its mean snippet probability is ``>= threshold``.

In both cases the song's ``probability`` is the mean snippet probability and
``vote_fraction`` the fraction of snippets at or above the threshold.

:func:`song_vote_scores` gives, per song, the one number that decides the vote
at every threshold at once: the ``ceil(n/2)``-th largest snippet probability.
A song is prog by vote at threshold ``t`` exactly when that score is ``>= t``,
so a vote threshold can be tuned like any score threshold
(:func:`progrock.evaluation.metrics.choose_threshold`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from progrock.errors import ConfigError

RULES = ("vote", "mean")


@dataclass(frozen=True)
class SongVerdict:
    """A song's verdict.

    Attributes
    ----------
    probability : float
        Mean snippet probability of prog.
    vote_fraction : float
        Fraction of snippets with ``p >= threshold``.
    is_prog : bool
        The verdict under the rule used.
    n_snippets : int
    """

    probability: float
    vote_fraction: float
    is_prog: bool
    n_snippets: int

    def to_dict(self) -> dict:
        return asdict(self)


def _check(threshold: float, rule: str) -> None:
    if rule not in RULES:
        raise ConfigError(f"unknown verdict rule {rule!r}; known: {list(RULES)}")
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"threshold must be in [0, 1], got {threshold}")


def song_verdict(snippet_probs: np.ndarray, *, threshold: float = 0.5, rule: str = "vote") -> SongVerdict:
    """Verdict for one song from its snippets' probabilities ``[n_snippets]``."""
    _check(threshold, rule)
    p = np.asarray(snippet_probs, dtype=np.float64).ravel()
    if p.size == 0:
        raise ConfigError("a song needs at least one snippet for a verdict")
    probability = float(p.mean())
    vote_fraction = float(np.mean(p >= threshold))
    is_prog = vote_fraction >= 0.5 if rule == "vote" else probability >= threshold
    return SongVerdict(probability, vote_fraction, bool(is_prog), int(p.size))


def song_verdicts(probs: np.ndarray, song: np.ndarray, n_songs: int, *, threshold: float = 0.5,
                  rule: str = "vote") -> list[SongVerdict]:
    """Verdicts for many songs at once.

    Parameters
    ----------
    probs : np.ndarray [shape=(n_snippets,)]
        Snippet probabilities of prog.
    song : np.ndarray [shape=(n_snippets,), dtype=int]
        Song index of each snippet, in ``[0, n_songs)``.
    n_songs : int

    Returns
    -------
    list of SongVerdict, one per song index; a song without snippets raises.
    """
    _check(threshold, rule)
    p, s = _validate(probs, song, n_songs)
    counts = np.bincount(s, minlength=n_songs)
    if (counts == 0).any():
        empty = np.flatnonzero(counts == 0)[:5].tolist()
        raise ConfigError(f"songs without snippets, e.g. indices {empty}")
    mean = np.bincount(s, weights=p, minlength=n_songs) / counts
    votes = np.bincount(s, weights=(p >= threshold).astype(np.float64), minlength=n_songs) / counts
    prog = votes >= 0.5 if rule == "vote" else mean >= threshold
    return [SongVerdict(float(m), float(v), bool(g), int(c))
            for m, v, g, c in zip(mean, votes, prog, counts)]


def song_vote_scores(probs: np.ndarray, song: np.ndarray, n_songs: int) -> np.ndarray:
    """Per song, the ``ceil(n/2)``-th largest snippet probability ``[n_songs]``.

    ``song_vote_scores(...) >= t`` equals the vote verdict at threshold ``t``
    for every ``t`` (at least half of the snippets are ``>= t``, ties to prog).
    """
    p, s = _validate(probs, song, n_songs)
    counts = np.bincount(s, minlength=n_songs)
    if (counts == 0).any():
        raise ConfigError("songs without snippets have no vote score")
    order = np.lexsort((-p, s))                      # by song, then probability descending
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    k = (counts + 1) // 2                            # ceil(n / 2)
    return p[order][first + k - 1]


def _validate(probs, song, n_songs) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64).ravel()
    s = np.asarray(song).ravel()
    if p.shape != s.shape:
        raise ConfigError(f"probs and song differ in length: {p.size} and {s.size}")
    if s.size and (s.min() < 0 or s.max() >= n_songs):
        raise ConfigError(f"song indices must be in [0, {n_songs})")
    return p, s.astype(np.int64)
