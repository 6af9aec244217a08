"""Cut a song's feature matrix into fixed-length snippets.

The rule (documented in the README):

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
  whose powers overflow).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from progrock.constants import CLASSES, FRAME_RATE, SNIPPET_FRAMES
from progrock.errors import ConfigError, SnippetError


@dataclass(frozen=True)
class SnippetConfig:
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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SnippetConfig":
        return cls(**data)

    def placement(self, label: str | None) -> tuple[float, float]:
        """(start, hop) in seconds for a class name, or for unknown class (``None``)."""
        if label is None:
            return self.predict_start, self.predict_hop
        return self.start[label], self.hop[label]


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
    n_features, n_frames = features.shape
    if not np.all(np.isfinite(features)):
        bad = int(np.count_nonzero(~np.isfinite(features)))
        raise SnippetError(name, f"its features hold {bad} NaN or infinite value(s); "
                                 "nothing of it is given to the model")
    if n_frames < max(min_frames, 1):
        raise SnippetError(name, f"too short: {n_frames / FRAME_RATE:.2f} s of audio, "
                                 f"at least {min_frames / FRAME_RATE:.1f} s needed")
    if n_frames < length:
        reps = -(-length // n_frames)
        looped = np.tile(features, (1, reps))[:, :length]
        return looped[None].astype(np.float32, copy=True), np.zeros(1, dtype=np.int64)
    starts = snippet_starts(n_frames, length=length, start=start, hop=hop)
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
    start_s, hop_s = config.placement(label)
    fr = config.frame_rate
    return cut_snippets(features, length=config.length, start=int(round(start_s * fr)),
                        hop=max(1, int(round(hop_s * fr))),
                        min_frames=int(np.ceil(config.min_seconds * fr)), name=name)


@dataclass
class SnippetSet:
    """Snippets of many songs, with the song each came from.

    Attributes
    ----------
    x : np.ndarray [shape=(n_snippets, n_features, length), dtype=float32]
    song : np.ndarray [shape=(n_snippets,), dtype=int64]
        Index into ``songs`` of each snippet's song.
    start : np.ndarray [shape=(n_snippets,), dtype=int64]
        First frame of each snippet within its song.
    songs : list of str
        Song identifiers (manifest paths).
    song_labels : np.ndarray [shape=(n_songs,), dtype=int64]
        Class index per song (``CLASSES``: nonprog 0, prog 1), -1 if unknown.
    """

    x: np.ndarray
    song: np.ndarray
    start: np.ndarray
    songs: list[str]
    song_labels: np.ndarray

    @property
    def y(self) -> np.ndarray:
        """Class index per snippet [shape=(n_snippets,)]."""
        return self.song_labels[self.song]

    def __len__(self) -> int:
        return len(self.x)

    @classmethod
    def from_songs(cls, items: list[tuple[str, np.ndarray, str | None]], config: SnippetConfig,
                   *, by_class: bool = True,
                   skipped: list[tuple[str, str]] | None = None) -> "SnippetSet":
        """Build from ``(song_id, features [n_features, n_frames], label or None)`` items.

        With ``by_class`` the per-class start/hop apply (training); without, the
        class-free ``predict_start`` / ``predict_hop`` (evaluation, prediction).
        A song too short for a snippet raises :class:`SnippetError`, or, when a
        ``skipped`` list is given, is left out and listed there with the reason.
        """
        xs, songs_idx, starts, names, labels = [], [], [], [], []
        for song_id, feats, label in items:
            try:
                snips, st = song_snippets(feats, config, label if by_class else None, name=song_id)
            except SnippetError as exc:
                if skipped is None:
                    raise
                skipped.append((song_id, exc.reason))
                continue
            i = len(names)
            xs.append(snips)
            songs_idx.append(np.full(len(snips), i, dtype=np.int64))
            starts.append(st)
            names.append(song_id)
            labels.append(CLASSES.index(label) if label in CLASSES else -1)
        n_features = items[0][1].shape[0] if items else 0
        return cls(
            x=np.concatenate(xs) if xs else np.zeros((0, n_features, config.length), np.float32),
            song=np.concatenate(songs_idx) if songs_idx else np.zeros(0, np.int64),
            start=np.concatenate(starts) if starts else np.zeros(0, np.int64),
            songs=names,
            song_labels=np.asarray(labels, dtype=np.int64),
        )
