"""The feature cache: one ``.npy`` per (decoded audio, feature configuration).

Layout::

    CACHE/<config key>/config.json        the configuration, for people
    CACHE/<config key>/<h[:2]>/<h>.npy     float32 [n_features, n_frames]

The key is the hash of the decoded samples (:func:`progrock.audio.audio_hash`)
and the hash of every feature parameter (:meth:`FeatureConfig.key`): renaming or
re-tagging a file is a hit; changing any parameter is a miss, never a wrong hit.
Entries are written to a temporary file in the same folder and renamed into
place, so a reader sees a whole entry or none; an unreadable entry counts as a
miss and is removed.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from progrock.atomic import atomic_write_bytes
from progrock.errors import ProgrockError
from progrock.features.config import FeatureConfig
from progrock.parallel.engines import Engine, LocalEngine

DEFAULT_CACHE = Path(".progrock-cache")


class FeatureStore:
    """Cached feature matrices of one configuration.

    Parameters
    ----------
    root : path
        The cache folder (shared by all configurations).
    config : FeatureConfig
    """

    def __init__(self, root: str | os.PathLike, config: FeatureConfig):
        self.root = Path(root)
        self.config = config
        self.folder = self.root / config.key()

    def path(self, audio_sha256: str) -> Path:
        """Where the entry for a decoded-audio hash lives."""
        return self.folder / audio_sha256[:2] / f"{audio_sha256}.npy"

    def __contains__(self, audio_sha256: str) -> bool:
        return bool(audio_sha256) and self.path(audio_sha256).is_file()

    def get(self, audio_sha256: str) -> np.ndarray | None:
        """The cached matrix [n_features, n_frames], or ``None`` (a miss).

        A truncated or otherwise unreadable entry is removed and is a miss.
        """
        if not audio_sha256:
            return None
        p = self.path(audio_sha256)
        try:
            x = np.load(p, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (ValueError, OSError, EOFError):
            p.unlink(missing_ok=True)
            return None
        if (x.ndim != 2 or x.shape[0] != self.config.n_features or x.dtype != np.float32
                or not np.all(np.isfinite(x))):
            p.unlink(missing_ok=True)
            return None
        return x

    def put(self, audio_sha256: str, features: np.ndarray) -> Path:
        """Store a matrix atomically (temporary file, fsync, rename)."""
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[0] != self.config.n_features:
            raise ProgrockError(f"feature matrix has shape {features.shape}, expected "
                                f"({self.config.n_features}, n_frames)")
        if not np.all(np.isfinite(features)):
            raise ProgrockError("feature matrix holds NaN or infinite values; not cached")
        p = self.path(audio_sha256)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProgrockError(f"{p.parent}: cannot create the feature cache folder "
                                f"({exc.strerror or exc})") from exc
        self._write_config()
        buf = io.BytesIO()
        np.save(buf, features.astype(np.float32, copy=False), allow_pickle=False)
        atomic_write_bytes(p, buf.getbuffer())
        return p

    def _write_config(self) -> None:
        cfg = self.folder / "config.json"
        if not cfg.exists():
            atomic_write_bytes(cfg, json.dumps(self.config.to_dict(), indent=2).encode())


@dataclass
class FeatureResult:
    """What extracting one file gave: ``status`` is cached, computed or failed."""

    path: str
    status: str
    audio_sha256: str = ""
    n_frames: int = 0
    error: str = ""


def extract_file(path: str | os.PathLike, config: FeatureConfig) -> tuple[np.ndarray, str]:
    """Decode a file and compute its features (no cache), block by block in bounded memory.

    Returns
    -------
    features : np.ndarray [shape=(config.n_features, n_frames), dtype=float32]
        Equal to ``compute_features(decode(path).y, config)``.
    audio_sha256 : str
        Equal to ``decode(path).sha256``.
    """
    from progrock.features.streaming import extract_streamed

    return extract_streamed(path, config)


def cached_features(path: str | os.PathLike, store: FeatureStore, *, known_hash: str = "",
                    need: bool = True) -> tuple[np.ndarray | None, str, str]:
    """Features of one file through the cache, checked before anything is computed.

    A known hash already cached is not even decoded; otherwise the file is
    decoded once (giving its hash), and the features are finished and stored
    only if the cache lacks them. Two workers on one song both compute it and
    the second atomic rename wins with the same bytes: never a broken entry.

    Returns
    -------
    features : np.ndarray [shape=(n_features, n_frames), dtype=float32] or None
        ``None`` only when cached and ``need`` is false.
    audio_sha256 : str
    status : str
        ``"cached"`` or ``"computed"``.

    Raises
    ------
    ProgrockError
        The file cannot be decoded, or the features cannot be stored.
    """
    from progrock.features.streaming import stream_features

    def hit(h: str) -> tuple[bool, np.ndarray | None]:
        """Whether ``h`` is cached (and readable, when its features are needed), and them."""
        if h not in store:
            return False, None
        x = store.get(h) if need else None
        return x is not None or not need, x

    if known_hash:
        found, x = hit(known_hash)
        if found:
            return x, known_hash, "cached"
    sink, info = stream_features(path, store.config)  # decoded in blocks; features not finished
    h = info.sha256
    found, x = hit(h)
    if found:
        sink.close()
        return x, h, "cached"
    x = sink.finish()
    store.put(h, x)
    return x, h, "computed"


def _job(args: tuple[str, str, str, dict]) -> FeatureResult:
    """One file into the cache (in a worker; the same function for every engine).

    Per-file errors are returned as a failed result, never raised: an engine
    must not retry a broken file.
    """
    path, known_hash, root, cfg = args
    store = FeatureStore(root, FeatureConfig.from_dict(cfg))
    try:
        x, h, status = cached_features(path, store, known_hash=known_hash, need=False)
        return FeatureResult(path, status, h, 0 if x is None else x.shape[1])
    except ProgrockError as exc:
        return FeatureResult(path, "failed", error=getattr(exc, "reason", str(exc)))
    except Exception as exc:  # noqa: BLE001 - one file must not stop a batch
        return FeatureResult(path, "failed", error=f"unexpected {type(exc).__name__}: {exc}")


def extract_many(paths: Sequence[str | os.PathLike], store: FeatureStore, *,
                 known_hashes: Sequence[str] | None = None, jobs: int = 1,
                 progress: Callable[[FeatureResult], None] | None = None,
                 engine: Engine | None = None) -> list[FeatureResult]:
    """Features of many files into ``store``, in ``jobs`` processes or on ``engine``.

    Files whose decoded-audio hash is known (from a manifest) and already cached
    are not even decoded. Every entry is stored as soon as it is computed, so an
    interrupted run resumes where it stopped. A file that fails is reported with
    its reason and nothing is cached for it. On a cluster engine the store's
    folder must be one every worker sees (the same path on shared storage).

    Returns
    -------
    list of FeatureResult, in the order of ``paths``
    """
    hashes = list(known_hashes) if known_hashes is not None else [""] * len(paths)
    args = [(str(p), h, str(store.root), store.config.to_dict()) for p, h in zip(paths, hashes)]
    engine = engine or LocalEngine(jobs)
    results: list[FeatureResult | None] = [None] * len(args)
    for i, res in engine.map_unordered(_job, args, on_error=_failed):
        results[i] = res
        if progress:
            progress(res)
    return results


def _failed(args: tuple, reason: str) -> FeatureResult:
    return FeatureResult(args[0], "failed", error=reason)
