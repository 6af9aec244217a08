"""Saved models: round trip, and refusal of damaged or mismatched files."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import progrock
from progrock.constants import CLASSES
from progrock.data.snippets import SnippetConfig
from progrock.errors import ConfigError, ModelError
from progrock.features import FeatureConfig
from progrock.model.checkpoint import FORMAT_VERSION, load_model, save_model, sha256_file
from progrock.model.network import ModelConfig, SeedCNN, predict_proba


def _save(tmp_path, config=ModelConfig(), features=FeatureConfig(), **kw):
    torch.manual_seed(3)
    model = SeedCNN(config)
    model.normalisation.initialise(np.linspace(-5, 5, config.n_features),
                                   np.linspace(0.5, 4, config.n_features))
    path = save_model(tmp_path, model, model_config=config, feature_config=features,
                      snippet_config=SnippetConfig(), threshold=kw.pop("threshold", 0.42),
                      training={"config": {"epochs": 1}}, metrics={"accuracy": 0.9}, **kw)
    return model, path


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((9, 43, 431)).astype(np.float32) * 3


def test_round_trip_identical_predictions(tmp_path, x):
    model, path = _save(tmp_path)
    assert path == tmp_path / "model.json"
    assert (tmp_path / "model.safetensors").is_file()
    loaded = load_model(tmp_path)
    assert not loaded.model.training
    np.testing.assert_array_equal(loaded.predict_proba(x), predict_proba(model, x))
    assert loaded.threshold == 0.42
    assert loaded.class_names == CLASSES
    assert loaded.feature_config == FeatureConfig()
    assert loaded.snippet_config == SnippetConfig()
    assert loaded.model_config == ModelConfig()
    assert loaded.metadata["metrics"] == {"accuracy": 0.9}
    assert loaded.metadata["progrock_version"] == progrock.__version__
    assert loaded.metadata["format_version"] == FORMAT_VERSION
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v), k


def test_load_by_json_or_safetensors_path(tmp_path):
    _save(tmp_path)
    a = load_model(tmp_path / "model.json")
    b = load_model(tmp_path / "model.safetensors")
    assert torch.equal(a.model.head.weight, b.model.head.weight)


def test_nonstandard_config_round_trips(tmp_path):
    config = ModelConfig(n_features=96, block_channels=4, n_blocks=3, trainable_normalisation=False)
    features = FeatureConfig(name="logmel", n_mels=96, n_mfcc=0, n_chroma=0)
    _save(tmp_path, config, features, name="logmel")
    loaded = load_model(tmp_path / "logmel.json", expect_features=features)
    assert loaded.model_config == config
    assert not loaded.model.normalisation.mean.requires_grad


def test_save_refuses_features_the_model_cannot_take(tmp_path):
    with pytest.raises(ConfigError, match="96"):
        _save(tmp_path, ModelConfig(), FeatureConfig(name="logmel", n_mels=96, n_mfcc=0, n_chroma=0))


def test_a_network_reading_the_song_structure_says_so_and_is_checked(tmp_path):
    """A member checkpoint records what the network reads; one that does not fit its rows is refused."""
    from progrock.features.structure import STRUCTURE_ROWS

    config = ModelConfig(n_features=43 + len(STRUCTURE_ROWS))
    with pytest.raises(ConfigError, match="adds 4"):
        _save(tmp_path / "a", ModelConfig(), cnn_input="seed43+structure")
    _save(tmp_path / "b", config, cnn_input="seed43+structure")
    loaded = load_model(tmp_path / "b")
    assert loaded.cnn_input == "seed43+structure" and loaded.model_config == config
    assert not (tmp_path / "a").exists()                  # refused before anything was written
    meta = json.loads((tmp_path / "b" / "model.json").read_text())
    del meta["cnn_input"]                                  # as saved before: seed43, 43 rows
    (tmp_path / "b" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="takes 47 rows but reads 'seed43'"):
        load_model(tmp_path / "b")


def test_missing_files(tmp_path):
    with pytest.raises(ModelError, match="missing"):
        load_model(tmp_path)
    _save(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="model.safetensors.*missing"):
        load_model(tmp_path)


def test_tampered_weight_byte(tmp_path):
    _save(tmp_path)
    f = tmp_path / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[-7] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        load_model(tmp_path)


def test_truncated_weights(tmp_path):
    _save(tmp_path)
    f = tmp_path / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(ModelError, match="model.safetensors"):
        load_model(tmp_path)


def test_edited_hash_in_json(tmp_path):
    _save(tmp_path)
    j = tmp_path / "model.json"
    meta = json.loads(j.read_text())
    meta["weights"]["sha256"] = "0" * 64
    j.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="does not match"):
        load_model(tmp_path)


def test_truncated_or_garbled_json(tmp_path):
    _save(tmp_path)
    j = tmp_path / "model.json"
    text = j.read_text()
    j.write_text(text[: len(text) // 2])
    with pytest.raises(ModelError, match="model.json.*JSON"):
        load_model(tmp_path)
    j.write_text("[1, 2, 3]")
    with pytest.raises(ModelError, match="JSON object"):
        load_model(tmp_path)


def test_unknown_format_version(tmp_path):
    _save(tmp_path)
    j = tmp_path / "model.json"
    meta = json.loads(j.read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    j.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="format version"):
        load_model(tmp_path)


def test_wrong_shapes_are_refused(tmp_path):
    # weights of a 4-channel model described as the standard 8-channel one (hash still valid)
    _save(tmp_path, ModelConfig(block_channels=4))
    j = tmp_path / "model.json"
    meta = json.loads(j.read_text())
    meta["model_config"]["block_channels"] = 8
    j.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="shape"):
        load_model(tmp_path)


def test_missing_and_unexpected_tensors_are_refused(tmp_path):
    _save(tmp_path)
    f, j = tmp_path / "model.safetensors", tmp_path / "model.json"
    state = load_file(str(f))
    state["extra.weight"] = torch.zeros(3)
    del state["head.bias"]
    save_file(state, str(f))
    meta = json.loads(j.read_text())
    meta["weights"]["sha256"] = sha256_file(f)               # a consistent, but wrong, pair
    j.write_text(json.dumps(meta))
    with pytest.raises(ModelError) as info:
        load_model(tmp_path)
    assert "head.bias" in str(info.value) and "extra.weight" in str(info.value)


def test_mismatched_features_name_the_fields(tmp_path):
    _save(tmp_path)
    logmel = FeatureConfig(name="logmel", n_mels=96, n_mfcc=0, n_chroma=0)
    with pytest.raises(ConfigError) as info:
        load_model(tmp_path, expect_features=logmel)
    msg = str(info.value)
    assert "name: model has 'seed43', expected 'logmel'" in msg
    assert "n_mels: model has 10, expected 96" in msg
    assert "n_fft" not in msg and "hop_length" not in msg      # equal fields are not listed
    load_model(tmp_path, expect_features=FeatureConfig())      # the right features load


def test_threshold_must_be_a_probability(tmp_path):
    with pytest.raises(ConfigError):
        _save(tmp_path, threshold=1.5)
