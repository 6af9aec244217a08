"""Per-frame features: ``(y, sr) -> ndarray [n_features, n_frames]``, their files layer and their cache.

* :mod:`.sets` — the registry: every feature set declared once (:data:`FEATURE_SETS`),
  :class:`FeatureConfig`, and the array layer :func:`compute_features`;
* :mod:`.spectral` — the STFT sets (seed43, logmel) computed block by block, equal to librosa;
* :mod:`.reference` — the same sets by librosa's plain calls, for tests and benchmarks;
* :mod:`.files` — the file and files layers: decode once, every set asked for, through the cache;
* :mod:`.cache` — the feature cache.

Importing this package imports no signal-processing library.
"""

from progrock.features.sets import FEATURE_SETS, FeatureConfig, compute_features, feature_set

__all__ = ["FEATURE_SETS", "FeatureConfig", "compute_features", "feature_set"]
