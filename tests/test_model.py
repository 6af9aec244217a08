"""The seed's network: shapes, weight counts, noisy voting, normalisation, init."""

import math

import numpy as np
import pytest
import torch

from progrock.errors import ConfigError
from progrock.model.network import (
    FeatureNormalisation,
    ModelConfig,
    NoisyVoting,
    SeedCNN,
    count_parameters,
    noisy_spread,
    output_steps,
    predict_logits,
    predict_proba,
)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return SeedCNN(ModelConfig())


def test_output_shape_is_one_logit_per_snippet(model):
    x = torch.randn(3, 43, 431)
    assert model(x).shape == (3,)
    assert model.scores(x).shape == (3, 6)          # 431 -> 215 -> 107 -> 53 -> 26 -> 13 -> 6
    assert output_steps(model.config) == 6


def test_weight_counts_match_the_seed(model):
    counts = count_parameters(model)
    assert counts == {"network": 3001, "normalisation": 86}
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 3001 + 86


def test_wrong_input_shape_raises(model):
    with pytest.raises(ConfigError, match="43"):
        model(torch.randn(2, 40, 431))


def test_noisy_voting_random_in_training_plain_mean_in_eval():
    voting = NoisyVoting()
    scores = torch.randn(4, 6)
    voting.train()
    a, b = voting(scores), voting(scores)
    assert not torch.allclose(a, b)
    voting.eval()
    c, d = voting(scores), voting(scores)
    assert torch.equal(c, d)
    assert torch.allclose(c, scores.mean(dim=1), atol=1e-6)
    # noisy=True brings the noise back in eval; the result stays a convex combination
    e = voting(scores, noisy=True)
    assert not torch.allclose(e, c)
    assert torch.all(e <= scores.max(dim=1).values + 1e-6)
    assert torch.all(e >= scores.min(dim=1).values - 1e-6)


def test_noisy_voting_weights_bounded():
    # with scores = one-hot at position j the output is that position's normalised weight
    voting = NoisyVoting().train()
    torch.manual_seed(1)
    w = voting(torch.eye(6).repeat(500, 1))             # [3000] normalised weights
    assert float(w.min()) >= 0.5 / (1.5 * 5 + 0.5) - 1e-6
    assert float(w.max()) <= 1.5 / (0.5 * 5 + 1.5) + 1e-6
    assert abs(float(w.mean()) - 1 / 6) < 0.005


def test_model_eval_deterministic_train_random(model):
    x = torch.randn(5, 43, 431)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    with torch.no_grad():
        assert not torch.allclose(model(x), model(x))


def test_normalisation_from_statistics_standardises():
    rng = np.random.default_rng(0)
    means = rng.uniform(-50, 50, 43)
    stds = rng.uniform(0.1, 30, 43)
    x = (rng.standard_normal((64, 43, 200)) * stds[None, :, None] + means[None, :, None]).astype(np.float32)
    norm = FeatureNormalisation(43)
    norm.initialise(x.mean(axis=(0, 2)), x.std(axis=(0, 2)))
    y = norm(torch.from_numpy(x)).detach().numpy()
    assert np.allclose(y.mean(axis=(0, 2)), 0.0, atol=1e-3)
    assert np.allclose(y.std(axis=(0, 2)), 1.0, atol=1e-3)
    assert np.allclose(norm.log_scale.detach().numpy(), -np.log(x.std(axis=(0, 2)) + 1e-6), atol=1e-5)


def test_normalisation_rejects_bad_statistics():
    norm = FeatureNormalisation(4)
    with pytest.raises(ConfigError):
        norm.initialise(np.zeros(3), np.ones(3))
    with pytest.raises(ConfigError):
        norm.initialise(np.zeros(4), np.array([1, 1, np.nan, 1]))


def test_frozen_normalisation_gets_no_gradient_but_is_saved():
    model = SeedCNN(ModelConfig(trainable_normalisation=False))
    assert not model.normalisation.mean.requires_grad
    model(torch.randn(2, 43, 431)).sum().backward()
    assert model.normalisation.mean.grad is None and model.normalisation.log_scale.grad is None
    assert model.stem.conv.weight.grad is not None
    assert {"normalisation.mean", "normalisation.log_scale"} <= set(model.state_dict())
    assert count_parameters(model) == {"network": 3001, "normalisation": 86}


def test_he_uniform_init_and_zero_bias(model):
    for name, conv in model.conv_layers().items():
        fan_in = conv.in_channels * conv.kernel_size[0]
        bound = math.sqrt(6.0 / fan_in)
        w = conv.weight.detach()
        assert float(w.abs().max()) <= bound, name
        assert torch.count_nonzero(conv.bias) == 0, name
    # the big layers fill their range: std of U(-b, b) is b / sqrt(3)
    w = model.stem.conv.weight.detach()
    assert abs(float(w.std()) - math.sqrt(6 / 43) / math.sqrt(3)) < 0.03


def test_predict_proba_matches_sigmoid_and_batches(model):
    x = np.random.default_rng(0).standard_normal((37, 43, 431)).astype(np.float32)
    model.train()
    p1 = predict_proba(model, x, batch_size=8)
    p2 = predict_proba(model, x, batch_size=1024)
    assert model.training                                  # mode restored
    assert p1.shape == (37,) and p1.dtype == np.float32
    np.testing.assert_allclose(p1, p2, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        ref = torch.sigmoid(model.eval()(torch.from_numpy(x))).numpy()
    np.testing.assert_allclose(p1, ref, rtol=1e-5, atol=1e-6)
    assert np.all((p1 > 0) & (p1 < 1))
    np.testing.assert_allclose(1 / (1 + np.exp(-predict_logits(model, x))), p1, rtol=1e-5)


def test_noisy_spread_varies_between_passes(model):
    x = np.random.default_rng(1).standard_normal((6, 43, 431)).astype(np.float32) * 5
    model.train()
    spread = noisy_spread(model, x, passes=7)
    assert spread.shape == (7, 6)
    assert spread.std(axis=0).max() > 0
    assert model.training                                  # mode restored


def test_model_config_round_trip_and_validation():
    c = ModelConfig(n_features=96, dropout=0.2, trainable_normalisation=False)
    assert ModelConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="unknown"):
        ModelConfig.from_dict({**c.to_dict(), "bogus": 1})
    with pytest.raises(ConfigError):
        ModelConfig(n_frames=32)                             # < 2**6 frames
    with pytest.raises(ConfigError):
        ModelConfig(dropout=1.0)


def test_folded_normalisation_equals_explicit_normalisation():
    torch.manual_seed(4)
    model = SeedCNN().eval()
    rng = np.random.default_rng(2)
    model.normalisation.initialise(rng.uniform(-20, 20, 43), rng.uniform(0.5, 10, 43))
    x = torch.from_numpy(rng.normal(3, 8, (4, 43, 431)).astype(np.float32))
    explicit = model.stem.conv(model.normalisation(x))
    np.testing.assert_allclose(torch.nn.functional.conv1d(x, *model._folded_stem()).detach().numpy(),
                               explicit.detach().numpy(), rtol=1e-4, atol=1e-4)
    # and the normalisation still receives gradients through the folded path
    model(x).sum().backward()
    assert model.normalisation.mean.grad is not None
    assert float(model.normalisation.log_scale.grad.abs().sum()) > 0


@pytest.mark.parametrize("kernel_size", [5, 4])
def test_fast_scores_equal_the_plain_modules_in_both_layouts_and_modes(kernel_size):
    """``scores`` (channels-last 2-D convolutions) computes what the modules in order compute.

    Same outputs in evaluation; in training the same dropout draws for the same
    seed, and the same gradients for every parameter and for the input (the
    fast path pools before the ELU and has its own stem backward). Tolerance:
    float32 rounding of differently ordered sums (1e-4 relative).
    """
    torch.manual_seed(5)
    model = SeedCNN(ModelConfig(kernel_size=kernel_size))
    rng = np.random.default_rng(3)
    model.normalisation.initialise(rng.uniform(-20, 20, 43), rng.uniform(0.5, 10, 43))
    x = torch.from_numpy(rng.normal(3, 8, (5, 43, 431)).astype(np.float32)).requires_grad_()
    for training in (False, True):
        model.train(training)
        outs, grads = [], []
        for run in (lambda: model.reference_scores(x), lambda: model.scores(x),
                    lambda: model.scores(x.transpose(1, 2).contiguous(), time_major=True)):
            model.zero_grad()
            x.grad = None
            torch.manual_seed(9)                               # the same dropout draws
            s = run()
            (s ** 2).sum().backward()
            outs.append(s.detach().numpy())
            grads.append([p.grad.clone().numpy() for p in model.parameters()] + [x.grad.clone().numpy()])
        for out, grad in zip(outs[1:], grads[1:]):
            np.testing.assert_allclose(out, outs[0], rtol=1e-4, atol=1e-4)
            for g, g0 in zip(grad, grads[0]):
                np.testing.assert_allclose(g, g0, rtol=1e-3, atol=1e-3 * float(np.abs(g0).max()))
        if training:                                           # dropout really acted
            model.eval()
            assert not np.allclose(outs[0], model.reference_scores(x).detach().numpy())
    with pytest.raises(ConfigError, match="frames, 43"):
        model.scores(x, time_major=True)
