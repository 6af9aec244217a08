"""From a manifest to feature matrices and snippet sets, through the cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from progrock.data.manifest import Manifest, Song
from progrock.data.snippets import SnippetConfig, SnippetSet
from progrock.features.store import FeatureResult, FeatureStore, extract_many


@dataclass
class SongFeatures:
    """Feature matrices of a manifest's usable songs, and the songs that failed."""

    songs: list[Song]
    features: list[np.ndarray]
    failed: list[tuple[Song, str]] = field(default_factory=list)

    def items(self, split: str) -> list[tuple[str, np.ndarray, str | None]]:
        """``(song path, features, label or None)`` of one set, for :class:`SnippetSet`."""
        return [(s.path, x, s.label or None) for s, x in zip(self.songs, self.features)
                if s.split == split]


def load_features(manifest: Manifest, store: FeatureStore, *, songs: list[Song] | None = None,
                  jobs: int = 1, progress: Callable[[FeatureResult], None] | None = None
                  ) -> SongFeatures:
    """Features of the manifest's usable songs, computing only what the cache lacks.

    Parameters
    ----------
    manifest : Manifest
    store : FeatureStore
    songs : list of Song, optional
        A subset (default: every usable song).
    jobs : int
        Worker processes for the songs not cached yet.
    progress : callable, optional
        Called with each :class:`FeatureResult`.

    Returns
    -------
    SongFeatures
        Songs whose file cannot be decoded are in ``failed`` with the reason.
    """
    songs = manifest.usable() if songs is None else songs
    results = extract_many([manifest.resolve(s) for s in songs], store,
                           known_hashes=[s.audio_sha256 for s in songs], jobs=jobs,
                           progress=progress)
    matrices = {i: store.get(res.audio_sha256) for i, res in enumerate(results) if res.status != "failed"}
    # An entry that was there but is refused on reading (damaged, non-finite) has just been
    # removed by ``get``: compute those songs once more instead of giving up on them.
    again = [i for i, x in matrices.items() if x is None]
    if again:
        redo = extract_many([manifest.resolve(songs[i]) for i in again], store, jobs=jobs)
        for i, res in zip(again, redo):
            results[i] = res
            matrices[i] = store.get(res.audio_sha256) if res.status != "failed" else None
    out = SongFeatures(songs=[], features=[])
    for i, (song, res) in enumerate(zip(songs, results)):
        if res.status == "failed":
            out.failed.append((song, res.error))
        elif matrices[i] is None:  # removed again by someone else: report, do not guess
            out.failed.append((song, "feature cache entry vanished twice; run again"))
        else:
            out.songs.append(song)
            out.features.append(matrices[i])
    return out


def snippet_sets(data: SongFeatures, config: SnippetConfig, *, sets: list[str] | None = None,
                 skipped: list[tuple[str, str]] | None = None,
                 training: bool = True) -> dict[str, SnippetSet]:
    """One :class:`SnippetSet` per set name.

    With ``training``, ``train`` uses the per-class placement (the seed's
    over-sampling of prog); every other set, and every set without
    ``training``, the class-free placement used at prediction time, so
    validation and evaluation measure what a user will see.

    Songs too short for a snippet are left out and listed in ``skipped``.
    """
    names = sets or sorted({s.split for s in data.songs})
    result = {}
    for name in names:
        snips = SnippetSet.from_songs(data.items(name), config, by_class=training and name == "train",
                                      skipped=skipped if skipped is not None else [])
        if len(snips.songs):
            result[name] = snips
    return result
