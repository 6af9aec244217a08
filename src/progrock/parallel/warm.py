"""Warm-up of the fork server that local workers come from (:mod:`progrock.parallel.engines`).

Imported once, by the fork server only (its preload list): at import it runs
the per-song work once on a few seconds of noise, so the first call of every
lazily compiled function (librosa's numba kernels, the network's compiled
pass) is paid once in the server instead of once in every worker forked from
it. Nothing here is imported by progrock's own modules.

PyTorch is set to one thread first: an OpenMP thread pool started here would
be copied, without its threads, into every worker (the hazard the fork server
exists to avoid). Workers run one song each and set their own threads anyway.
"""

from __future__ import annotations

import numpy as np
import torch

from progrock.constants import SR
from progrock.features.sets import FeatureConfig, compute_features
from progrock.model.backends import backend_for
from progrock.model.network import ModelConfig, SeedCNN


def warm_up() -> None:
    """Compute seed43 features of 12 s of noise and one snippet's logits of an untrained network.

    Best effort: a failure here only means colder workers (the fork server
    would otherwise die with it, and every worker with the server).
    """
    torch.set_num_threads(1)
    try:
        _run_once()
    except Exception:  # noqa: BLE001 - the workers will pay the first calls themselves
        pass


def _run_once() -> None:
    y = (0.1 * np.random.default_rng(0).standard_normal(12 * SR)).astype(np.float32)
    x = np.ascontiguousarray(compute_features(y, FeatureConfig.named("seed43")), dtype=np.float32)
    model = SeedCNN(ModelConfig())
    model.eval()
    n = model.config.n_frames
    if x.shape[1] >= n:
        backend_for(model).logits(model, x, np.zeros(1, np.int64))


warm_up()
