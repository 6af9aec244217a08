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
    np.testing.assert_allclose(torch.nn.functional.conv1d(x, *model.folded_stem()).detach().numpy(),
                               explicit.detach().numpy(), rtol=1e-4, atol=1e-4)
    # and the normalisation still receives gradients through the folded path
    model(x).sum().backward()
    assert model.normalisation.mean.grad is not None
    assert float(model.normalisation.log_scale.grad.abs().sum()) > 0


# ---------------------------------------------------------------------------------------------
# the backends (progrock.model.backends): the forward's function, computed elsewhere


def _music_snippets(n: int, n_frames: int) -> np.ndarray:
    """``n`` snippets ``[n, 43, n_frames]`` of the seed features of music made in code.

    Pieces of different pitch and tempo, each cut at its own frame offset: real
    feature values (decibels, chroma, onsets), not random numbers.
    """
    from conftest import music

    from progrock.features import FeatureConfig, compute_features

    config = FeatureConfig()
    out = []
    for i in range(n):
        y = music(n_frames * config.hop_length / config.sr + 1.0, seed=i, pitch_hz=110.0 * (1 + i % 7),
                  beat_s=0.3 + 0.07 * (i % 5))
        f = compute_features(y, config)
        start = (7 * i) % (f.shape[1] - n_frames + 1)
        out.append(f[:, start:start + n_frames])
    return np.ascontiguousarray(np.stack(out), dtype=np.float32)


def _frames(x: np.ndarray) -> np.ndarray:
    """Snippets ``[n, F, T]`` end to end as a frames matrix ``[F, n * T]`` (snippet ``i`` starts at ``i * T``)."""
    n, f, t = x.shape
    return np.ascontiguousarray(x.transpose(1, 0, 2).reshape(f, n * t))


def _plain_step(model, x, labels, pos_weight, seed):
    """Loss, logits and gradients of the plain modules in order (their own dropout draws from ``seed``)."""
    torch.manual_seed(seed)
    logits = model.voting(model.scores(torch.from_numpy(x)))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, torch.from_numpy(labels), reduction="sum",
        pos_weight=None if pos_weight is None else torch.tensor([pos_weight])) / 64
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [g.numpy() for g in torch.autograd.grad(loss, params)]
    return float(loss.detach()), logits.detach().numpy(), grads


@pytest.mark.parametrize("config, pos_weight", [
    (ModelConfig(), 2.5),                                        # the seed's network
    (ModelConfig(n_frames=200, kernel_size=4), None),             # even kernel: one more pad right
    (ModelConfig(n_frames=151, kernel_size=7, n_blocks=3), 1.0),  # 5 + 2 taps, odd lengths
    (ModelConfig(n_frames=120, kernel_size=3, dropout=0.0, stem_channels=5, block_channels=3), 0.4),
    (ModelConfig(n_frames=90, n_blocks=0, trainable_normalisation=False), 2.0),
])
@pytest.mark.parametrize("backend", ["fused", "autograd"])
def test_backend_training_pass_equals_the_plain_modules(config, pos_weight, backend):
    """Each backend gives the loss, logits and every gradient of the modules in order.

    The reference is one pass through the plain modules (:meth:`SeedCNN.scores`:
    Conv1d, ELU, Dropout1d, MaxPool1d in the seed's order, with their own
    dropout draws), noisy voting, BCE with ``pos_weight`` and autograd; the
    backend gets the same draws from :meth:`SeedCNN.draw_noise` under the
    same seed, on real feature values read in place from the frames, over
    parts as the training threads cut them. Tolerance: float32 rounding of
    differently ordered sums.
    """
    import importlib

    fused = importlib.import_module(f"progrock.model.backends.{backend}")

    torch.manual_seed(3)
    model = SeedCNN(config).train()
    x_all = _music_snippets(12, config.n_frames)
    model.normalisation.initialise(x_all.mean(axis=(0, 2)), x_all.std(axis=(0, 2)))
    index = np.array([5, 0, 11, 3, 3, 8, 1, 10, 6])               # a batch, with a repeat
    labels = (index % 3 == 0).astype(np.float32)
    loss0, logits0, grads0 = _plain_step(model, x_all[index], labels, pos_weight, seed=8)

    torch.manual_seed(8)
    noise = model.draw_noise(len(index))
    parts = [slice(0, 4), slice(4, 9)]
    frames, starts = _frames(x_all), index * config.n_frames
    loss, grads, logits = fused.loss_and_gradients(
        model, frames, starts, labels, noise, pos_weight=pos_weight, scale=1 / 64,
        map_parts=lambda fn, n: [fn(k, rows) for k, rows in enumerate(parts)])
    np.testing.assert_allclose(logits, logits0, rtol=1e-4, atol=1e-4)
    assert loss == pytest.approx(loss0, rel=1e-5)
    assert len(grads) == len(grads0)
    for g, g0 in zip(grads, grads0):
        assert g.shape == g0.shape
        np.testing.assert_allclose(g.numpy(), g0, rtol=1e-3, atol=1e-4 * float(np.abs(g0).max()))
    if config.dropout:                                           # the draws really dropped channels
        assert any(float(m.min()) == 0 for m in noise.masks)
    # no gradient may depend on where the batch is cut
    _, grads_one, logits_one = fused.loss_and_gradients(model, frames, starts, labels, noise,
                                                        pos_weight=pos_weight, scale=1 / 64)
    np.testing.assert_allclose(logits_one, logits, rtol=1e-6)
    for g, g1 in zip(grads, grads_one):
        np.testing.assert_allclose(g1.numpy(), g.numpy(), rtol=1e-4, atol=1e-6 * float(g.abs().max()))


@pytest.mark.parametrize("backend", ["fused", "autograd"])
def test_backend_logits_equal_predict_logits(backend):
    import importlib

    fused = importlib.import_module(f"progrock.model.backends.{backend}")
    torch.manual_seed(1)
    model = SeedCNN(ModelConfig()).train()                       # logits() evaluates all the same
    x = _music_snippets(6, 431)
    model.normalisation.initialise(x.mean(axis=(0, 2)), x.std(axis=(0, 2)))
    expected = predict_logits(model, x)
    frames, starts = _frames(x), np.arange(6) * 431
    np.testing.assert_allclose(fused.logits(model, frames, starts), expected, rtol=1e-4, atol=1e-4)
    halves = lambda fn, n: [fn(0, slice(0, 2)), fn(1, slice(2, n))]
    np.testing.assert_allclose(fused.logits(model, frames, starts, map_parts=halves), expected,
                               rtol=1e-4, atol=1e-4)
    # overlapping windows read in place: each equals its own copy
    shifted = np.array([5, 100, 431 * 2 + 17])
    copies = np.stack([frames[:, s:s + 431] for s in shifted])
    np.testing.assert_allclose(fused.logits(model, frames, shifted), predict_logits(model, copies),
                               rtol=1e-4, atol=1e-4)
    if backend == "fused":
        with pytest.raises(ConfigError, match="C-contiguous float32"):
            fused.logits(model, np.asfortranarray(frames), starts)
        with pytest.raises(ConfigError, match="C-contiguous float32"):
            fused.logits(model, frames.astype(np.float64), starts)


def test_fused_elu_is_within_two_ulps_of_pytorchs():
    """The polynomial ELU (vectorisable, no expf call) against PyTorch's on the whole float range."""
    from progrock.model.backends import fused

    z = np.concatenate([np.linspace(-30, 30, 20_001), -np.logspace(-12, 1.5, 4_001), np.logspace(-12, 3, 500),
                        [0.0, -0.0, -17.5, -17.4999, -87.0, -1e30, 1e30, 1e-40, -1e-40]]).astype(np.float32)
    ours = np.array([fused.elu(v) for v in z], dtype=np.float32)
    theirs = torch.nn.functional.elu(torch.from_numpy(z)).numpy()
    ulp = np.spacing(np.abs(theirs).astype(np.float32))
    assert np.all(np.abs(ours - theirs) <= 2 * ulp + 1e-45), z[np.argmax(np.abs(ours - theirs) / ulp)]
    assert np.all(ours[z > 0] == z[z > 0])


def test_fused_training_pass_refuses_what_does_not_fit():
    """The compiled loop checks no index: wrong starts or draws are refused before it runs."""
    from progrock.model.backends import fused

    torch.manual_seed(2)
    model = SeedCNN(ModelConfig(n_frames=100)).train()
    frames = _frames(_music_snippets(3, 100))                  # 300 frames: starts 0..200 fit
    noise = model.draw_noise(2)
    y = np.zeros(2, np.float32)
    for starts, labels, draws, match in [
            (np.array([0, 201]), y, noise, "out of range"),
            (np.array([-1, 0]), y, noise, "out of range"),
            (np.array([0, 1]), np.zeros(3), noise, "do not fit a batch"),
            (np.array([0, 1]), y, model.draw_noise(3), "do not fit"),
    ]:
        with pytest.raises(ConfigError, match=match):
            fused.loss_and_gradients(model, frames, starts, labels, draws, pos_weight=None, scale=1.0)
