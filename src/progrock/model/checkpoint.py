"""Self-describing saved models: ``<name>.safetensors`` + ``<name>.json``, no pickle.

The JSON file describes everything needed to use the weights::

    {
      "format": "progrock-model", "format_version": 1,
      "progrock_version": "0.1.0",
      "class_names": ["nonprog", "prog"],
      "model_config": {...},            # progrock.model.network.ModelConfig
      "feature_config": {...},          # progrock.features.FeatureConfig
      "snippet_config": {...},          # progrock.data.snippets.SnippetConfig
      "threshold": 0.5,                 # snippet threshold for the song vote
      "training": {...}, "metrics": {...} | null,
      "weights": {"file": "model.safetensors", "sha256": "...", "bytes": 12345}
    }

Both files are first written in full to temporary files in the same folder,
then renamed over the old pair (``os.replace``), the weights first and the JSON
last, so a JSON file never points at weights that are not there yet, and a
failed write (a full disk) leaves the previous pair untouched. Loading reads JSON and
``safetensors`` only: it never executes code from the files. A file that is
missing, truncated, tampered with (hash mismatch) or does not fit the model
raises :class:`~progrock.errors.ModelError`; weights made for other features
than the caller expects raise :class:`~progrock.errors.ConfigError`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import progrock
from progrock.atomic import atomic_write_bytes, json_text, write_temporary
from progrock.constants import CLASSES
from progrock.data.snippets import SnippetConfig, SnippetSet
from progrock.errors import ConfigError, ModelError
from progrock.features.sets import FeatureConfig
from progrock.model.inputs import cnn_rows, cnn_rows_said
from progrock.model.network import ModelConfig, SeedCNN, predict_proba

FORMAT_NAME = "progrock-model"
FORMAT_VERSION = 1
"""Bumped when the layout of the saved files changes; unknown versions are refused."""

_REQUIRED_KEYS = ("format", "format_version", "class_names", "model_config", "feature_config",
                  "snippet_config", "threshold", "weights")


# ---------------------------------------------------------------------------------------------
# safetensors and JSON I/O, shared with the training loop's resumable state


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                        metadata: dict[str, str] | None = None) -> None:
    """``safetensors.torch`` save of ``tensors`` (made contiguous, on CPU), atomically."""
    from safetensors.torch import save

    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    atomic_write_bytes(path, save(clean, metadata=metadata))


def read_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a safetensors file, turning any failure into :class:`ModelError`."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: weights file is missing")
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own (Rust) error types
        raise ModelError(f"{path}: not a readable safetensors file ({exc})") from exc


def read_json(path: str | os.PathLike) -> dict:
    """Load a JSON object, turning any failure into :class:`ModelError`."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model description (JSON) is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: truncated or garbled JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A model read by :func:`load_model`, in evaluation mode, with its description."""

    model: SeedCNN
    model_config: ModelConfig
    feature_config: FeatureConfig
    snippet_config: SnippetConfig
    threshold: float
    class_names: tuple[str, ...]
    metadata: dict = field(repr=False)
    path: Path | None = None
    cnn_input: str = "seed43"

    def predict_proba(self, x: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
        """Probability of prog per snippet, ``x [N, F, T] -> [N]`` (the forward itself, for small arrays)."""
        return predict_proba(self.model, x, batch_size=batch_size)

    def snippet_probabilities(self, snippets: SnippetSet) -> np.ndarray:
        """Probability of prog of every snippet of a :class:`SnippetSet` ``[n_snippets]`` (float32),
        on the model's backend, read in place from the songs' frames."""
        from progrock.model.backends import backend_for

        logits = backend_for(self.model).logits(self.model, snippets.frames.x, snippets.offsets)
        return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)


def save_model(out_dir: str | os.PathLike, model: SeedCNN, *, model_config: ModelConfig,
               feature_config: FeatureConfig, snippet_config: SnippetConfig, threshold: float,
               training: dict, metrics: dict | None = None, name: str = "model",
               cnn_input: str = "seed43") -> Path:
    """Save weights and description to ``out_dir/<name>.safetensors`` + ``.json``.

    Parameters
    ----------
    model : SeedCNN
        Its ``state_dict`` is saved (normalisation included).
    model_config, feature_config, snippet_config
        The configurations the model was trained with.
    threshold : float
        The snippet probability threshold of the song vote (in (0, 1)).
    training : dict
        Training configuration and a summary of its log (JSON-able).
    metrics : dict, optional
        Evaluation results to keep with the model.
    cnn_input : str
        What the network reads (:data:`progrock.model.inputs.CNN_INPUTS`): the
        feature set's rows, and any it adds below them.

    Returns
    -------
    Path
        The JSON file (what :func:`load_model` takes).
    """
    if not (0.0 < float(threshold) < 1.0):
        raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
    if model_config.n_features != cnn_rows(feature_config, cnn_input):
        raise ConfigError(f"model expects {model_config.n_features} features but the feature "
                          f"configuration {cnn_rows_said(feature_config, cnn_input)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_path = out_dir / f"{name}.safetensors"
    json_path = out_dir / f"{name}.json"

    from safetensors.torch import save

    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    weights = save(clean, metadata={"format": FORMAT_NAME})
    description = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "progrock_version": progrock.__version__,
        "class_names": list(CLASSES),
        "model_config": model_config.to_dict(),
        "feature_config": feature_config.to_dict(),
        "snippet_config": snippet_config.to_dict(),
        "cnn_input": cnn_input,
        "threshold": float(threshold),
        "training": training,
        "metrics": metrics,
        "weights": {"file": weights_path.name, "sha256": hashlib.sha256(weights).hexdigest(),
                    "bytes": len(weights)},
    }
    text = json_text(description).encode()
    # Both files are written in full before either replaces the old pair: a full disk (or any
    # write error) leaves the previous model as it was, never new weights beside an old JSON.
    tmp_weights = write_temporary(weights_path, weights)
    try:
        tmp_json = write_temporary(json_path, text)
    except BaseException:
        Path(tmp_weights).unlink(missing_ok=True)
        raise
    os.replace(tmp_weights, weights_path)
    os.replace(tmp_json, json_path)
    return json_path


def _resolve(path: Path) -> Path:
    """The JSON description for a folder, a ``.json`` or a ``.safetensors`` path."""
    if path.is_dir():
        return path / "model.json"
    if path.suffix == ".safetensors":
        return path.with_suffix(".json")
    return path


def describe_path_error(path: Path) -> Path:
    """The ``model.json`` a run argument names, or a :class:`ModelError` saying what it is instead.

    A missing path: "no such run folder"; an audio file (arguments swapped):
    said so; a folder without ``model.json``: not a run folder.
    """
    from progrock.constants import AUDIO_EXTENSIONS

    if not os.path.lexists(path):
        raise ModelError(f"{path}: no such run folder (give the folder `progrock train --out` wrote, "
                         f"or `musicnn` for the built-in tagger)")
    if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS:
        raise ModelError(f"{path} is an audio file, not a run folder (did you swap the arguments? "
                         f"the run comes first: progrock predict RUN SONGS...)")
    json_path = _resolve(path)
    if path.is_dir() and not json_path.is_file():
        raise ModelError(f"{path}: not a run folder (it holds no model.json)")
    return json_path


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Put ``state`` into ``model``, refusing tensors that do not fit it or are not finite (``path`` names them)."""
    expected = model.state_dict()
    problems = []
    if missing := sorted(set(expected) - set(state)):
        problems.append(f"missing tensors {missing}")
    if unexpected := sorted(set(state) - set(expected)):
        problems.append(f"unexpected tensors {unexpected}")
    for k in sorted(set(expected) & set(state)):
        if tuple(state[k].shape) != tuple(expected[k].shape):
            problems.append(f"{k} has shape {tuple(state[k].shape)}, expected {tuple(expected[k].shape)}")
        elif state[k].dtype != expected[k].dtype:
            problems.append(f"{k} has dtype {state[k].dtype}, expected {expected[k].dtype}")
    if problems:
        raise ModelError(f"{path}: weights do not fit the described model: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)
    if not all(torch.isfinite(t).all() for t in state.values()):
        raise ModelError(f"{path}: weights contain NaN or infinity")


def verified_file(json_path: Path, name: str, expected_sha256: str) -> Path:
    """The file ``name`` beside ``json_path``, checked against the SHA-256 the description records.

    Raises
    ------
    ModelError
        The name leaves the folder, the file is missing, or its hash differs
        (truncated, tampered with or from another model); the message names the file.
    """
    if Path(name).name != name or name in ("", ".", ".."):
        raise ModelError(f"{json_path}: model file {name!r} must sit next to the JSON")
    path = json_path.parent / name
    if not path.is_file():
        raise ModelError(f"{path}: weights file is missing")
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise ModelError(f"{path}: SHA-256 {actual[:12]}... does not match {str(expected_sha256)[:12]}... "
                         f"recorded in {json_path.name} (truncated, tampered with or from another model)")
    return path


def feature_differences(saved: FeatureConfig, expected: FeatureConfig) -> list[str]:
    """``"field: saved X, expected Y"`` for each differing field (empty if equal)."""
    a, b = saved.to_dict(), expected.to_dict()
    return [f"{k}: model has {a.get(k)!r}, expected {b.get(k)!r}"
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def load_model(path: str | os.PathLike, *, expect_features: FeatureConfig | None = None,
               device: str = "cpu") -> LoadedModel:
    """Load a model saved by :func:`save_model`.

    Parameters
    ----------
    path : path-like
        The model's folder (``model.json`` in it), its ``.json`` or its ``.safetensors``.
    expect_features : FeatureConfig, optional
        The features the caller will feed; a model trained on others is refused
        with :class:`~progrock.errors.ConfigError` naming the differing fields.

    Raises
    ------
    ModelError
        Missing files, garbled JSON, unknown format version, weights whose hash
        does not match the description, missing/unexpected tensors or wrong shapes.
    ConfigError
        ``expect_features`` differs from the saved feature configuration.
    """
    json_path = describe_path_error(Path(path))
    meta = read_json(json_path)
    missing = [k for k in _REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelError(f"{json_path}: not a progrock model description (missing {missing})")
    if meta["format"] != FORMAT_NAME:
        raise ModelError(f"{json_path}: format {meta['format']!r} is not {FORMAT_NAME!r}")
    if meta["format_version"] != FORMAT_VERSION:
        raise ModelError(f"{json_path}: unknown format version {meta['format_version']!r} "
                         f"(this progrock reads version {FORMAT_VERSION})")
    try:
        model_config = ModelConfig.from_dict(meta["model_config"])
        feature_config = FeatureConfig.from_dict(meta["feature_config"])
        snippet_config = SnippetConfig.from_dict(meta["snippet_config"])
        snippet_config.check_frame_rate(feature_config)
        threshold = float(meta["threshold"])
        class_names = tuple(meta["class_names"])
        weights = meta["weights"]
        weights_name, expected_hash = str(weights["file"]), str(weights["sha256"])
        cnn_input = str(meta.get("cnn_input", "seed43"))       # models saved before it was recorded: seed43
        rows = cnn_rows(feature_config, cnn_input)
    except (ConfigError, ModelError, TypeError, ValueError, KeyError) as exc:
        raise ModelError(f"{json_path}: invalid model description ({exc})") from exc
    if model_config.n_features != rows:
        raise ModelError(f"{json_path}: the network takes {model_config.n_features} rows but reads {cnn_input!r} "
                         f"of {feature_config.describe()}, {rows} rows")
    if class_names != tuple(CLASSES):
        raise ModelError(f"{json_path}: class names {list(class_names)} are not {list(CLASSES)}")
    if not 0.0 < threshold < 1.0:
        raise ModelError(f"{json_path}: threshold {threshold} is not in (0, 1)")
    if expect_features is not None and feature_config != expect_features:
        diffs = feature_differences(feature_config, expect_features)
        raise ConfigError(f"{json_path}: model was trained on other features - " + "; ".join(diffs))
    weights_path = verified_file(json_path, weights_name, expected_hash)
    model = SeedCNN(model_config)
    load_weights(model, read_tensors(weights_path), weights_path)
    model.to(device).eval()
    return LoadedModel(model=model, model_config=model_config, feature_config=feature_config,
                       snippet_config=snippet_config, threshold=threshold, class_names=class_names,
                       metadata=meta, path=json_path, cnn_input=cnn_input)
