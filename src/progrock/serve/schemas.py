"""The JSON the web API answers with, as pydantic models (they make the OpenAPI schema).

:class:`Prediction` is made from :class:`progrock.evaluation.verdict.SongResult`'s
fields, with the descriptions of :data:`PREDICTION_FIELDS`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, create_model


PREDICTION_FIELDS: dict[str, str] = {
    "path": "The uploaded file's name (last path component, control characters removed). Only for "
            "display: it plays no part in the verdict.",
    "verdict": 'The verdict: "prog" or "nonprog".',
    "probability": "The model's probability of prog for the song (mean over the snippets; with the top "
                   "rule the mean over its strongest passages).",
    "vote_fraction": "Share of snippets with p(prog) >= threshold; with the vote rule 0.5 or more makes "
                     "the song prog.",
    "n_snippets": "Number of snippets the song was cut into.",
    "duration": "Length of the decoded song in seconds.",
    "snippet_starts": "Start of each snippet in seconds (ascending).",
    "snippet_probs": "p(prog) of each snippet, in the order of snippet_starts.",
    "snippet_seconds": "Length of one snippet in seconds.",
    "threshold": "The model's threshold (on snippets for the vote rule, on the song's probability for the "
                 "mean and top rules).",
    "rule": '"vote", "mean" or "top" (the strongest passages): how snippet probabilities became the verdict.',
    "model": "Which of the run's models gave the verdict.",
    "truth": "The song's known class; null for an uploaded song.",
    "unfamiliar": "Whether the song is unlike the music the model was trained on (its distance to the "
                  "training songs beyond the cut-off); null when the model has no such check.",
    "familiarity": "The song's distance to the training music divided by the cut-off (above 1: unfamiliar).",
    "tags": "What the pretrained tagger (musicnn, MSD) hears: tag -> song-mean probability, when asked for "
            "with ?tags=true; else null.",
    "explanation": "For models that can say why (the structure model): the inputs that pushed the verdict "
                   "most, each {input, value, push}; push > 0 pushes towards prog.",
}
"""What each key of a :class:`~progrock.evaluation.verdict.SongResult` means, for the API's schema."""


def _prediction_model() -> type[BaseModel]:
    """The schema of :class:`~progrock.evaluation.verdict.SongResult` as the API returns it."""
    import dataclasses
    import typing

    from progrock.evaluation.verdict import SongResult

    hints = typing.get_type_hints(SongResult)
    fields = {f.name: (hints[f.name], Field(description=PREDICTION_FIELDS[f.name]))
              for f in dataclasses.fields(SongResult)}
    return create_model("Prediction", __doc__="The verdict on one uploaded song, with the evidence: "
                        "one probability per snippet.", **fields)


Prediction = _prediction_model()


class ErrorResponse(BaseModel):
    """Every error answer: one human-readable reason."""

    error: str = Field(description="Why the request was refused or failed.",
                       examples=["not a recognised audio file (Invalid data found when processing input)"])


class ModelInfo(BaseModel):
    """What the server's run is: its models, what they were trained on, how well they did (with intervals)."""

    summary: str = Field(description="One paragraph for people: what the default model listens to and how it decides.")
    progrock_version: str = Field(description="Version of the progrock serving the requests.")
    model_progrock_version: str | None = Field(description="Version of progrock that saved the run.")
    class_names: list[str] = Field(description="Class names; index 1 is the positive class (prog).")
    default_model: str = Field(description="The model that gives the verdict unless ?model= names another.")
    models: dict[str, dict[str, Any]] = Field(description="Every model of the run: title, kind, rule, threshold.")
    threshold: float = Field(description="The default model's threshold.")
    vote_rule: str = Field(description="How the default model's snippet probabilities become a song verdict.")
    feature_set: str = Field(description="Name of the per-frame feature set the default model reads.")
    feature_description: str = Field(description="That feature configuration in one line.")
    feature_config: dict[str, Any] = Field(description="That full feature configuration.")
    snippet_seconds: float = Field(description="Length of one of the default model's snippets in seconds.")
    snippet_config: dict[str, Any] = Field(description="Where the CNN's snippets are taken (seconds) and their "
                                                       "length (frames); prediction uses predict_start/predict_hop.")
    network: dict[str, Any] | None = Field(description="The CNN's configuration (progrock.model.ModelConfig), if any.")
    n_parameters: int = Field(description="Parameters of the default model's network (0 for classical models).")
    trained_on: dict[str, Any] = Field(description="What the run's models have heard: source, whether it is the "
                                                   "synthetic demo corpus, songs per class.")
    warning: str | None = Field(description="A warning a user must see before trusting a verdict (e.g. a run "
                                            "that has never heard real music).")
    training: dict[str, Any] = Field(description="Training summary (recipe, validation scores per model).")
    metrics: dict[str, Any] | None = Field(description="The default model's figures on the run's test songs with "
                                                       "95 % intervals and the number of songs, if evaluated.")
    max_upload_bytes: int = Field(description="Largest file POST /api/classify accepts, in bytes.")
    max_duration_seconds: float = Field(description="Longest song POST /api/classify accepts, in seconds "
                                                    "of decoded audio.")
    report_url: str | None = Field(description="Where the run's evaluation report is served, if it has one.")
