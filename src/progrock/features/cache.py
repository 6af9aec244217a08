"""The feature cache: one ``.npy`` per (decoded audio, feature configuration), and nothing else.

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
import os
from pathlib import Path

import numpy as np

from progrock.atomic import atomic_write_bytes, atomic_write_json
from progrock.errors import ProgrockError
from progrock.features.sets import FeatureConfig


class FeatureCache:
    """The cache folder: one :class:`FeatureStore` per feature configuration.

    Parameters
    ----------
    root : path
        The cache folder. An existing path that is not a folder is refused at once
        (:class:`ProgrockError`), before any song is decoded.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ProgrockError(f"{self.root}: the feature cache must be a folder, and this is a file")

    def store(self, config: FeatureConfig) -> "FeatureStore":
        """The entries of one configuration."""
        return FeatureStore(self.root, config)


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
            atomic_write_json(cfg, self.config.to_dict())
