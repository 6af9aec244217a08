"""Per-frame features: ``(y, sr) -> ndarray [n_features, n_frames]``, and their cache."""

from progrock.features.config import FeatureConfig
from progrock.features.sets import FEATURE_SETS, _init_defaults, compute_features

_init_defaults()

__all__ = ["FEATURE_SETS", "FeatureConfig", "compute_features"]
