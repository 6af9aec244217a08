"""Training on a synthetic learnable problem: learns, saves, monitors, resumes, reproduces."""

import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from progrock.data.snippets import SnippetConfig, SnippetSet
from progrock.errors import ConfigError
from progrock.evaluation.metrics import binary_metrics
from progrock.evaluation.verdict import song_verdicts
from progrock.features import FeatureConfig
from progrock.model.checkpoint import load_model
from progrock.model.network import ModelConfig
from progrock.training import TrainConfig, feature_statistics, positive_weight, train_model

N_FRAMES = 128                      # >= 2**6, small for speed; the network is the seed's
MODEL = ModelConfig(n_frames=N_FRAMES)


def make_set(n_songs: int, seed: int) -> SnippetSet:
    """Songs of 3-6 snippets; every third song is prog.

    Prog songs carry a raised MFCC band (rows 2-5) and a 5-frame periodic onset
    pulse (last row), both well under the noise of a single frame.
    """
    rng = np.random.default_rng(seed)
    xs, song, labels = [], [], []
    for i in range(n_songs):
        prog = int(i % 3 == 0)
        n = int(rng.integers(3, 7))
        x = rng.normal(5.0, 3.0, (n, 43, N_FRAMES)).astype(np.float32)
        if prog:
            x[:, 2:6, :] += 1.5
            x[:, -1, ::5] += 3.0
        xs.append(x)
        song += [i] * n
        labels.append(prog)
    x = np.concatenate(xs)
    return SnippetSet.from_arrays(x, np.array(song), [f"song{seed}_{i}" for i in range(n_songs)],
                                  np.array(labels, dtype=np.int64))


def _config(**kw):
    base = dict(epochs=12, batch_size=32, lr=1e-2, num_threads=2, histogram_every=5, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def _train(train, val, out_dir, config, **kw):
    return train_model(train, val, model_config=MODEL, train_config=config, out_dir=out_dir,
                       feature_config=FeatureConfig(), snippet_config=SnippetConfig(), **kw)


@pytest.fixture(scope="module")
def data():
    return make_set(40, 1), make_set(24, 2), make_set(24, 3)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    train, val, _ = data
    out = tmp_path_factory.mktemp("run")
    lines, calls = [], []
    result = _train(train, val, out, _config(), log=lines.append,
                    progress=lambda e, r: calls.append((e, r["loss_train"])))
    return result, out, lines, calls


def test_learns_and_generalises_to_held_out_songs(trained, data):
    result, out, _, _ = trained
    test = data[2]
    loaded = load_model(out, expect_features=FeatureConfig())
    probs = loaded.predict_proba(test.x)
    verdicts = song_verdicts(probs, test.song, len(test.songs), threshold=loaded.threshold)
    m = binary_metrics(test.song_labels, [v.is_prog for v in verdicts])
    assert m["balanced_accuracy"] >= 0.8, m
    # and the network learnt something on snippets, not only by voting
    assert binary_metrics(test.y, probs >= 0.5)["balanced_accuracy"] >= 0.7


def test_outputs_and_history(trained):
    result, out, lines, calls = trained
    for name in ("model.json", "model.safetensors", "last.json", "last.safetensors",
                 "history.json", "curves.png", "confusion_validation.png"):
        assert (out / name).is_file(), name
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 13))
    assert history == json.loads(json.dumps(result.history))
    assert [e for e, _ in calls] == list(range(1, 13))
    assert any("epoch  12/12" in line for line in lines)
    best = max(history, key=lambda h: (h["balanced_accuracy_song_validation"], -h["loss_validation"]))
    assert result.best_epoch == best["epoch"]
    assert history[-1]["loss_train"] < history[0]["loss_train"]
    meta = json.loads((out / "model.json").read_text())
    assert meta["training"]["complete"] and meta["training"]["best_epoch"] == result.best_epoch
    assert meta["threshold"] == pytest.approx(result.threshold)
    assert meta["metrics"]["song"]["n"] == 24
    assert meta["training"]["pos_weight"] == pytest.approx(positive_weight(
        make_set(40, 1).y, "balanced"))
    # the saved model is the best epoch's, not the last one's
    saved = load_model(out).model.state_dict()
    for k, v in result.model.state_dict().items():
        assert torch.equal(saved[k], v)


def test_tensorboard_events(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, out, _, _ = trained
    acc = EventAccumulator(str(out / "tensorboard"),
                           size_guidance={"scalars": 0, "histograms": 0, "images": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in ("loss/train", "loss/validation", "accuracy/snippet_train", "accuracy/snippet_validation",
                "balanced_accuracy/snippet_validation", "accuracy/song_validation",
                "balanced_accuracy/song_validation", "accuracy/song_train"):
        assert tag in tags["scalars"], tag
        assert [e.step for e in acc.Scalars(tag)] == list(range(1, 13)), tag
    layers = ["stem"] + [f"block{i}" for i in range(1, 7)] + ["head"]
    for layer in layers:
        for kind in ("weights", "activations"):
            tag = f"{kind}/{layer}"
            assert tag in tags["histograms"], tag
            assert [e.step for e in acc.Histograms(tag)] == [5, 10, 12], tag
    assert "confusion/song_validation" in tags["images"]
    assert "pr/song_validation" in tags["tensors"]


def test_seeded_runs_are_reproducible_and_seed_matters(data, tmp_path):
    train, val, _ = data
    small = _config(epochs=2, histogram_every=0)
    a = _train(train, val, tmp_path / "a", small)
    b = _train(train, val, tmp_path / "b", small)
    _train(train, val, tmp_path / "c", _config(epochs=2, histogram_every=0, seed=1))
    la, lb, lc = (load_file(str(tmp_path / d / "last.safetensors")) for d in "abc")
    for k in la:
        if k.startswith("model."):
            assert torch.equal(la[k], lb[k]), k
    assert not torch.equal(la["model.stem.conv.weight"], lc["model.stem.conv.weight"])
    assert [h["loss_train"] for h in a.history] == [h["loss_train"] for h in b.history]


def test_resume_equals_uninterrupted(data, tmp_path):
    train, val, _ = data
    full = _train(train, val, tmp_path / "full", _config(epochs=4, histogram_every=2))
    _train(train, val, tmp_path / "resumed", _config(epochs=2, histogram_every=2))
    lines = []
    resumed = _train(train, val, tmp_path / "resumed", _config(epochs=4, histogram_every=2),
                     resume=True, log=lines.append)
    assert any("resuming after epoch 2" in line for line in lines)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert [h["loss_train"] for h in resumed.history] == [h["loss_train"] for h in full.history]
    lf = load_file(str(tmp_path / "full" / "last.safetensors"))
    lr = load_file(str(tmp_path / "resumed" / "last.safetensors"))
    assert lf.keys() == lr.keys()
    for k in lf:
        assert torch.equal(lf[k], lr[k]), k             # model, Adam state, best weights, RNGs
    assert resumed.best_epoch == full.best_epoch and resumed.threshold == full.threshold


def test_resume_refuses_other_settings_or_data(data, tmp_path):
    train, val, test = data
    _train(train, val, tmp_path, _config(epochs=1, histogram_every=0))
    with pytest.raises(ConfigError, match="lr"):
        _train(train, val, tmp_path, _config(epochs=2, lr=1e-3, histogram_every=0), resume=True)
    with pytest.raises(ConfigError, match="other training or validation"):
        _train(test, val, tmp_path, _config(epochs=2, histogram_every=0), resume=True)


def test_early_stopping(data, tmp_path):
    train, val, _ = data
    # a learning rate of ~0 never improves after epoch 1
    result = _train(train, val, tmp_path, _config(epochs=20, lr=1e-12, early_stopping_patience=2,
                                                  histogram_every=0))
    assert result.stopped_early
    assert len(result.history) == result.best_epoch + 2


def test_feature_statistics_match_numpy():
    x = np.random.default_rng(0).normal(7.0, 2.0, (50, 5, 33)).astype(np.float32)
    x[:, 3] *= 100
    mean, std = feature_statistics(x, chunk=7)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=(0, 2)), rtol=1e-10)
    np.testing.assert_allclose(std, x.astype(np.float64).std(axis=(0, 2)), rtol=1e-10)


def test_positive_weight_balances_snippet_counts():
    y = np.array([0] * 30 + [1] * 10)
    w = positive_weight(y, "balanced")
    assert w == pytest.approx(3.0)
    assert w * np.sum(y == 1) == np.sum(y == 0)          # both classes carry the same weight
    assert positive_weight(y, "none") is None
    with pytest.raises(ConfigError):
        positive_weight(np.zeros(5), "balanced")


def test_train_config_round_trip_and_validation():
    c = TrainConfig(epochs=3, class_weight="none", early_stopping_patience=4)
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError):
        TrainConfig(class_weight="inverse")
    with pytest.raises(ConfigError, match="unknown"):
        TrainConfig.from_dict({"epochs": 3, "momentum": 0.9})


def test_unlabelled_or_misshapen_sets_are_refused(data, tmp_path):
    train, val, _ = data
    bad = SnippetSet.from_arrays(train.x, train.song, train.songs,
                                 np.where(np.arange(len(train.songs)) == 0, -1, train.song_labels))
    with pytest.raises(Exception, match="without a label"):
        _train(bad, val, tmp_path, _config(epochs=1))
    with pytest.raises(ConfigError, match="shape"):
        train_model(train, val, model_config=ModelConfig(), train_config=_config(epochs=1),
                    out_dir=tmp_path, feature_config=FeatureConfig(), snippet_config=SnippetConfig())


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("backend", ["fused", "autograd"])
def test_batch_on_threads_has_the_gradient_of_one_plain_pass(data, n_threads, backend):
    """A batch split over threads: the plain modules' loss, logits and gradient, same draws.

    The reference is one pass of the whole batch through the modules in order
    (:meth:`SeedCNN.scores` with its own Dropout1d draws, then noisy voting),
    the mean weighted BCE, and autograd. The threaded step draws the same masks
    and voting weights up front and sums the parts' gradients, on the compiled
    CPU backend or the autograd backend, reading the batch in place from the
    training set's frames.
    """
    import importlib

    from progrock.model.network import SeedCNN
    from progrock.training.threads import BatchThreads

    train = data[0]
    torch.manual_seed(0)
    model = SeedCNN(MODEL).train()
    model.normalisation.initialise(*feature_statistics(train.x))
    params = [p for p in model.parameters() if p.requires_grad]
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(1))[:45].numpy()
    y = train.y.astype(np.float32)

    torch.manual_seed(7)
    logits0 = model.voting(model.scores(torch.from_numpy(train.x[idx])))
    loss0 = torch.nn.functional.binary_cross_entropy_with_logits(logits0, torch.from_numpy(y[idx]),
                                                                 pos_weight=torch.tensor([2.0]))
    grads0 = torch.autograd.grad(loss0, params)

    torch.manual_seed(7)
    impl = importlib.import_module(f"progrock.model.backends.{backend}")
    with BatchThreads(n_threads) as threads:
        noise = model.draw_noise(len(idx))
        loss, grads, logits = impl.loss_and_gradients(model, train.frames.x, train.offsets[idx], y[idx], noise,
                                                      pos_weight=2.0, scale=1 / len(idx), map_parts=threads.map)
    np.testing.assert_allclose(logits, logits0.detach().numpy(), rtol=1e-4, atol=1e-4)
    assert loss == pytest.approx(float(loss0.detach()), rel=1e-5)
    for g, g0 in zip(grads, grads0):
        np.testing.assert_allclose(g.numpy(), g0.numpy(), rtol=1e-3, atol=1e-4 * float(g0.abs().max()))


def test_batch_threads_split_map_in_order_and_restore_settings():
    from progrock.training.threads import BatchThreads

    before = torch.get_num_threads()
    with BatchThreads(3) as threads:
        assert torch.get_num_threads() == 1
        for n in (1, 2, 3, 10, 1024):
            parts = threads.parts(n)
            assert len(parts) == min(3, n) and parts[0].start == 0 and parts[-1].stop == n
            assert all(a.stop == b.start and a.stop > a.start for a, b in zip(parts, parts[1:]))
            assert threads.map(lambda k, rows: (k, rows.start), n) == [(k, r.start) for k, r in enumerate(parts)]
        finished = []

        def part(k, rows):
            if k == 0:
                raise ValueError("part 0 failed")
            import time
            time.sleep(0.2)
            finished.append(k)

        with pytest.raises(ValueError, match="part 0 failed"):
            threads.map(part, 9)
        assert sorted(finished) == [1, 2]              # the other parts had finished when it was raised
    assert torch.get_num_threads() == before
    with pytest.raises(ConfigError):
        BatchThreads(0)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_default_thread_count_follows_the_cpu_affinity():
    """A container or ``taskset`` limits the cores; ``os.cpu_count()`` would still count them all."""
    from progrock.training.threads import available_cores

    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})
        assert available_cores() == 1
    finally:
        os.sched_setaffinity(0, before)
    assert available_cores() == len(before)
