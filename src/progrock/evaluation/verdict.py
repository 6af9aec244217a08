"""From snippet probabilities to a song's verdict, and the one record of a song's result.

Two rules, in :data:`RULES`:

``"vote"`` (the seed's)
    the song is prog iff at least half of its snippets have ``p >= threshold``
    (a tie counts as prog);
``"mean"``
    the song is prog iff its mean snippet probability is ``>= threshold``.

In both cases the song's ``probability`` is the mean snippet probability and
``vote_fraction`` the fraction of snippets at or above the threshold. Both
rules are coded once, in :func:`song_verdicts`.

:func:`song_vote_scores` gives, per song, the one number that decides the vote
at every threshold at once: the ``ceil(n/2)``-th largest snippet probability.
A song is prog by vote at threshold ``t`` exactly when that score is ``>= t``,
so a vote threshold can be tuned like any score threshold
(:func:`progrock.evaluation.metrics.choose_threshold`).

:class:`SongResult` is what every command says of a song: ``predict`` (its
JSON lines and CSV rows), ``evaluate`` (its per-song table) and the web API.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from progrock.constants import CLASSES, SNIPPET_SECONDS
from progrock.errors import ConfigError

RULES = ("vote", "mean")


@dataclass
class SongResult:
    """A model's verdict on one song, with its evidence.

    Attributes
    ----------
    path : str
        The song as the caller named it (a file path, a manifest path, an upload's name).
    verdict : str
        ``"prog"`` or ``"nonprog"``: what the model says.
    probability : float
        The model's probability of prog for the song (for snippet models the
        mean over the snippets).
    vote_fraction : float or None
        Share of snippets with ``p >= threshold`` (with the vote rule,
        ``>= 0.5`` makes the song prog); ``None`` for song-level models.
    n_snippets : int
        Snippets judged.
    duration : float
        Seconds of audio.
    snippet_starts : list of float
        Start of each snippet, in seconds.
    snippet_probs : list of float
        Probability of prog of each snippet (the barcode).
    snippet_seconds : float
        Length of one snippet, in seconds.
    threshold : float
        The model's threshold (on snippets for the vote rule, on the song's
        probability for the mean rule).
    rule : str
        ``"vote"`` or ``"mean"``.
    model : str
        Which of the run's models gave the verdict.
    truth : str or None
        The song's known class (``"prog"``/``"nonprog"``) when evaluating, else ``None``.
    unfamiliar : bool or None
        Whether the song is unlike the music the model was trained on
        (:mod:`progrock.model.familiarity`); ``None`` when the model has no such check.
    familiarity : float or None
        The song's distance to the training music divided by the cut-off (above 1: unfamiliar).
    tags : dict or None
        What the pretrained tagger hears (tag -> song-mean probability), when asked for.
    explanation : list of dict or None
        For models that can say why: the inputs that pushed the verdict most,
        ``{"input", "value", "push"}`` (``push`` > 0 towards prog).
    """

    path: str = ""
    verdict: str = "nonprog"
    probability: float = 0.0
    vote_fraction: float | None = 0.0
    n_snippets: int = 0
    duration: float = 0.0
    snippet_starts: list[float] = field(default_factory=list)
    snippet_probs: list[float] = field(default_factory=list)
    snippet_seconds: float = SNIPPET_SECONDS
    threshold: float = 0.5
    rule: str = "vote"
    model: str = "cnn"
    truth: str | None = None
    unfamiliar: bool | None = None
    familiarity: float | None = None
    tags: dict[str, float] | None = None
    explanation: list[dict] | None = None

    @property
    def is_prog(self) -> bool:
        return self.verdict == "prog"

    @property
    def correct(self) -> bool | None:
        """Whether the verdict equals the truth (``None`` when the truth is unknown)."""
        return None if self.truth is None else self.truth == self.verdict

    def to_dict(self) -> dict:
        """Stable keys for JSON output (``correct`` added when the truth is known)."""
        d = asdict(self)
        if self.truth is not None:
            d["correct"] = self.correct
        return d


def _check(threshold: float, rule: str) -> None:
    if rule not in RULES:
        raise ConfigError(f"unknown verdict rule {rule!r}; known: {list(RULES)}")
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"threshold must be in [0, 1], got {threshold}")


def song_verdicts(probs: np.ndarray, song: np.ndarray, n_songs: int, *, threshold: float = 0.5,
                  rule: str = "vote") -> list[SongResult]:
    """Verdicts for many songs at once: the one implementation of both rules.

    Parameters
    ----------
    probs : np.ndarray [shape=(n_snippets,)]
        Snippet probabilities of prog.
    song : np.ndarray [shape=(n_snippets,), dtype=int]
        Song index of each snippet, in ``[0, n_songs)``.
    n_songs : int
    threshold : float
    rule : {"vote", "mean"}

    Returns
    -------
    list of SongResult
        One per song index, with ``verdict``, ``probability``, ``vote_fraction``,
        ``n_snippets``, ``threshold`` and ``rule`` filled in (the caller adds
        the song's name and evidence). A song without snippets raises.
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
    return [SongResult(verdict=CLASSES[int(g)], probability=float(m), vote_fraction=float(v), n_snippets=int(c),
                       threshold=float(threshold), rule=rule)
            for m, v, g, c in zip(mean, votes, prog, counts)]


def song_verdict(snippet_probs: np.ndarray, *, threshold: float = 0.5, rule: str = "vote") -> SongResult:
    """Verdict for one song from its snippets' probabilities ``[n_snippets]``."""
    p = np.asarray(snippet_probs, dtype=np.float64).ravel()
    if p.size == 0:
        raise ConfigError("a song needs at least one snippet for a verdict")
    return song_verdicts(p, np.zeros(p.size, dtype=np.int64), 1, threshold=threshold, rule=rule)[0]


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


def with_evidence(result: SongResult, *, path: str, starts: np.ndarray, probs: np.ndarray, frame_rate: float,
                  duration: float, snippet_seconds: float = SNIPPET_SECONDS, model: str = "cnn",
                  truth: str | None = None) -> SongResult:
    """A verdict from :func:`song_verdicts` completed with the song's name and evidence.

    ``starts`` in frames (converted to seconds at ``frame_rate``), ``probs`` per
    snippet; values are rounded for output (seconds to 0.01, probabilities to 1e-4).
    """
    result.path, result.model, result.truth = path, model, truth
    result.probability = round(result.probability, 4)
    result.vote_fraction = round(result.vote_fraction, 4)
    result.duration = round(float(duration), 2)
    result.snippet_starts = [round(float(s) / frame_rate, 2) for s in starts]
    result.snippet_probs = [round(float(q), 4) for q in probs]
    result.snippet_seconds = snippet_seconds
    return result
