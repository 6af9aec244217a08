"""The seed's 1D-CNN (:mod:`.network`) and its self-describing saved form (:mod:`.checkpoint`)."""

from progrock.model.checkpoint import LoadedModel, load_model, save_model
from progrock.model.network import (
    FeatureNormalisation,
    ModelConfig,
    NoisyVoting,
    SeedCNN,
    count_parameters,
    noisy_spread,
    predict_logits,
    predict_proba,
)

__all__ = [
    "FeatureNormalisation", "LoadedModel", "ModelConfig", "NoisyVoting", "SeedCNN",
    "count_parameters", "load_model", "noisy_spread", "predict_logits", "predict_proba",
    "save_model",
]
