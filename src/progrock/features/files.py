"""Features of audio files: the file layer and the files layer over the feature registry.

A file is decoded once, block by block (:func:`progrock.audio.stream_decode`
at 22,050 Hz: the rate whose samples give the song's hash), and the blocks go
to the accumulator of every feature set asked for, through a streaming
resampler for a set that wants another rate. Memory stays about flat in the
song's length. The result equals :func:`~progrock.features.sets.compute_features`
on ``decode(path).y`` bit for bit for the 22,050-Hz sets.

With a :class:`~progrock.features.cache.FeatureCache`, a song whose hash is
known (from a manifest) and cached is not even decoded; otherwise the hash is
known after decoding, and only the sets the cache lacks are finished and
stored. Two workers on one song both compute it and the second atomic rename
wins with the same bytes: never a broken entry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from progrock.audio import StreamInfo, stream_decode
from progrock.constants import SR
from progrock.errors import DecodeError, ProgrockError
from progrock.features.cache import FeatureCache, FeatureStore
from progrock.features.sets import Accumulator, FeatureConfig
from progrock.parallel.engines import Engine, LocalEngine, file_outcome
from progrock.paths import printable


class _Branch:
    """One feature set's accumulator, behind a streaming resampler when its rate is not the decoder's."""

    def __init__(self, config: FeatureConfig):
        import soxr

        self.acc: Accumulator = config.feature_set.accumulator(config)
        self.resampler = (soxr.ResampleStream(SR, config.sr, 1, dtype="float32", quality="soxr_hq")
                          if config.sr != SR else None)

    def update(self, y: np.ndarray) -> None:
        if self.resampler is not None:
            y = self.resampler.resample_chunk(y)
        if y.size:
            self.acc.update(y)

    def finish(self) -> np.ndarray:
        if self.resampler is not None:
            tail = self.resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if tail.size:
                self.acc.update(tail)
        return self.acc.finish()

    def close(self) -> None:
        self.acc.close()


class FeatureSink:
    """Receives decoded blocks (``update``) for several feature sets at once.

    ``max_seconds``: decoding stops with a :class:`DecodeError` as soon as the
    song passes this length (its spooled frames are dropped at once).
    """

    def __init__(self, configs: Sequence[FeatureConfig], *, max_seconds: float | None = None):
        self.branches = [_Branch(c) for c in configs]
        self.max_samples = None if max_seconds is None else int(max_seconds * SR)
        self.max_seconds = max_seconds
        self.n_samples = 0

    def update(self, y: np.ndarray) -> None:
        self.n_samples += y.size
        if self.max_samples is not None and self.n_samples > self.max_samples:
            self.close()
            cap = f"{self.max_seconds / 60:g} minutes" if self.max_seconds % 60 == 0 else f"{self.max_seconds:g} s"
            raise DecodeError("<song>", f"longer than this server accepts ({cap} of audio)")
        for branch in self.branches:
            branch.update(y)

    def close(self) -> None:
        for branch in self.branches:
            branch.close()


def decode_into(path: str | os.PathLike, configs: Sequence[FeatureConfig], *,
                max_seconds: float | None = None) -> tuple[FeatureSink, StreamInfo]:
    """Decode a file into one accumulator per configuration; ``sink.branches[i].finish()`` gives set ``i``.

    Splitting decoding from finishing lets the caller look the audio hash up in
    a cache first and finish only what is missing (``close()`` drops the rest).

    Raises
    ------
    DecodeError
        As :func:`progrock.audio.decode`.
    """
    try:
        return stream_decode(path, lambda: FeatureSink(configs, max_seconds=max_seconds), sr=SR)
    except DecodeError as exc:
        if exc.path == "<song>":
            raise DecodeError(path, exc.reason) from None
        raise


def features_of_sets(path: str | os.PathLike, configs: Sequence[FeatureConfig], *,
                     cache: FeatureCache | None = None, known_hash: str = "", load: bool = True,
                     max_seconds: float | None = None) -> tuple[list[np.ndarray | None], str, str]:
    """Features of one file under several configurations at once, through the cache when one is given.

    Parameters
    ----------
    path : path-like
    configs : sequence of FeatureConfig
    cache : FeatureCache, optional
        Entries found are used; entries computed are stored.
    known_hash : str
        The song's decoded-audio hash if known (a manifest's): cached sets then need no decoding.
    load : bool
        With ``False``, entries already cached are not read (``None`` in their place).
    max_seconds : float, optional
        Refuse (:class:`DecodeError`) a song longer than this, while decoding.

    Returns
    -------
    features : list of np.ndarray [shape=(config.n_features, n_frames), dtype=float32]
        One per configuration, in order.
    audio_sha256 : str
    status : str
        ``"cached"`` when nothing had to be computed, else ``"computed"``.

    Raises
    ------
    ProgrockError
        The file cannot be decoded, or the features cannot be stored.
    """
    stores = [cache.store(c) for c in configs] if cache is not None else None

    def cached(h: str) -> list:
        """Per configuration: the cached matrix (``True`` when present and not loaded), else ``None``."""
        if stores is None or not h:
            return [None] * len(configs)
        return [(st.get(h) if load else (True if h in st else None)) for st in stores]

    found = cached(known_hash)
    if all(f is not None for f in found):
        return [None if f is True else f for f in found], known_hash, "cached"
    missing = [i for i, f in enumerate(found) if f is None]
    sink, info = decode_into(path, [configs[i] for i in missing], max_seconds=max_seconds)
    h = info.sha256
    if h != known_hash:
        found = cached(h)
    out: list[np.ndarray | None] = [None if f is True else f for f in found]
    status = "cached"
    try:
        for i, branch in zip(missing, sink.branches):
            if found[i] is not None:
                continue
            out[i] = branch.finish()
            status = "computed"
            if stores is not None:
                stores[i].put(h, out[i])
    finally:
        sink.close()
    return out, h, status


def features_from_file(path: str | os.PathLike, config: FeatureConfig, *,
                       cache: FeatureCache | None = None) -> tuple[np.ndarray, str]:
    """Features of one file under one configuration (the file layer), in bounded memory.

    Returns
    -------
    features : np.ndarray [shape=(config.n_features, n_frames), dtype=float32]
        Equal to ``compute_features(decode(path).y, config)`` for a 22,050-Hz set.
    audio_sha256 : str
        Equal to ``decode(path).sha256``.
    """
    (x,), h, _ = features_of_sets(path, [config], cache=cache)
    return x, h


@dataclass
class FeatureResult:
    """What computing one file's features gave: ``status`` is ``cached``, ``computed`` or ``failed``."""

    path: str
    status: str
    audio_sha256: str = ""
    error: str = ""


def _job(args: tuple[str, str, str, str, list[dict]]) -> FeatureResult:
    """One file into the cache (in a worker; the same function for every engine).

    ``args``: the name to report, the path to open, the known hash, the cache
    folder, the configurations. Per-file errors are returned as a failed
    result, never raised: an engine must not retry a broken file.
    """
    name, path, known_hash, root, configs = args
    done, reason = file_outcome(lambda: features_of_sets(
        path, [FeatureConfig.from_dict(c) for c in configs], cache=FeatureCache(root), known_hash=known_hash,
        load=False))
    if done is None:
        return FeatureResult(name, "failed", error=reason)
    return FeatureResult(name, done[2], done[1])


def features_from_files(paths: Sequence[str | os.PathLike], stores: FeatureStore | Sequence[FeatureStore], *,
                        known_hashes: Sequence[str] | None = None, engine: Engine | None = None, jobs: int = 1,
                        progress: Callable[[FeatureResult], None] | None = None) -> list[FeatureResult]:
    """Features of many files into the cache, one or more feature sets (``stores``), in ``jobs``
    processes or on ``engine``.

    Files whose decoded-audio hash is known and cached under every
    configuration are not even decoded. Every entry is stored as soon as it is
    computed, so an interrupted run resumes where it stopped. A file that fails
    is reported with its reason and nothing is cached for it. Workers open the
    files and the cache by absolute path (on a cluster, storage every worker
    sees at the same path); results carry the paths as given.

    Returns
    -------
    list of FeatureResult, in the order of ``paths``
    """
    stores = [stores] if isinstance(stores, FeatureStore) else list(stores)
    if len({str(st.root) for st in stores}) != 1:
        raise ProgrockError("the feature stores of one call must share a cache folder")
    hashes = list(known_hashes) if known_hashes is not None else [""] * len(paths)
    dicts = [st.config.to_dict() for st in stores]
    root = os.path.abspath(stores[0].root)
    args = [(printable(p), os.path.abspath(p), h, root, dicts) for p, h in zip(paths, hashes)]
    engine = engine or LocalEngine(jobs)
    results: list[FeatureResult | None] = [None] * len(args)
    for i, res in engine.map_unordered(_job, args, on_error=lambda item, reason: FeatureResult(
            item[0], "failed", error=reason)):
        results[i] = res
        if progress:
            progress(res)
    return results
