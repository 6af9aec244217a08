"""Shared fixtures: audio made in code, with known content."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np
import pytest

import progrock

SR = 22_050

SOURCE = str(Path(progrock.__file__).resolve().parents[1])
"""The tree under test, for child processes' PYTHONPATH (the venv's own path may name another checkout)."""


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Keep the tests' feature cache out of the user's ~/.cache."""
    os.environ["PROGROCK_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.setdefault("MPLBACKEND", "Agg")


def music(seconds: float = 12.0, *, sr: int = SR, seed: int = 0, pitch_hz: float = 440.0,
          beat_s: float = 0.5) -> np.ndarray:
    """A short piece with a known pitch and known onsets.

    A harmonic tone at ``pitch_hz`` (a few partials, decaying per beat), a
    noise-burst "drum" on every beat, and a little background noise.

    Returns
    -------
    np.ndarray [shape=(int(seconds * sr),), dtype=float32]
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    beat_phase = (t % beat_s) / beat_s
    env = np.exp(-4.0 * beat_phase)
    tone = sum(np.sin(2 * np.pi * pitch_hz * k * t) / k for k in (1, 2, 3, 4))
    y = 0.25 * env * tone
    burst = int(0.03 * sr)
    for start in np.arange(0, n - burst, int(beat_s * sr)):
        y[start:start + burst] += 0.5 * rng.standard_normal(burst) * np.linspace(1, 0, burst)
    y += 0.003 * rng.standard_normal(n)
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


@pytest.fixture
def song() -> np.ndarray:
    """12 s of :func:`music` at 22,050 Hz (A4, a beat every 0.5 s)."""
    return music()


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory):
    """A small demo corpus shared by the end-to-end tests: 40 songs of 24-40 s, every format.

    Returns the corpus folder; its ``corpus.json`` lists the songs.
    """
    from progrock.corpus import generate_corpus

    root = tmp_path_factory.mktemp("demo") / "corpus"
    generate_corpus(root, n_songs=40, seed=11, difficulty=0.1, duration_scale=0.2, jobs=2)
    return root


@pytest.fixture(scope="session")
def tiny_run(demo_corpus, tmp_path_factory):
    """A short training on :func:`demo_corpus` by the seed's recipe (one CNN, 40 epochs, batch 32) with
    every model but the musicnn ones: a ``RunOutcome``."""
    from progrock.training.config import TrainConfig
    from progrock.training.fit import FitPlan
    from progrock.workflow import train_run

    plan = FitPlan(recipe="seed", train_config=TrainConfig(epochs=40, batch_size=32, seed=0),
                   models=("cnn", "cnn_mean", "logreg", "extratrees", "structure"))
    return train_run(demo_corpus, tmp_path_factory.mktemp("run"), cache=tmp_path_factory.mktemp("run-cache"),
                     plan=plan, split_seed=0, jobs=2)


def real_songs() -> list[str]:
    """Real recordings: the Ogg Vorbis songs of Debian's ``fretsonfire-songs-muldjord``.

    Looked for where ``.ci/run`` and ``benchmarks/bench_features.py`` unpack the
    package (``~/.cache/progrock-bench/deb``). Missing, the test is skipped, or
    fails where ``PROGROCK_REQUIRE_REAL_AUDIO=1`` (CI).
    """
    root = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")) + "/progrock-bench/deb"
    found = sorted(glob.glob(f"{root}/usr/share/games/fretsonfire/data/songs/muldjord/*/song.ogg"))
    if not found:
        reason = (f"Debian's fretsonfire-songs-muldjord is not unpacked in {root} "
                  "(.ci/run and benchmarks/bench_features.py fetch it)")
        if os.environ.get("PROGROCK_REQUIRE_REAL_AUDIO") == "1":
            pytest.fail(f"PROGROCK_REQUIRE_REAL_AUDIO=1 but {reason}")
        pytest.skip(reason)
    return found
