"""The JSON the web API answers with, as pydantic models (they make the OpenAPI schema).

:class:`Prediction` mirrors :meth:`progrock.predict.SongPrediction.to_dict`
key for key; a test checks that the two stay in step.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Prediction(BaseModel):
    """The verdict on one uploaded song, with the evidence: one probability per snippet."""

    path: str = Field(description="The uploaded file's name (last path component, control characters "
                                  "removed). Only for display: it plays no part in the verdict.",
                      examples=["Close to the Edge.flac"])
    label: str = Field(description='The verdict: "prog" or "nonprog".', examples=["prog"])
    probability: float = Field(ge=0, le=1, description="Mean probability of prog over the snippets.")
    vote_fraction: float = Field(ge=0, le=1, description="Share of snippets with p(prog) >= threshold; "
                                                         "0.5 or more makes the song prog.")
    n_snippets: int = Field(ge=1, description="Number of 10-second snippets the song was cut into.")
    duration: float = Field(ge=0, description="Length of the decoded song in seconds.")
    snippet_starts: list[float] = Field(description="Start of each snippet in seconds (ascending).")
    snippet_probs: list[float] = Field(description="p(prog) of each snippet, in the order of snippet_starts.")
    threshold: float = Field(gt=0, lt=1, description="The model's snippet threshold for the vote.")

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "path": "song.mp3", "label": "prog", "probability": 0.71, "vote_fraction": 0.75, "n_snippets": 4,
        "duration": 34.5, "snippet_starts": [10.0, 15.0, 20.0, 24.5],
        "snippet_probs": [0.42, 0.81, 0.77, 0.84], "threshold": 0.5}]})


class ErrorResponse(BaseModel):
    """Every error answer: one human-readable reason."""

    error: str = Field(description="Why the request was refused or failed.",
                       examples=["not a recognised audio file (Invalid data found when processing input)"])


class ModelInfo(BaseModel):
    """What the server's model is and how it was trained (from the model's own description)."""

    summary: str = Field(description="One paragraph for people: what the model listens to and how it decides.")
    progrock_version: str = Field(description="Version of the progrock serving the requests.")
    model_progrock_version: str | None = Field(description="Version of progrock that saved the model.")
    class_names: list[str] = Field(description="Class names; index 1 is the positive class (prog).")
    threshold: float = Field(description="Snippet probability threshold of the song vote.")
    vote_rule: str = Field(description="How snippet probabilities become a song verdict.")
    feature_set: str = Field(description="Name of the per-frame feature set.")
    feature_description: str = Field(description="The feature configuration in one line.")
    feature_config: dict[str, Any] = Field(description="The full feature configuration.")
    snippet_seconds: float = Field(description="Length of one snippet in seconds.")
    snippet_config: dict[str, Any] = Field(description="Where snippets are taken (seconds) and their length "
                                                       "(frames); prediction uses predict_start/predict_hop.")
    network: dict[str, Any] = Field(description="The network's configuration (progrock.model.ModelConfig).")
    n_parameters: int = Field(description="Trainable and fixed parameters of the network.")
    training: dict[str, Any] = Field(description="Training configuration and summary of its log "
                                                 "(best epoch, its metrics, sizes of the sets).")
    metrics: dict[str, Any] | None = Field(description="Metrics stored with the model (validation, at the "
                                                       "chosen threshold), if any.")
    max_upload_bytes: int = Field(description="Largest file POST /api/classify accepts, in bytes.")
    max_duration_seconds: float = Field(description="Longest song POST /api/classify accepts, in seconds "
                                                    "of decoded audio.")
    report_url: str | None = Field(description="Where the run's evaluation report is served, if it has one.")
