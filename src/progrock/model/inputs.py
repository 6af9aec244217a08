"""What each song-level model reads: one vector per song, made from the song's features.

Every song-level model of a run names its input here (:data:`INPUTS`); the
same function makes the input when the model is trained and when it judges a
song, so the two cannot drift apart.

``song_statistics``
    means, spreads and frame-to-frame changes of the seed43 features
    (:func:`progrock.features.summary.song_statistics`);
``structure``
    the song's structure descriptors (:mod:`progrock.features.structure`)
    and the mean of the CNN's snippet probabilities (what the structure
    model of a run reads). The training songs' probabilities come from one
    out-of-fold network each, a judged song's from the ensemble's average:
    averaging leaves the mean where it is but narrows the spread, the
    quantiles and the runs of :func:`snippet_profile`, so the mean is the
    entry that means the same on both sides;
``structure_profile``
    the descriptors and the whole profile of the CNN's snippet probabilities
    along the song (:func:`snippet_profile`), for comparison.

A model may read only some entries of its input: it records their names
(:class:`progrock.model.run.ModelEntry` ``columns``, :func:`columns_of`), so
an input can gain entries without changing what a saved model reads.

The CNN reads a matrix per song, frame by frame (:data:`CNN_INPUTS`, :func:`cnn_matrix`): the
``seed43`` rows, and in the default recipe the song's structure evidence along it and its length
beneath them (:func:`progrock.features.structure.structure_rows`).

The musicnn models read their feature set's rows directly (tags, embeddings per patch).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    from progrock.features.structure import SongStructure

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


SONGS_REMEMBERED: int = 256
"""Analyses :func:`song_structure` keeps, by the content of the song's matrix (5 kB for a 3-minute
song, about 90 kB for an hour: at most some 20 MB)."""

_analyses: OrderedDict[bytes, "SongStructure"] = OrderedDict()
_analyses_lock = threading.Lock()


def song_structure(seed43: np.ndarray, *, frame_rate: float) -> "SongStructure":
    """:func:`~progrock.features.structure.analyse_song` of one song, analysed once for every model.

    The CNN's structure rows (:func:`cnn_matrix`) and the structure model's
    descriptors (:func:`structure_input`) of a song come from one analysis:
    the last :data:`SONGS_REMEMBERED` are kept, keyed by a hash of the
    matrix's bytes, its shape and the frame rate, so an equal matrix finds
    its analysis and a changed one never does.
    """
    from progrock.features.structure import analyse_song

    x = np.ascontiguousarray(seed43)
    key = hashlib.blake2b(x, digest_size=20).digest() + repr((x.shape, x.dtype.str, float(frame_rate))).encode()
    with _analyses_lock:
        if key in _analyses:
            _analyses.move_to_end(key)
            return _analyses[key]
    s = analyse_song(x, frame_rate=frame_rate)
    with _analyses_lock:
        _analyses[key] = s
        while len(_analyses) > SONGS_REMEMBERED:
            _analyses.popitem(last=False)
    return s


def forget_analyses() -> None:
    """Drop every analysis :func:`song_structure` keeps (a benchmark times them afresh)."""
    with _analyses_lock:
        _analyses.clear()


def structure_profile_input(seed43: np.ndarray, *, frame_rate: float, snippet_probs: np.ndarray,
                            snippet_starts: np.ndarray, duration: float, **_) -> np.ndarray:
    """The ``structure_profile`` input of one song: descriptors, then the CNN's snippet profile."""
    from progrock.features.structure import descriptors

    return np.concatenate([descriptors(song_structure(seed43, frame_rate=frame_rate)),
                           snippet_profile(snippet_probs, snippet_starts, duration)])


def structure_input(seed43: np.ndarray, *, frame_rate: float, snippet_probs: np.ndarray, **_) -> np.ndarray:
    """The ``structure`` input of one song: descriptors, then the mean snippet probability
    (0 without snippets, as :func:`snippet_profile`)."""
    from progrock.features.structure import descriptors

    p = np.asarray(snippet_probs, dtype=np.float64)
    return np.concatenate([descriptors(song_structure(seed43, frame_rate=frame_rate)), [p.mean() if p.size else 0.0]])


def input_names(name: str) -> list[str]:
    """Names of the entries of input ``name``, for explanations."""
    if name in ("structure", "structure_profile"):
        from progrock.features.structure import DESCRIPTOR_NAMES

        return list(DESCRIPTOR_NAMES) + list(PROFILE_NAMES if name == "structure_profile" else PROFILE_NAMES[:1])
    from progrock.features.sets import FeatureConfig
    from progrock.features.summary import statistics_names

    return statistics_names(FeatureConfig.named("seed43").feature_names)


ADDED_ENTRIES: frozenset[str] = frozenset({"repetition"})
"""Entries added to an input after runs were first saved. A model saved before models recorded the
entries they read was fitted on its whole input as it was then: without these."""


def columns_of(name: str, columns: Sequence[str] = ()) -> list[str]:
    """The entries of input ``name`` a model reads, in order.

    Parameters
    ----------
    name : str
        A key of :data:`INPUTS`.
    columns : sequence of str
        The entries the model recorded; empty for a model saved before
        models recorded them (then: the whole input without :data:`ADDED_ENTRIES`).

    Returns
    -------
    list of str

    Raises
    ------
    ModelError
        A recorded entry this version does not compute.
    """
    from progrock.errors import ModelError

    names = input_names(name)
    cols = list(columns) if len(columns) else [n for n in names if n not in ADDED_ENTRIES]
    if unknown := [c for c in cols if c not in names]:
        raise ModelError(f"the model reads {unknown} of its input {name!r}, which this version does not compute")
    return cols


def select_columns(X: np.ndarray, name: str, columns: Sequence[str]) -> np.ndarray:
    """The columns ``columns`` (names from :func:`columns_of`) of the rows ``X [n, len(input_names(name))]``."""
    names = input_names(name)
    return np.asarray(X)[:, [names.index(c) for c in columns]]


CNN_INPUTS: tuple[str, ...] = ("seed43", "seed43+structure", "seed43+structure+duration")
"""What a run's CNN can read, per frame: the course's 43 features; those and then the rows of
:data:`progrock.features.structure.STRUCTURE_ROWS`; or those and the song's length
(:data:`progrock.features.structure.SONG_ROWS`) too. A run saved without the name read ``seed43``."""


def cnn_added_row_names(name: str) -> tuple[str, ...]:
    """The rows (:func:`progrock.features.structure.structure_rows` names) the CNN input ``name``, a
    member of :data:`CNN_INPUTS`, adds below the feature set's."""
    from progrock.errors import ModelError
    from progrock.features.structure import SONG_ROWS, STRUCTURE_ROWS

    if name not in CNN_INPUTS:
        raise ModelError(f"the CNN reads {name!r}, which this version does not compute (it knows {list(CNN_INPUTS)})")
    return {"seed43": (), "seed43+structure": STRUCTURE_ROWS,
            "seed43+structure+duration": STRUCTURE_ROWS + SONG_ROWS}[name]


def cnn_added_rows(name: str) -> int:
    """How many rows the CNN input ``name`` adds below the feature set's (:func:`cnn_added_row_names`)."""
    return len(cnn_added_row_names(name))


def cnn_rows(feature_config, name: str) -> int:
    """Rows of the CNN input ``name`` cut from a song's matrix of ``feature_config``'s set: its rows
    and those the input adds below them."""
    return feature_config.n_features + cnn_added_rows(name)


def cnn_rows_said(feature_config, name: str) -> str:
    """How many rows the CNN input ``name`` of a feature set has, for messages."""
    said = f"{feature_config.describe()} gives {feature_config.n_features}"
    return said if not cnn_added_rows(name) else f"{said} and {name!r} adds {cnn_added_rows(name)}"


def cnn_matrix(seed43: np.ndarray, name: str, *, frame_rate: float) -> np.ndarray:
    """The CNN input ``name`` of one song.

    Parameters
    ----------
    seed43 : np.ndarray [shape=(43, n_frames)]
        The song's ``seed43`` matrix, finite.
    name : str
        A member of :data:`CNN_INPUTS`.
    frame_rate : float

    Returns
    -------
    np.ndarray [shape=(43 + cnn_added_rows(name), n_frames), dtype=float32]
        ``seed43`` itself for ``"seed43"``; below it, for the others, the rows
        :func:`cnn_added_row_names` of :func:`~progrock.features.structure.structure_rows`, from
        one analysis of the whole song (:func:`song_structure`, the one the structure model's
        descriptors come from).
    """
    names = cnn_added_row_names(name)
    if not names:
        return seed43
    from progrock.features.structure import structure_rows

    s = song_structure(seed43, frame_rate=frame_rate)
    return np.vstack([np.asarray(seed43, dtype=np.float32),
                      structure_rows(s, n_frames=seed43.shape[1], frame_rate=frame_rate, names=names)])


INPUTS: dict[str, Callable[..., np.ndarray]] = {
    "song_statistics": statistics_input,
    "structure": structure_input,
    "structure_profile": structure_profile_input,
}
"""Song-level inputs by name."""
