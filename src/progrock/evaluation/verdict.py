"""From snippet probabilities to a song's verdict, and the one record of a song's result.

Three rules, in :data:`RULES`:

``"vote"`` (the seed's)
    the song is prog iff at least half of its snippets have ``p >= threshold``
    (a tie counts as prog);
``"mean"``
    the song is prog iff its mean snippet probability is ``>= threshold``;
``"top"`` (the default recipe's CNN)
    the song is prog iff the mean probability of its strongest passages, the
    :data:`TOP_SHARE` of its snippets with the highest probabilities (at least
    one), is ``>= threshold``. A prog song is prog in its odd-metre sections,
    solos and interludes, and often sounds like any rock song in between; a
    vote or a mean over the whole song dilutes that evidence with the plain
    passages, the strongest passages keep it. The share is a fraction of the
    song, not a count, so a long song does not get more chances than a short one.

The song's ``vote_fraction`` is the fraction of snippets at or above the
threshold; its ``probability`` is the mean snippet probability, or for the top
rule the strongest passages' mean (the number its threshold is compared with).
The rules are coded once, in :func:`song_scores` and :func:`song_verdicts`.

:func:`song_scores` gives, per song, the one number that decides the rule's
verdict at every threshold at once: for the vote the ``ceil(n/2)``-th largest
snippet probability (a song is prog by vote at threshold ``t`` exactly when it
is ``>= t``), for the others the mean and the strongest passages' mean. So every
rule's threshold can be tuned like any score threshold
(:func:`progrock.evaluation.metrics.choose_threshold`).

:class:`SongResult` is what every command says of a song: ``predict`` (its
JSON lines and CSV rows), ``evaluate`` (its per-song table) and the web API.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from progrock.constants import CLASSES, SNIPPET_SECONDS
from progrock.errors import ConfigError

RULES = ("vote", "mean", "top")

TOP_SHARE = 0.2
"""The share of a song's snippets, the most prog-like, whose mean decides the ``"top"`` rule."""


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


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ConfigError(f"unknown verdict rule {rule!r}; known: {list(RULES)}")


def _check(threshold: float, rule: str) -> None:
    _check_rule(rule)
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
    rule : {"vote", "mean", "top"}

    Returns
    -------
    list of SongResult
        One per song index, with ``verdict``, ``probability``, ``vote_fraction``,
        ``n_snippets``, ``threshold`` and ``rule`` filled in (the caller adds
        the song's name and evidence). A song without snippets raises.
    """
    _check(threshold, rule)
    p, s = _validate(probs, song, n_songs)
    counts = _counts(s, n_songs)
    votes = np.bincount(s, weights=(p >= threshold).astype(np.float64), minlength=n_songs) / counts
    score = _scores(p, s, counts, rule)
    shown = score if rule in ("mean", "top") else _scores(p, s, counts, "mean")
    return [SongResult(verdict=CLASSES[int(g)], probability=float(m), vote_fraction=float(v), n_snippets=int(c),
                       threshold=float(threshold), rule=rule)
            for m, v, g, c in zip(shown, votes, score >= threshold, counts)]


def describe_rule(rule: str, threshold: float) -> str:
    """The rule at its threshold in words, e.g. for the web page's model card."""
    _check(threshold, rule)
    if rule == "vote":
        return (f"a song is prog when at least half of its snippets have p(prog) ≥ {threshold:.2f} "
                f"(a tie counts as prog)")
    if rule == "top":
        return (f"a song is prog when its strongest passages, the {TOP_SHARE * 100:.0f} % of its snippets with the "
                f"highest p(prog), average ≥ {threshold:.2f}")
    return f"a song is prog when its probability of prog is ≥ {threshold:.2f}"


def _counts(s: np.ndarray, n_songs: int) -> np.ndarray:
    counts = np.bincount(s, minlength=n_songs)
    if (counts == 0).any():
        empty = np.flatnonzero(counts == 0)[:5].tolist()
        raise ConfigError(f"songs without snippets, e.g. indices {empty}")
    return counts


def song_verdict(snippet_probs: np.ndarray, *, threshold: float = 0.5, rule: str = "vote") -> SongResult:
    """Verdict for one song from its snippets' probabilities ``[n_snippets]``."""
    p = np.asarray(snippet_probs, dtype=np.float64).ravel()
    if p.size == 0:
        raise ConfigError("a song needs at least one snippet for a verdict")
    return song_verdicts(p, np.zeros(p.size, dtype=np.int64), 1, threshold=threshold, rule=rule)[0]


def song_scores(probs: np.ndarray, song: np.ndarray, n_songs: int, *, rule: str) -> np.ndarray:
    """Per song, the score a rule compares with its threshold [shape=(n_songs,), float64].

    ``song_scores(...) >= t`` is the rule's verdict at threshold ``t``, for
    every ``t``: for ``"vote"`` the ``ceil(n/2)``-th largest snippet
    probability (at least half of the snippets are ``>= t``, ties to prog),
    for ``"mean"`` the mean, for ``"top"`` the mean of the ``ceil(TOP_SHARE * n)``
    largest.

    Parameters
    ----------
    probs : np.ndarray [shape=(n_snippets,)]
    song : np.ndarray [shape=(n_snippets,), dtype=int]
        Song index of each snippet, in ``[0, n_songs)``; every song needs a snippet.
    n_songs : int
    rule : {"vote", "mean", "top"}
    """
    _check_rule(rule)
    p, s = _validate(probs, song, n_songs)
    return _scores(p, s, _counts(s, n_songs), rule)


def _scores(p: np.ndarray, s: np.ndarray, counts: np.ndarray, rule: str) -> np.ndarray:
    """:func:`song_scores` of validated snippets ``p``, ``s`` with ``counts`` snippets per song."""
    if rule == "mean":
        return np.bincount(s, weights=p, minlength=len(counts)) / counts
    order = np.lexsort((-p, s))                      # by song, then probability descending
    ranked = p[order]
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if rule == "vote":
        return ranked[first + (counts + 1) // 2 - 1]  # the ceil(n / 2)-th largest
    k = np.maximum(1, np.ceil(TOP_SHARE * counts - 1e-9).astype(np.int64))
    running = np.concatenate([[0.0], np.cumsum(ranked)])
    return (running[first + k] - running[first]) / k


def song_vote_scores(probs: np.ndarray, song: np.ndarray, n_songs: int) -> np.ndarray:
    """Per song, the ``ceil(n/2)``-th largest snippet probability ``[n_songs]``: :func:`song_scores` of the vote."""
    return song_scores(probs, song, n_songs, rule="vote")


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
