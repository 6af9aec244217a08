"""From a manifest to feature matrices and snippet sets, through the cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from progrock.data.manifest import Manifest, Song
from progrock.data.snippets import SnippetConfig, SnippetSet, SongFrames
from progrock.features.cache import FeatureStore
from progrock.features.files import FeatureResult, features_from_files
from progrock.parallel.engines import Engine


@dataclass
class SongFeatures:
    """Feature matrices of a manifest's usable songs, and the songs that failed.

    Attributes
    ----------
    songs : list of Song
    features : dict
        Per feature-set name, one matrix ``[n_features, n_frames]`` per song of ``songs``.
    failed : list of (Song, reason)
    """

    songs: list[Song]
    features: dict[str, list[np.ndarray]]
    failed: list[tuple[Song, str]] = field(default_factory=list)

    def items(self, split: str, name: str = "seed43") -> list[tuple[str, np.ndarray, str | None]]:
        """``(song path, features, label or None)`` of one set, for :class:`SongFrames`."""
        return [(s.path, x, s.label or None) for s, x in zip(self.songs, self.features[name])
                if s.split == split]

    def subset(self, keep: Sequence[bool]) -> "SongFeatures":
        """The songs where ``keep`` is true (the failures stay)."""
        idx = [i for i, k in enumerate(keep) if k]
        return SongFeatures([self.songs[i] for i in idx],
                            {k: [v[i] for i in idx] for k, v in self.features.items()}, list(self.failed))


def load_features(manifest: Manifest, stores: FeatureStore | Sequence[FeatureStore], *,
                  songs: list[Song] | None = None, jobs: int = 1, engine: Engine | None = None,
                  progress: Callable[[FeatureResult], None] | None = None) -> SongFeatures:
    """Features of the manifest's usable songs, one or more feature sets, computing only what the cache lacks.

    Parameters
    ----------
    manifest : Manifest
    stores : FeatureStore or sequence of FeatureStore
        The feature sets, each with its cache entries.
    songs : list of Song, optional
        A subset (default: every usable song).
    jobs : int
        Worker processes for the songs not cached yet (or ``engine``).
    progress : callable, optional
        Called with each :class:`FeatureResult`.

    Returns
    -------
    SongFeatures
        Songs whose file cannot be decoded are in ``failed`` with the reason.
    """
    stores = [stores] if isinstance(stores, FeatureStore) else list(stores)
    songs = manifest.usable() if songs is None else songs

    def compute(indices: list[int]) -> list[FeatureResult]:
        return features_from_files([manifest.resolve(songs[i]) for i in indices], stores,
                                   known_hashes=[songs[i].audio_sha256 for i in indices], jobs=jobs,
                                   engine=engine, progress=progress)

    def read(res: FeatureResult) -> list[np.ndarray] | None:
        got = [st.get(res.audio_sha256) for st in stores]
        return None if any(x is None for x in got) else got

    results = compute(list(range(len(songs))))
    matrices = {i: read(res) for i, res in enumerate(results) if res.status != "failed"}
    # An entry that was there but is refused on reading (damaged, non-finite) has just been
    # removed by ``get``: compute those songs once more instead of giving up on them.
    again = [i for i, x in matrices.items() if x is None]
    if again:
        for i, res in zip(again, compute(again)):
            results[i] = res
            matrices[i] = read(res) if res.status != "failed" else None
    out = SongFeatures(songs=[], features={st.config.name: [] for st in stores})
    for i, (song, res) in enumerate(zip(songs, results)):
        if res.status == "failed":
            out.failed.append((song, res.error))
        elif matrices[i] is None:  # removed again by someone else: report, do not guess
            out.failed.append((song, "feature cache entry vanished twice; run again"))
        else:
            out.songs.append(song)
            for st, x in zip(stores, matrices[i]):
                out.features[st.config.name].append(x)
    return out


def song_frames(data: SongFeatures, config: SnippetConfig, split: str, *, name: str = "seed43",
                skipped: list[tuple[str, str]] | None = None, view=None) -> SongFrames:
    """The songs of one set end to end (:class:`SongFrames`, ``view`` as there); songs too short are
    listed in ``skipped``."""
    return SongFrames.from_songs(data.items(split, name), config,
                                 skipped=skipped if skipped is not None else [], view=view)


def snippet_sets(data: SongFeatures, config: SnippetConfig, *, sets: list[str] | None = None,
                 skipped: list[tuple[str, str]] | None = None, training: bool = True,
                 name: str = "seed43", view=None) -> dict[str, SnippetSet]:
    """One :class:`SnippetSet` per set name.

    With ``training``, ``train`` uses the per-class placement (the seed's
    over-sampling of prog); every other set, and every set without
    ``training``, the class-free placement used at prediction time, so
    validation and evaluation measure what a user will see.

    Songs too short for a snippet are left out and listed in ``skipped``.
    ``view`` maps a song's matrix to what the network reads
    (:meth:`SongFrames.from_songs`).
    """
    names = sets or sorted({s.split for s in data.songs})
    result = {}
    for set_name in names:
        frames = song_frames(data, config, set_name, name=name, skipped=skipped, view=view)
        if len(frames.songs):
            result[set_name] = SnippetSet.place(frames, config, by_class=training and set_name == "train")
    return result
