"""Snippets: fixed-length windows of songs' feature matrices, placed by one rule.

A :class:`SongFrames` holds many songs' matrices end to end; a
:class:`SnippetSet` is a list of windows into it (song, first frame), never
copied out unless asked (:attr:`SnippetSet.x`): the network's backends read
the windows in place. The placement rule (documented in the README):

* snippets are ``length`` frames long (431 = 10 s), taken from ``start`` seconds
  in, every ``hop`` seconds; start and hop can differ per class (the seed used
  10 s / 8 s for prog and 10 s / 12 s for nonprog to over-sample prog);
* a song too short for one snippet at ``start`` gets one snippet at the latest
  start that fits (``n_frames - length``), i.e. the start offset gives way;
* a song shorter than one snippet but at least ``min_seconds`` long (default
  2 s) is padded to one snippet by repeating its frames from the beginning (a
  loop, so no silence or zeros enter the features);
* a song shorter than ``min_seconds`` raises :class:`~progrock.errors.SnippetError`;
* so does a feature matrix holding NaN or infinite values: every snippet the
  model, the training or the metrics see passes through here, so nothing
  non-finite reaches them, whatever produced it (a damaged cache entry, audio
  whose powers overflow);
* for training, the positions can be drawn afresh (:func:`random_starts`):
  the per-class hop then sets how many snippets a song gives, not where.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from progrock.config import Config
from progrock.constants import CLASSES, FRAME_RATE, SNIPPET_FRAMES
from progrock.errors import ConfigError, SnippetError


@dataclass(frozen=True)
class SnippetConfig(Config):
    """Where snippets are taken, in seconds, per class.

    Parameters
    ----------
    length : int
        Frames per snippet (431 = 10 s at 22,050 Hz, hop 512).
    start : dict
        Seconds skipped at the start of a song, per class name.
    hop : dict
        Seconds between snippet starts, per class name.
    predict_start, predict_hop : float
        Start and hop for songs whose class is unknown (prediction, evaluation
        of the model's verdict).
    min_seconds : float
        Shorter songs are rejected; between this and one snippet, looped.
    frame_rate : float
        Frames per second of the feature matrices.
    """

    length: int = SNIPPET_FRAMES
    start: dict = field(default_factory=lambda: {"prog": 10.0, "nonprog": 10.0})
    hop: dict = field(default_factory=lambda: {"prog": 8.0, "nonprog": 12.0})
    predict_start: float = 10.0
    predict_hop: float = 5.0
    min_seconds: float = 2.0
    frame_rate: float = FRAME_RATE

    def __post_init__(self) -> None:
        for name in ("start", "hop"):
            table = getattr(self, name)
            if set(table) != set(CLASSES):
                raise ConfigError(f"snippet {name} must name each class {CLASSES}, got {sorted(table)}")
        if min(self.hop.values()) <= 0 or self.predict_hop <= 0:
            raise ConfigError("snippet hop must be positive")

    def placement(self, label: str | None) -> tuple[float, float]:
        """(start, hop) in seconds for a class name, or for unknown class (``None``)."""
        if label is None:
            return self.predict_start, self.predict_hop
        return self.start[label], self.hop[label]

    def frames(self, label: str | None) -> tuple[int, int]:
        """(start, hop) in frames for a class name, or for unknown class (``None``)."""
        start_s, hop_s = self.placement(label)
        return int(round(start_s * self.frame_rate)), max(1, int(round(hop_s * self.frame_rate)))

    def check_frame_rate(self, feature_config) -> None:
        """Refuse a feature configuration whose frames come at another rate than this placement assumes."""
        if abs(feature_config.frame_rate - self.frame_rate) > 1e-9 * self.frame_rate:
            raise ConfigError(f"snippets are placed at {self.frame_rate:.4f} frames/s, but the features "
                              f"{feature_config.describe()} come at {feature_config.frame_rate:.4f}")

    @property
    def min_frames(self) -> int:
        """Frames of the shortest song accepted."""
        return int(np.ceil(self.min_seconds * self.frame_rate))


def snippet_starts(n_frames: int, *, length: int, start: int, hop: int) -> np.ndarray:
    """First frame of each snippet (see the module's rule).

    Returns
    -------
    np.ndarray [shape=(n_snippets,), dtype=int64]
        Empty only if ``n_frames < length`` (the caller pads).
    """
    if n_frames < length:
        return np.zeros(0, dtype=np.int64)
    last = n_frames - length
    starts = np.arange(min(start, last), last + 1, hop, dtype=np.int64)
    return starts


def usable_frames(features: np.ndarray, *, length: int, min_frames: int, name: str = "<array>",
                  frame_rate: float = FRAME_RATE) -> np.ndarray:
    """A song's matrix as snippets are cut from it: checked, and looped when shorter than a snippet.

    Parameters
    ----------
    features : np.ndarray [shape=(n_features, n_frames)]
    length, min_frames : int
        Frames of a snippet, and of the shortest song accepted.
    name : str
        The song's name for error messages.

    Returns
    -------
    np.ndarray [shape=(n_features, max(n_frames, length)), dtype=float32]
        ``features`` itself (as float32), or its frames repeated from the
        beginning up to ``length`` (a loop: no silence or zeros enter).

    Raises
    ------
    SnippetError
        The matrix holds NaN or infinity, or has fewer than ``min_frames`` frames.
    """
    features = np.asarray(features, dtype=np.float32)
    n_frames = features.shape[1]
    if not np.all(np.isfinite(features)):
        bad = int(np.count_nonzero(~np.isfinite(features)))
        raise SnippetError(name, f"its features hold {bad} NaN or infinite value(s); "
                                 "nothing of it is given to the model")
    if n_frames < max(min_frames, 1):
        raise SnippetError(name, f"too short: {n_frames / frame_rate:.2f} s of audio, "
                                 f"at least {min_frames / frame_rate:.1f} s needed")
    if n_frames < length:
        return np.tile(features, (1, -(-length // n_frames)))[:, :length]
    return features


def random_starts(n_frames: int, *, length: int, start: int, hop: int,
                  rng: np.random.Generator) -> np.ndarray:
    """As many first frames as :func:`snippet_starts` gives, drawn uniformly where a snippet fits.

    The window runs from ``start`` (or the latest start that fits, as for the
    fixed placement) to ``n_frames - length``; the starts come back sorted.

    Returns
    -------
    np.ndarray [shape=(n_snippets,), dtype=int64]
    """
    count = len(snippet_starts(n_frames, length=length, start=start, hop=hop))
    last = n_frames - length
    return np.sort(rng.integers(min(start, last), last + 1, size=count)).astype(np.int64)


def cut_snippets(features: np.ndarray, *, length: int = SNIPPET_FRAMES, start: int = 0,
                 hop: int = SNIPPET_FRAMES, min_frames: int = 1,
                 name: str = "<array>") -> tuple[np.ndarray, np.ndarray]:
    """Cut a feature matrix into snippets.

    Parameters
    ----------
    features : np.ndarray [shape=(n_features, n_frames)]
    length, start, hop : int
        In frames.
    min_frames : int
        Songs with fewer frames raise :class:`SnippetError`, as do features
        holding NaN or infinity.
    name : str
        The song's name for error messages.

    Returns
    -------
    snippets : np.ndarray [shape=(n_snippets, n_features, length), dtype=float32]
        Views are copied, so the result owns its memory.
    starts : np.ndarray [shape=(n_snippets,), dtype=int64]
        First frame of each snippet (0 for a looped short song).
    """
    features = usable_frames(features, length=length, min_frames=min_frames, name=name)
    starts = snippet_starts(features.shape[1], length=length, start=start, hop=hop)
    windows = np.lib.stride_tricks.sliding_window_view(features, length, axis=1)
    # windows: [n_features, n_frames - length + 1, length] -> [n, n_features, length]
    snippets = np.ascontiguousarray(windows[:, starts, :].transpose(1, 0, 2), dtype=np.float32)
    return snippets, starts


def song_snippets(features: np.ndarray, config: SnippetConfig, label: str | None = None, *,
                  name: str = "<array>") -> tuple[np.ndarray, np.ndarray]:
    """Snippets of one song placed by ``config`` for its class (``None``: unknown).

    Returns
    -------
    snippets : np.ndarray [shape=(n_snippets, n_features, config.length), dtype=float32]
    starts : np.ndarray [shape=(n_snippets,), dtype=int64]
    """
    start, hop = config.frames(label)
    return cut_snippets(features, length=config.length, start=start, hop=hop,
                        min_frames=config.min_frames, name=name)




@dataclass
class SongFrames:
    """Many songs' feature matrices end to end: what snippets are read from.

    Attributes
    ----------
    x : np.ndarray [shape=(n_features, n_total), dtype=float32]
        C-contiguous; song ``i`` is ``x[:, offsets[i]:offsets[i + 1]]``, as
        :func:`usable_frames` gives it (a song shorter than a snippet looped).
    offsets : np.ndarray [shape=(n_songs + 1,), dtype=int64]
    songs : list of str
        Song identifiers (manifest paths).
    labels : np.ndarray [shape=(n_songs,), dtype=int64]
        Class index per song (``CLASSES``: nonprog 0, prog 1), -1 if unknown.
    """

    x: np.ndarray
    offsets: np.ndarray
    songs: list[str]
    labels: np.ndarray

    @property
    def n_features(self) -> int:
        return self.x.shape[0]

    def n_frames(self, song: int) -> int:
        """Frames of song ``song``."""
        return int(self.offsets[song + 1] - self.offsets[song])

    def matrix(self, song: int) -> np.ndarray:
        """Song ``song``'s matrix ``[n_features, n_frames]`` (a view)."""
        return self.x[:, self.offsets[song]:self.offsets[song + 1]]

    @classmethod
    def from_songs(cls, items: list[tuple[str, np.ndarray, str | None]], config: "SnippetConfig", *,
                   skipped: list[tuple[str, str]] | None = None,
                   view: Callable[[np.ndarray], np.ndarray] | None = None) -> "SongFrames":
        """Build from ``(song_id, features [n_features, n_frames], label or None)`` items.

        A song that cannot give a snippet (too short, not finite) raises
        :class:`SnippetError`, or, when a ``skipped`` list is given, is left out
        and listed there with the reason. ``view`` maps a usable song's whole
        matrix to what the network reads (:func:`progrock.model.inputs.cnn_matrix`)
        before a short song is looped.
        """
        mats, names, labels = [], [], []
        for song_id, feats, label in items:
            try:
                x = usable_frames(feats, length=config.length, min_frames=config.min_frames, name=song_id,
                                  frame_rate=config.frame_rate)
                if view is not None:                 # the song is usable: what the network reads of it
                    x = usable_frames(view(feats), length=config.length, min_frames=config.min_frames,
                                      name=song_id, frame_rate=config.frame_rate)
                mats.append(x)
            except SnippetError as exc:
                if skipped is None:
                    raise
                skipped.append((song_id, exc.reason))
                continue
            names.append(song_id)
            labels.append(CLASSES.index(label) if label in CLASSES else -1)
        n_features = mats[0].shape[0] if mats else (items[0][1].shape[0] if items else 0)
        lengths = [m.shape[1] for m in mats]
        x = np.empty((n_features, sum(lengths)), dtype=np.float32)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        for m, a in zip(mats, offsets[:-1]):
            x[:, a:a + m.shape[1]] = m
        return cls(x=x, offsets=offsets, songs=names, labels=np.asarray(labels, dtype=np.int64))


@dataclass
class SnippetSet:
    """Snippets of many songs: windows of ``length`` frames into a :class:`SongFrames`.

    Attributes
    ----------
    frames : SongFrames
    song : np.ndarray [shape=(n_snippets,), dtype=int64]
        Index into ``frames.songs`` of each snippet's song.
    start : np.ndarray [shape=(n_snippets,), dtype=int64]
        First frame of each snippet within its song.
    length : int
        Frames per snippet.
    """

    frames: SongFrames
    song: np.ndarray
    start: np.ndarray
    length: int = SNIPPET_FRAMES

    @property
    def songs(self) -> list[str]:
        """Song identifiers."""
        return self.frames.songs

    @property
    def song_labels(self) -> np.ndarray:
        """Class index per song [shape=(n_songs,)], -1 if unknown."""
        return self.frames.labels

    @property
    def y(self) -> np.ndarray:
        """Class index per snippet [shape=(n_snippets,)]."""
        return self.frames.labels[self.song]

    @property
    def offsets(self) -> np.ndarray:
        """First frame of each snippet in ``frames.x`` [shape=(n_snippets,), dtype=int64]."""
        return self.frames.offsets[self.song] + self.start

    @property
    def x(self) -> np.ndarray:
        """The snippets copied out, ``[n_snippets, n_features, length]`` float32 (for small sets and tests)."""
        windows = np.lib.stride_tricks.sliding_window_view(self.frames.x, self.length, axis=1)
        return np.ascontiguousarray(windows[:, self.offsets, :].transpose(1, 0, 2))

    def __len__(self) -> int:
        return len(self.song)

    @classmethod
    def place(cls, frames: SongFrames, config: SnippetConfig, *, by_class: bool = True,
              rng: np.random.Generator | None = None) -> "SnippetSet":
        """Snippets of every song of ``frames``.

        With ``by_class`` each song's class sets start and hop (training), else
        the class-free ``predict_start`` / ``predict_hop`` (evaluation, prediction).
        With ``rng`` the positions are drawn (:func:`random_starts`) instead of
        spaced by the hop.
        """
        songs, starts = [], []
        for i, label in enumerate(frames.labels):
            start, hop = config.frames(CLASSES[label] if by_class and label >= 0 else None)
            n = frames.n_frames(i)
            st = (snippet_starts(n, length=config.length, start=start, hop=hop) if rng is None else
                  random_starts(n, length=config.length, start=start, hop=hop, rng=rng))
            starts.append(st)
            songs.append(np.full(len(st), i, dtype=np.int64))
        return cls(frames=frames, song=np.concatenate(songs) if songs else np.zeros(0, np.int64),
                   start=np.concatenate(starts) if starts else np.zeros(0, np.int64), length=config.length)

    @classmethod
    def from_songs(cls, items: list[tuple[str, np.ndarray, str | None]], config: SnippetConfig, *,
                   by_class: bool = True, skipped: list[tuple[str, str]] | None = None,
                   view: Callable[[np.ndarray], np.ndarray] | None = None) -> "SnippetSet":
        """:meth:`SongFrames.from_songs` then :meth:`place`."""
        return cls.place(SongFrames.from_songs(items, config, skipped=skipped, view=view), config, by_class=by_class)

    @classmethod
    def from_arrays(cls, x: np.ndarray, song: np.ndarray, songs: list[str], song_labels: np.ndarray
                    ) -> "SnippetSet":
        """Snippets given as an array ``x [n_snippets, n_features, length]``: each song's snippets,
        in order, become that song's frames (for synthetic data in tests and benchmarks)."""
        song = np.asarray(song, dtype=np.int64)
        order = np.argsort(song, kind="stable")
        n, n_features, length = x.shape
        counts = np.bincount(song, minlength=len(songs))
        offsets = np.concatenate([[0], np.cumsum(counts) * length]).astype(np.int64)
        flat = np.ascontiguousarray(x[order].transpose(1, 0, 2).reshape(n_features, n * length))
        frames = SongFrames(x=flat, offsets=offsets, songs=list(songs),
                            labels=np.asarray(song_labels, dtype=np.int64))
        rank = np.empty(n, dtype=np.int64)                      # position of each snippet within its song
        rank[order] = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
        return cls(frames=frames, song=song, start=rank * length, length=length)
