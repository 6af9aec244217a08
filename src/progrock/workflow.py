"""Whole runs: data → features → snippets → train → evaluate → report.

The layer above the library modules that the command line, the demo and the
web page call. Every run folder holds everything needed to understand and
repeat it::

    RUN/config.json        the full configuration (data, features, snippets,
                           model, training, baselines, versions)
    RUN/manifest.csv       the songs, labels and splits it was trained on
    RUN/model.safetensors  the best model, with RUN/model.json describing it
    RUN/history.json       per-epoch metrics; RUN/tensorboard/ the event files
    RUN/evaluation.json    metrics per set and model, and per-song results
    RUN/report.html        the report, with its PNGs beside it
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from progrock import __version__
from progrock.atomic import atomic_write_json
from progrock.data.dataset import SongFeatures, load_features, snippet_sets
from progrock.data.manifest import Manifest, read_manifest, scan, summary
from progrock.data.snippets import SnippetConfig
from progrock.errors import DatasetError, ProgrockError
from progrock.evaluation.baselines import BASELINES
from progrock.evaluation.evaluate import Evaluation, evaluate
from progrock.features import FeatureConfig
from progrock.features.cache import FeatureCache
from progrock.features.files import FeatureResult
from progrock.model.checkpoint import load_model
from progrock.model.network import ModelConfig
from progrock.report.html import write_report
from progrock.training.config import TrainConfig
from progrock.training.loop import TrainResult, train_model

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class Hooks:
    """Callbacks for progress: ``log(line)``, ``features(result)``, ``epoch(epoch, record)``."""

    log: Log = _quiet
    features: Callable[[FeatureResult], None] | None = None
    features_total: Callable[[int], None] | None = None
    epoch: Callable[[int, dict], None] | None = None
    scan: Callable[[int], None] | None = None
    scan_total: Callable[[int], None] | None = None
    corpus: Callable[[int], None] | None = None
    corpus_total: Callable[[int], None] | None = None


def open_dataset(source: str | os.PathLike, *, seed: int = 0, jobs: int = 1,
                 hooks: Hooks | None = None) -> Manifest:
    """A manifest from a folder or CSV, scanning only when needed.

    A manifest written by ``progrock scan`` (hashes and splits filled in) is
    read as it is; a folder or a bare ``path,label[,split]`` CSV is scanned.
    """
    hooks = hooks or Hooks()
    source = Path(source)
    if source.is_file():
        manifest = read_manifest(source)
        if all((s.audio_sha256 and s.split) or s.error for s in manifest.songs):
            return manifest
    elif not source.is_dir():
        raise DatasetError(f"{source}: no such folder or manifest")
    return scan(source, seed=seed, jobs=jobs, progress=hooks.scan, on_total=hooks.scan_total)


def unreadable(manifest: Manifest) -> list[tuple[str, str]]:
    """``(path, reason)`` of the manifest's songs left out of every set (unreadable, both labels...).

    A run reports them with the songs that failed later, so no file is dropped silently.
    """
    return [(s.path, s.error) for s in manifest.songs if s.error]


def song_features(manifest: Manifest, feature_config: FeatureConfig, cache: str | os.PathLike, *,
                  jobs: int = 1, hooks: Hooks | None = None) -> SongFeatures:
    """Features of a manifest's usable songs through the cache."""
    hooks = hooks or Hooks()
    songs = manifest.usable()
    if hooks.features_total:
        hooks.features_total(len(songs))
    return load_features(manifest, FeatureCache(cache).store(feature_config), songs=songs, jobs=jobs,
                         progress=hooks.features)


def _environment() -> dict:
    import torch

    return {"progrock": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "machine": platform.machine(), "cpus": os.cpu_count()}


@dataclass
class RunOutcome:
    """What :func:`train_run` produced."""

    run_dir: Path
    training: TrainResult
    evaluation: Evaluation
    report: Path
    failed: list[tuple[str, str]] = field(default_factory=list)


def train_run(source: str | os.PathLike, run_dir: str | os.PathLike, *, cache: str | os.PathLike,
              feature_config: FeatureConfig | None = None, snippet_config: SnippetConfig | None = None,
              model_config: ModelConfig | None = None, train_config: TrainConfig | None = None,
              baselines: tuple[str, ...] = tuple(BASELINES), split_seed: int = 0, jobs: int = 1,
              resume: bool = False, hooks: Hooks | None = None) -> RunOutcome:
    """Train the CNN on a dataset's train split and judge it and the baselines on every set.

    Parameters
    ----------
    source : path-like
        A folder (``prog/``, ``nonprog/``, extra sets), a CSV, or a scanned manifest.
    run_dir : path-like
        Output folder (see the module's docstring for its contents).
    cache : path-like
        The feature cache.
    feature_config, snippet_config, model_config, train_config
        Defaults: the seed's.
    baselines : tuple of str
        Baselines to fit beside the CNN.
    split_seed : int
        Seed of the song-level split when the source has to be scanned.
    jobs : int
        Processes for decoding and features.
    resume : bool
        Continue an interrupted training in ``run_dir``.
    """
    hooks = hooks or Hooks()
    feature_config = feature_config or FeatureConfig()
    snippet_config = snippet_config or SnippetConfig()
    train_config = train_config or TrainConfig()
    model_config = model_config or ModelConfig(n_features=feature_config.n_features,
                                               n_frames=snippet_config.length)
    if model_config.n_features != feature_config.n_features:
        raise ProgrockError(f"the model expects {model_config.n_features} features, the feature set "
                            f"{feature_config.name} gives {feature_config.n_features}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    manifest = open_dataset(source, seed=split_seed, jobs=jobs, hooks=hooks)
    manifest_path = manifest.write(run_dir / "manifest.csv")
    manifest = read_manifest(manifest_path)  # song paths as the run folder names them, from now on
    config = {
        "source": str(source), "manifest": str(manifest_path), "split_seed": split_seed,
        "cache": str(Path(cache).resolve()),
        "features": feature_config.to_dict(), "snippets": snippet_config.to_dict(),
        "model": model_config.to_dict(), "training": train_config.to_dict(),
        "baselines": list(baselines), "environment": _environment(),
    }
    atomic_write_json(run_dir / "config.json", config)
    for name in ("train", "validation"):
        if not manifest.usable(name):
            raise DatasetError(f"{source}: the {name} split is empty; more songs are needed")
    for name in ("train", "validation"):
        labels = {s.label for s in manifest.usable(name)}
        if labels != {"prog", "nonprog"}:
            raise DatasetError(f"{source}: the {name} split needs prog and nonprog songs, has {sorted(labels)}")

    hooks.log(f"features: {feature_config.describe()}")
    data = song_features(manifest, feature_config, cache, jobs=jobs, hooks=hooks)
    skipped: list[tuple[str, str]] = []
    sets = snippet_sets(data, snippet_config, skipped=skipped)
    if "train" not in sets or "validation" not in sets:
        raise DatasetError("no usable songs left in train or validation after decoding")
    hooks.log(f"snippets: {len(sets['train'])} train from {len(sets['train'].songs)} songs, "
              f"{len(sets['validation'])} validation from {len(sets['validation'].songs)} songs")
    training = train_model(sets["train"], sets["validation"], model_config=model_config,
                           train_config=train_config, out_dir=run_dir, feature_config=feature_config,
                           snippet_config=snippet_config, log=hooks.log, progress=hooks.epoch,
                           resume=resume)
    model = load_model(run_dir, expect_features=feature_config)
    eval_sets = snippet_sets(data, snippet_config, sets=manifest.sets, training=False)
    evaluation = evaluate(model, data, eval_sets, baselines=baselines, seed=train_config.seed)
    evaluation.skipped = unreadable(manifest) + [(s.path, r) for s, r in data.failed] + skipped
    report = _write_outputs(run_dir, evaluation, manifest, config)
    return RunOutcome(run_dir, training, evaluation, report, failed=evaluation.skipped)


def _write_outputs(run_dir: Path, evaluation: Evaluation, manifest: Manifest, config: dict,
                   name: str = "evaluation") -> Path:
    atomic_write_json(run_dir / f"{name}.json", evaluation.to_dict(), indent=1)
    title = "progrock run report" if name == "evaluation" else f"progrock {name}"
    return write_report(run_dir, evaluation, data_summary=summary(manifest), config=config, title=title)


def evaluate_run(run_dir: str | os.PathLike, source: str | os.PathLike | None = None, *,
                 cache: str | os.PathLike | None = None, sets: list[str] | None = None,
                 baselines: tuple[str, ...] = tuple(BASELINES), jobs: int = 1,
                 hooks: Hooks | None = None, write: bool = True) -> Evaluation:
    """Judge a run's model (and baselines refitted on the data's train split) on named sets.

    Parameters
    ----------
    run_dir : path-like
        A run folder from :func:`train_run`.
    source : path-like, optional
        Data to judge on (default: the run's own manifest).
    cache : path-like, optional
        The feature cache (default: the one the run was trained with).
    sets : list of str, optional
        Set names (default: every set the data has).
    write : bool
        Also write ``evaluation.json`` and ``report.html`` into the run folder.
    """
    hooks = hooks or Hooks()
    run_dir = Path(run_dir)
    model = load_model(run_dir)
    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    if cache is None:
        if "cache" not in config:
            raise ProgrockError(f"{run_dir}: the run does not name its feature cache; pass one")
        cache = config["cache"]
    manifest = open_dataset(source or run_dir / "manifest.csv", jobs=jobs, hooks=hooks)
    wanted = sets or manifest.sets
    unknown = [s for s in wanted if s not in manifest.sets]
    if unknown:
        raise DatasetError(f"no set named {', '.join(unknown)} in the data; it has {', '.join(manifest.sets)}")
    data = song_features(manifest, model.feature_config, cache, jobs=jobs, hooks=hooks)
    skipped: list[tuple[str, str]] = []
    chosen = snippet_sets(data, model.snippet_config, sets=wanted, skipped=skipped, training=False)
    seed = config.get("training", {}).get("seed", 0)
    # Baselines are refitted on the data's train split; data without one gets none.
    evaluation = evaluate(model, data, chosen, seed=seed,
                          baselines=baselines if manifest.usable("train") else ())
    evaluation.skipped = unreadable(manifest) + [(s.path, r) for s, r in data.failed] + skipped
    if write:
        _write_outputs(run_dir, evaluation, manifest, config)
    return evaluation


def demo_run(out_dir: str | os.PathLike, *, n_songs: int = 160, epochs: int = 300,
             batch_size: int = 128, duration_scale: float = 0.6, difficulty: float = 0.3,
             seed: int = 0, jobs: int = 1, hooks: Hooks | None = None) -> RunOutcome:
    """The demo: write the synthetic corpus (if not there yet), then :func:`train_run` on it.

    Writes ``OUT/corpus/`` (audio), ``OUT/cache/`` (features) and ``OUT/run/``.
    The batch is smaller than the seed's 1024 because the demo corpus is: the
    seed made about 11 Adam steps per epoch over 11,000 snippets, and a batch
    of 128 over the demo's ~1,500 training snippets keeps about that many.
    """
    from progrock.corpus import generate_corpus, remove_corpus

    hooks = hooks or Hooks()
    out_dir = Path(out_dir)
    corpus_dir = out_dir / "corpus"
    settings = {"n_songs": n_songs, "seed": seed, "difficulty": difficulty,
                "duration_scale": duration_scale}
    stamp = corpus_dir / "demo-settings.json"
    if not (stamp.exists() and json.loads(stamp.read_text()) == settings):
        remove_corpus(corpus_dir)  # a demo corpus of other settings is replaced, not mixed in
        hooks.log(f"writing the demo corpus: {n_songs} songs")
        if hooks.corpus_total:
            hooks.corpus_total(n_songs)
        generate_corpus(corpus_dir, jobs=jobs, progress=hooks.corpus, **settings)
        atomic_write_json(stamp, settings)
    return train_run(corpus_dir, out_dir / "run", cache=out_dir / "cache",
                     train_config=TrainConfig(epochs=epochs, seed=seed, batch_size=batch_size),
                     split_seed=seed,
                     jobs=jobs, hooks=hooks)
