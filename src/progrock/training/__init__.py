"""Training: settings (:mod:`.config`), the loop (:mod:`.loop`) and its monitoring (:mod:`.monitor`)."""

from progrock.training.config import TrainConfig, positive_weight
from progrock.training.loop import TrainResult, feature_statistics, train_model

__all__ = ["TrainConfig", "TrainResult", "feature_statistics", "positive_weight", "train_model"]
