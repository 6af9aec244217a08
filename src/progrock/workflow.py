"""Whole runs: train, evaluate, the demo — the commands that span the stages.

The command line and the web page call this layer for the multi-stage
commands, and each stage's files layer for the single-stage ones
(``scan``: :func:`progrock.data.manifest.scan`; ``features``:
:func:`progrock.features.files.features_from_files`; ``predict`` and the page:
:mod:`progrock.predict`). A run folder holds everything needed to understand,
repeat and use it::

    RUN/config.json           the full configuration (data, features, snippets, recipe, models,
                              training, versions)
    RUN/manifest.csv          the songs, labels and splits it was trained on
    RUN/model.json            every model of the run and what it was trained on
    RUN/model.safetensors     all their weights (no pickle: loading never runs code)
    RUN/training/cnn-<k>/     each CNN member's history, resumable state and curves
    RUN/tensorboard/cnn-<k>/  its TensorBoard events
    RUN/evaluation.json       metrics per set and model with intervals, and per-song results
    RUN/report.html           the report
    RUN/evaluations/...       later evaluations (``progrock evaluate``), each in its own folder
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from progrock import __version__
from progrock.atomic import atomic_write_json
from progrock.constants import CLASSES, SPLITS
from progrock.data.dataset import SongFeatures, load_features
from progrock.data.manifest import Manifest, list_songs, read_manifest, scan, summary
from progrock.errors import ConfigError, DatasetError
from progrock.evaluation.evaluate import Evaluation, evaluate
from progrock.features.cache import FeatureCache
from progrock.features.files import FeatureResult
from progrock.features.sets import FeatureConfig
from progrock.model.run import Run, Songs, load_run, save_run
from progrock.paths import printable
from progrock.training.fit import CNN_INPUT, FitPlan, fit_run

Log = Callable[[str], None]

TOO_FEW = 5
"""A split with fewer songs of a class than this gets a warning with the interval it implies."""


def _quiet(_: str) -> None:
    pass


@dataclass
class Hooks:
    """Callbacks for progress: ``log(line)``, ``warn(line)``, counters per stage, ``epoch(epoch, record)``,
    ``member(k, n)`` when the k-th of n CNN members starts training, ``fold(done, total)`` when a
    cross-validation fold ends."""

    log: Log = _quiet
    warn: Log = _quiet
    features: Callable[[FeatureResult], None] | None = None
    features_total: Callable[[int], None] | None = None
    epoch: Callable[[int, dict], None] | None = None
    member: Callable[[int, int], None] | None = None
    scan: Callable[[int], None] | None = None
    scan_total: Callable[[int], None] | None = None
    corpus: Callable[[int], None] | None = None
    corpus_total: Callable[[int], None] | None = None
    fold: Callable[[int, int], None] | None = None


# ---------------------------------------------------------------------------------------------
# data


def check_training_data(source: str | os.PathLike) -> None:
    """Refuse, before any decoding, a dataset that cannot train: a class without songs, named with what to add."""
    songs, _ = list_songs(source)
    labelled = [s for s in songs if s.label in CLASSES and (not s.split or s.split in SPLITS)]
    for c in CLASSES:
        n = sum(s.label == c for s in labelled)
        if n == 0:
            where = f"under {Path(source) / c}/" if Path(source).is_dir() else f"labelled {c!r} in {source}"
            raise DatasetError(f"{source}: no {c} songs to train on: put {c} songs {where} "
                               f"(at least {2 * TOO_FEW} of each class, more is better)")


def split_warnings(manifest: Manifest) -> list[str]:
    """A line per split with too few songs of a class to mean anything, with how low the truth could be;
    and a line when the training songs are too few for the familiarity check."""
    from progrock.evaluation.intervals import perfect_score_low
    from progrock.model.familiarity import MIN_SONGS

    out = []
    for split in SPLITS:
        counts = {c: sum(s.label == c for s in manifest.usable(split)) for c in CLASSES}
        if 0 < min(counts.values()) < TOO_FEW or (split == "test" and 0 == min(counts.values())
                                                   and sum(counts.values())):
            n = sum(counts.values())
            low = perfect_score_low(counts["prog"], counts["nonprog"])
            what = (f"even a perfect score there leaves the true balanced accuracy anywhere above {low:.2f} "
                    f"(95 %)" if low > 0 else "a class is missing: no balanced accuracy can be measured")
            out.append(f"the {split} split has {counts['prog']} prog and {counts['nonprog']} nonprog songs "
                       f"({n} in all): too few to mean anything ({what}); add songs, or judge with progrock cv")
    n_train = len(manifest.usable("train"))
    if 0 < n_train < MIN_SONGS:
        out.append(f"{n_train} training songs are too few for the familiarity check (it needs {MIN_SONGS}): "
                   "no song will be flagged as unlike the training music")
    return out


def open_dataset(source: str | os.PathLike, *, seed: int = 0, jobs: int = 1, hooks: Hooks | None = None,
                 split: bool = True) -> Manifest:
    """A manifest from a folder or CSV, scanning only when needed.

    A manifest written by ``progrock scan`` (hashes and splits filled in) is
    read as it is; a folder or a bare ``path,label[,split]`` CSV is scanned
    (with ``split=False``: not split, see :func:`progrock.data.manifest.scan`).
    """
    hooks = hooks or Hooks()
    source = Path(source)
    if source.is_file():
        manifest = read_manifest(source)
        if all((s.audio_sha256 and s.split) or s.error for s in manifest.songs):
            return manifest
    elif not source.is_dir():
        raise DatasetError(f"{source}: no such folder or manifest")
    return scan(source, seed=seed, jobs=jobs, progress=hooks.scan, on_total=hooks.scan_total, split=split)


def unreadable(manifest: Manifest) -> list[tuple[str, str]]:
    """``(path, reason)`` of the manifest's songs left out of every set (unreadable, both labels...), each
    path printable (:func:`progrock.paths.printable`), as every song is named in results."""
    return [(printable(s.path), s.error) for s in manifest.songs if s.error]


def failed_songs(data: SongFeatures) -> list[tuple[str, str]]:
    """``(path, reason)`` of the songs whose features could not be computed, printable."""
    return [(printable(s.path), reason) for s, reason in data.failed]


def song_features(manifest: Manifest, configs: list[FeatureConfig], cache: str | os.PathLike, *,
                  jobs: int = 1, hooks: Hooks | None = None) -> SongFeatures:
    """Features of a manifest's usable songs through the cache, every set in ``configs`` from one decode."""
    hooks = hooks or Hooks()
    songs = manifest.usable()
    if hooks.features_total:
        hooks.features_total(len(songs))
    cache = FeatureCache(cache)
    return load_features(manifest, [cache.store(c) for c in configs], songs=songs, jobs=jobs,
                         progress=hooks.features)


def songs_of(data: SongFeatures, set_name: str) -> Songs:
    """One set of ``data`` as a batch of songs to judge (the truth where the song has a label)."""
    idx = [i for i, s in enumerate(data.songs) if s.split == set_name]
    return Songs([printable(data.songs[i].path) for i in idx], {k: [v[i] for i in idx] for k, v in data.features.items()},
                 [data.songs[i].duration for i in idx], [data.songs[i].label or None for i in idx])


def _environment() -> dict:
    import torch

    return {"progrock": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "machine": platform.machine(), "cpus": os.cpu_count()}


def _is_demo_corpus(path: Path) -> bool:
    try:
        return path.is_file() and json.loads(path.read_text()).get("generator") == "progrock.corpus"
    except (OSError, ValueError, AttributeError):
        return False


def is_synthetic(source: Path, manifest: Manifest, split: str | None = None) -> bool:
    """Whether the songs (of ``split``) are progrock's synthetic demo corpus (its ``corpus.json`` beside them)."""
    files = [manifest.resolve(s) for s in manifest.usable(split)]
    common = Path(os.path.commonpath([str(f) for f in files])) if files else source
    places = [source if source.is_dir() else source.parent, *list(common.parents)[:3], common]
    return any(_is_demo_corpus(p / "corpus.json") for p in places)


def synthetic_notes(run: Run, evaluation: Evaluation) -> list[str]:
    """What a reader of figures on the synthetic demo corpus must know about the pretrained tagger's models."""
    tagger = [m for m in evaluation.titles if m in run.entries and run.entries[m].kind in ("musicnn", "patches")]
    if not tagger:
        return []
    return [f"{', '.join(tagger)}: the musicnn tagger learnt from real recordings (the Million Song Dataset); its "
            "scores on progrock's synthetic demo corpus mean little about how it hears real music"]


def trained_on(source: Path, manifest: Manifest, configs: list[FeatureConfig]) -> dict:
    """What a run's models have heard: the source, whether it is progrock's synthetic demo corpus, songs per class."""
    synthetic = is_synthetic(source, manifest, "train")
    return {"source": str(source.resolve()), "synthetic": synthetic,
            "songs": {c: sum(s.label == c for s in manifest.usable("train")) for c in CLASSES},
            "feature_sets": [c.name for c in configs]}


# ---------------------------------------------------------------------------------------------
# train


@dataclass
class RunOutcome:
    """What :func:`train_run` produced."""

    run_dir: Path
    run: Run
    evaluation: Evaluation
    report: Path
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _config(source, manifest_path, plan: FitPlan, configs, *, cache, split_seed) -> dict:
    return {"source": str(source), "manifest": str(manifest_path), "split_seed": split_seed,
            "cache": str(Path(cache).resolve()), "recipe": plan.recipe, "models": list(plan.models),
            "folds": plan.folds, "features": {c.name: c.to_dict() for c in configs},
            "snippets": plan.run_snippets().to_dict(), "model": plan.network_config().to_dict(),
            "cnn_input": CNN_INPUT[plan.recipe],
            "training": plan.train_config.to_dict(), "environment": _environment()}


def _check_resume(run_dir: Path, config: dict) -> None:
    """``--resume`` with other settings is refused before anything in the run folder is written."""
    path = run_dir / "config.json"
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    keys = ("recipe", "models", "folds", "features", "snippets", "model", "split_seed")
    diffs = [k for k in keys if old.get(k) != config.get(k)]
    if "songs" in config and "songs" in old and old["songs"] != config["songs"]:
        diffs.append("the songs or their splits")
    t_old, t_new = old.get("training", {}), config["training"]
    diffs += [f"training.{k}" for k in t_new if k not in ("epochs", "early_stopping_patience", "num_threads",
                                                         "histogram_every") and t_old.get(k) != t_new[k]]
    if diffs:
        raise ConfigError(f"{run_dir}: cannot resume with other settings ({', '.join(diffs)}); "
                          f"train again without --resume, or into another --out")


def train_run(source: str | os.PathLike, run_dir: str | os.PathLike, *, cache: str | os.PathLike,
              plan: FitPlan | None = None, split_seed: int = 0, jobs: int = 1, resume: bool = False,
              hooks: Hooks | None = None) -> RunOutcome:
    """Train every model of ``plan`` on a dataset's train split and judge them on every set.

    Nothing is written before the dataset is known to be usable: a class
    without songs is refused before any decoding, a dataset whose splits lack
    a class after decoding before the run folder is made.

    Parameters
    ----------
    source : path-like
        A folder (``prog/``, ``nonprog/``, extra sets), a CSV, or a scanned manifest.
    run_dir : path-like
        The run folder (see the module's docstring).
    cache : path-like
        The feature cache.
    plan : FitPlan, optional
        Recipe, models and settings (default: the default recipe, every model).
    split_seed : int
        Seed of the song-level split when the source has to be scanned.
    resume : bool
        Continue an interrupted run in ``run_dir`` (settings must match).
    """
    hooks = hooks or Hooks()
    plan = plan or FitPlan()
    source, run_dir = Path(source), Path(run_dir)
    check_training_data(source)
    from progrock.training.fit import needs

    configs = needs(plan)
    config = _config(source, run_dir / "manifest.csv", plan, configs, cache=cache, split_seed=split_seed)
    if resume:
        _check_resume(run_dir, config)
    manifest = open_dataset(source, seed=split_seed, jobs=jobs, hooks=hooks)
    config["songs"] = manifest.digest(splits=True)
    if resume:
        _check_resume(run_dir, config)                # the songs, now that they are known
    for split in ("train", "validation"):
        labels = {s.label for s in manifest.usable(split)}
        if labels != set(CLASSES):
            raise DatasetError(f"{source}: the {split} split needs prog and nonprog songs, has {sorted(labels)}; "
                               "more songs are needed")
    warnings = split_warnings(manifest)
    for w in warnings:
        hooks.warn(w)
    data = song_features(manifest, configs, cache, jobs=jobs, hooks=hooks)
    run_dir.mkdir(parents=True, exist_ok=True)
    written = read_manifest(manifest.write(run_dir / "manifest.csv"))   # paths as the run folder names them
    data, manifest = _rebase(data, manifest, written), written
    atomic_write_json(run_dir / "config.json", config)
    run = fit_run(data, run_dir, plan, log=hooks.log, progress=hooks.epoch, member=hooks.member, resume=resume,
                  description={"trained_on": trained_on(source, manifest, configs), "recipe": plan.recipe})
    save_run(run_dir, run)
    run = load_run(run_dir)                       # what every later command will load
    evaluation = evaluate(run, {s: songs_of(data, s) for s in manifest.sets}, seed=plan.train_config.seed)
    evaluation.skipped = unreadable(manifest) + failed_songs(data) + evaluation.skipped
    if is_synthetic(Path(source), manifest):
        evaluation.notes = synthetic_notes(run, evaluation)
    report = write_outputs(run_dir, evaluation, run, manifest, config, data=data)
    return RunOutcome(run_dir, run, evaluation, report, failed=evaluation.skipped, warnings=warnings)


def _rebase(data: SongFeatures, old: Manifest, new: Manifest) -> SongFeatures:
    """``data``'s songs renamed as ``new`` (the same songs, written in the run folder) names them.

    Row by row, not by audio hash: two copies of one recording are two songs.
    """
    renamed = {o.path: n for o, n in zip(old.songs, new.songs)}
    data.songs = [renamed.get(s.path, s) for s in data.songs]
    data.failed = [(renamed.get(s.path, s), reason) for s, reason in data.failed]
    return data


def write_outputs(folder: Path, evaluation: Evaluation, run: Run, manifest: Manifest, config: dict, *,
                  data: SongFeatures | None = None, title: str = "progrock run report") -> Path:
    """``evaluation.json`` and ``report.html`` in ``folder``; with ``data``, the songs' structure timelines
    are drawn from their ``seed43`` features."""
    from progrock.report.html import write_report

    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "evaluation.json", evaluation.to_dict(), indent=1)
    timelines = song_timelines_of(evaluation, data, frame_rate=run.feature_config("seed43").frame_rate)
    return write_report(folder, evaluation, run=run, data_summary=summary(manifest), config=config,
                        timelines=timelines, title=title)


def song_timelines_of(evaluation: Evaluation, data: SongFeatures | None, *, frame_rate: float) -> dict | None:
    """The structure timelines of the songs ``evaluation`` judged, keyed as :func:`songs_of` names them
    (``None`` without ``seed43`` features)."""
    from progrock.report.structure import song_timelines

    if data is None or "seed43" not in data.features:
        return None
    judged = {r.path for by_model in evaluation.songs.values() for rows in by_model.values() for r in rows}
    named = {printable(s.path): x for s, x in zip(data.songs, data.features["seed43"])}
    return song_timelines({name: x for name, x in named.items() if name in judged}, frame_rate=frame_rate)


# ---------------------------------------------------------------------------------------------
# evaluate


def _own_manifest(run: Run) -> Path | None:
    if run.path is None:
        return None
    path = run.path.parent / "manifest.csv"
    return path if path.is_file() else None


def _copies(manifest: Manifest, run: Run) -> list[tuple[str, str]]:
    """Songs of new data whose decoded audio equals one of the run's training or validation songs."""
    own = _own_manifest(run)
    if own is None:
        return []
    seen = {s.audio_sha256: s.path for s in read_manifest(own).usable() if s.split in ("train", "validation")}
    return [(s.path, seen[s.audio_sha256]) for s in manifest.usable() if s.audio_sha256 in seen]  # raw paths


def evaluate_run(run_dir: str | os.PathLike, source: str | os.PathLike | None = None, *,
                 cache: str | os.PathLike | None = None, sets: list[str] | None = None,
                 models: list[str] | None = None, jobs: int = 1, hooks: Hooks | None = None,
                 report_dir: str | os.PathLike | None = None, write: bool = True) -> tuple[Evaluation, Path | None]:
    """Judge a run's models, as they were trained, on named sets.

    Parameters
    ----------
    run_dir : path-like
        A run folder (or ``musicnn``, see :func:`progrock.predict.open_run`).
    source : path-like, optional
        Data to judge (default: the run's own manifest and its splits). New
        data is never split again: a CSV's ``split`` column names its sets,
        extra set folders stay sets, and all other songs form one set named
        after the folder. Copies of the run's training songs found in it are
        listed and judged apart, in the set ``copies of training songs``.
    cache : path-like, optional
        The feature cache (default: the run's).
    sets, models : list of str, optional
        Which sets and models (default: all).
    report_dir : path-like, optional
        Where the report and ``evaluation.json`` go; by default a new folder
        ``RUN/evaluations/<sets>-<time>/``: an earlier result is never overwritten.
    write : bool
        Write the report at all.

    Returns
    -------
    (Evaluation, Path or None)
        The evaluation and the report's path.
    """
    from progrock.predict import open_run

    hooks = hooks or Hooks()
    run = open_run(run_dir)
    config = {}
    if run.path is not None and (run.path.parent / "config.json").is_file():
        config = json.loads((run.path.parent / "config.json").read_text())
    cache = cache or config.get("cache")
    if cache is None:
        raise ConfigError(f"{run_dir}: the run does not name its feature cache; pass one with --cache")
    own = _own_manifest(run)
    new_data = source is not None and (own is None or Path(source).resolve() != own.resolve())
    if source is None and own is None:
        raise ConfigError(f"{run_dir}: give the data to judge (this run has no manifest of its own)")
    manifest = open_dataset(source if new_data else own, jobs=jobs, hooks=hooks, split=not new_data)
    copies = _copies(manifest, run) if new_data else []
    for path, _ in copies:
        song = next(s for s in manifest.songs if s.path == path)
        song.split = "copies of training songs"
    wanted = sets or manifest.sets
    unknown = [s for s in wanted if s not in manifest.sets]
    if unknown:
        raise DatasetError(f"no set named {', '.join(unknown)} in the data; it has {', '.join(manifest.sets)}")
    data = song_features(manifest, run.needs(models), cache, jobs=jobs, hooks=hooks)
    evaluation = evaluate(run, {s: songs_of(data, s) for s in wanted}, models=models,
                          seed=config.get("training", {}).get("seed", 0))
    evaluation.skipped = unreadable(manifest) + failed_songs(data) + evaluation.skipped
    evaluation.copies = [(printable(p), printable(t)) for p, t in copies]
    if is_synthetic(Path(source) if new_data else own, manifest):
        evaluation.notes = synthetic_notes(run, evaluation)
    report = None
    if write:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        where = Path(report_dir) if report_dir else (
            Path(run.path).parent / "evaluations" / f"{'+'.join(wanted)}-{stamp}" if run.path else Path(f"evaluation-{stamp}"))
        report = write_outputs(where, evaluation, run, manifest, {"run": str(run_dir), "data": str(source or own),
                                                                 "sets": wanted, "run_config": config},
                               data=data, title="progrock evaluation")
    return evaluation, report


# ---------------------------------------------------------------------------------------------
# the demo


DEMO = dict(n_songs=160, epochs=300, batch_size=128, duration_scale=0.6, difficulty=0.3)
DEMO_QUICK = dict(n_songs=36, epochs=25, batch_size=32, duration_scale=0.25, difficulty=0.3)


def demo_run(out_dir: str | os.PathLike, *, n_songs: int = 160, epochs: int = 300, batch_size: int = 128,
             duration_scale: float = 0.6, difficulty: float = 0.3, seed: int = 0, jobs: int = 1,
             plan: FitPlan | None = None, hooks: Hooks | None = None) -> RunOutcome:
    """The demo: write the synthetic corpus (if not there yet), then :func:`train_run` on it.

    Writes ``OUT/corpus/`` (audio), ``OUT/cache/`` (features) and ``OUT/run/``.
    The batch is smaller than the seed's 1024 because the demo corpus is: the
    seed made about 11 Adam steps per epoch over 11,000 snippets, and a batch
    of 128 over the demo's ~1,500 training snippets keeps about that many.
    """
    from dataclasses import replace

    from progrock.corpus import generate_corpus, remove_corpus

    hooks = hooks or Hooks()
    out_dir = Path(out_dir)
    corpus_dir = out_dir / "corpus"
    settings = {"n_songs": n_songs, "seed": seed, "difficulty": difficulty, "duration_scale": duration_scale}
    stamp = corpus_dir / "demo-settings.json"
    if not (stamp.exists() and json.loads(stamp.read_text()) == settings):
        remove_corpus(corpus_dir)  # a demo corpus of other settings is replaced, not mixed in
        hooks.log(f"writing the demo corpus: {n_songs} songs")
        if hooks.corpus_total:
            hooks.corpus_total(n_songs)
        generate_corpus(corpus_dir, jobs=jobs, progress=hooks.corpus, **settings)
        atomic_write_json(stamp, settings)
    plan = plan or FitPlan()
    plan = replace(plan, train_config=replace(plan.train_config, epochs=epochs, seed=seed, batch_size=batch_size))
    return train_run(corpus_dir, out_dir / "run", cache=out_dir / "cache", plan=plan, split_seed=seed,
                     jobs=jobs, hooks=hooks)

