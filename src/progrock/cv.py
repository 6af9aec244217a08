"""Cross-validation: every model of a recipe judged on every song, out of fold, with intervals.

``progrock cv DATA --folds K --repeats R --out DIR``:

1. the songs are dealt into ``K`` folds per repeat, stratified by label, with
   copies of one recording (the groups ``scan`` found) always in one fold;
2. for each fold, a run is trained on the other folds exactly as ``progrock
   train`` would (every model, the recipe's CNN; an inner validation split of
   those songs chooses thresholds and stops training — never a test song)
   and saved in ``DIR/r<repeat>-fold<k>/``; then it judges the fold's songs;
3. every song thus gets one out-of-fold verdict per model and repeat. Per
   model: song balanced accuracy, MCC and ROC-AUC with 95 % bootstrap
   intervals over the songs (over repeats, the mean), and every model
   against the CNN by a paired bootstrap interval of the difference.

Features are computed once (through the cache). Each fold's results are
written as it ends (``oof.json``), so an interrupted ``cv`` resumes with the
folds still missing; folds run in parallel on the engines (``--jobs``: that
many folds at once, each on one thread).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from progrock.atomic import atomic_write_json
from progrock.constants import CLASSES
from progrock.data.manifest import Manifest, assign_splits, read_manifest
from progrock.errors import ConfigError, DatasetError
from progrock.evaluation.evaluate import Evaluation, model_metrics
from progrock.evaluation.intervals import RESAMPLES, balanced_accuracy, mcc, paired_difference, roc_auc
from progrock.evaluation.verdict import SongResult
from progrock.features.sets import FeatureConfig
from progrock.paths import printable
from progrock.training.fit import FitPlan

INNER_VALIDATION = 0.15
"""Share of each fold's training songs kept for validation (thresholds, early stopping)."""


@dataclass
class CVOutcome:
    """What :func:`cross_validate` gives."""

    out_dir: Path
    evaluation: Evaluation
    report: Path
    folds: list[str] = field(default_factory=list)


def fold_assignment(manifest: Manifest, *, folds: int, seed: int) -> dict[str, int]:
    """A fold per song path, stratified by label, copies of a recording (one group) in one fold."""
    groups: dict[tuple, list] = {}
    for s in manifest.usable():
        if s.label in CLASSES:              # a song without a known group is a recording of its own
            groups.setdefault((0, s.group, "") if s.group >= 0 else (1, -1, s.path), []).append(s)
    rng = np.random.default_rng(seed)
    out = {}
    for label in CLASSES:
        ids = [g for g, ss in sorted(groups.items()) if ss[0].label == label]
        if len(ids) < folds:
            raise DatasetError(f"{len(ids)} {label} recordings cannot fill {folds} folds; use fewer --folds")
        for i, j in enumerate(rng.permutation(len(ids))):
            for s in groups[ids[j]]:
                out[s.path] = i % folds
    return out


def _fold_manifest(manifest: Manifest, fold_of: dict[str, int], k: int, seed: int) -> Manifest:
    """The songs with fold ``k`` as ``test`` and the others split into train / validation."""
    songs = []
    for s in manifest.usable():
        if s.path not in fold_of:
            continue
        songs.append(replace(s, split="test" if fold_of[s.path] == k else ""))
    assign_splits(songs, seed=seed, fractions=(1 - INNER_VALIDATION, INNER_VALIDATION, 0.0))
    return Manifest(songs=songs, root=manifest.root)


def _source_name(path: str, root: Path, names_root: str) -> str:
    """A fold manifest's song path (relative to the fold's folder) as the source manifest names it."""
    if Path(path).is_absolute():
        return printable(path)
    return printable(Path(os.path.relpath(os.path.normpath(root / path), names_root)).as_posix())


def _fold_job(args: tuple) -> dict:
    """Train one fold's run and judge its test songs (in a worker; the same function for every engine).

    ``args``: the fold folder, the fold's manifest path, the cache folder, the plan (as JSON), threads,
    and the folder the songs' names are relative to (the source manifest's, so every fold names a song
    as a run on the whole data would). Writes ``oof.json`` (the fold's song results per model) last, so
    a fold with it is complete.
    """
    from progrock.model.run import load_run, save_run
    from progrock.training.fit import fit_run
    from progrock.workflow import song_features, songs_of, trained_on

    fold_dir, manifest_path, cache, plan_json, threads, names_root = args
    fold_dir = Path(fold_dir)
    plan = plan_from_json(plan_json)
    plan = replace(plan, train_config=replace(plan.train_config, num_threads=threads))
    manifest = read_manifest(manifest_path)
    from progrock.training.fit import needs

    data = song_features(manifest, needs(plan), cache)
    run = fit_run(data, fold_dir, plan, log=lambda _line: None,
                  description={"trained_on": trained_on(Path(manifest_path), manifest, needs(plan)),
                               "recipe": plan.recipe, "cross_validation_fold": fold_dir.name})
    save_run(fold_dir, run)
    run = load_run(fold_dir)
    judged = run.judge(songs_of(data, "test"))
    name = {printable(s.path): _source_name(s.path, manifest.root, names_root) for s in manifest.songs}
    atomic_write_json(fold_dir / "oof.json", {
        "default_model": run.default_model,
        "titles": {m: e.title for m, e in run.entries.items()},
        "results": {m: [{**r.to_dict(), "path": name[r.path]} for r in rows] for m, rows in judged.results.items()},
        "skipped": [(name.get(p, p), reason) for p, reason in judged.skipped]})
    return {"fold": fold_dir.name, "default_model": run.default_model}


def plan_to_json(plan: FitPlan) -> dict:
    return {"recipe": plan.recipe, "models": list(plan.models), "folds": plan.folds, "patience": plan.patience,
            "train_config": plan.train_config.to_dict(), "model_config": plan.model_config.to_dict(),
            "snippet_config": plan.run_snippets().to_dict()}


def plan_from_json(d: dict) -> FitPlan:
    from progrock.data.snippets import SnippetConfig
    from progrock.model.network import ModelConfig
    from progrock.training.config import TrainConfig

    return FitPlan(recipe=d["recipe"], models=tuple(d["models"]), folds=d["folds"], patience=d["patience"],
                   train_config=TrainConfig.from_dict(d["train_config"]),
                   model_config=ModelConfig.from_dict(d["model_config"]),
                   snippet_config=SnippetConfig.from_dict(d["snippet_config"]))


def _result(d: dict) -> SongResult:
    d = {k: v for k, v in d.items() if k != "correct"}
    return SongResult(**d)


def cross_validate(source: str | os.PathLike, out_dir: str | os.PathLike, *, cache: str | os.PathLike,
                   folds: int = 5, repeats: int = 1, plan: FitPlan | None = None, seed: int = 0, jobs: int = 1,
                   hooks=None) -> CVOutcome:
    """Cross-validate every model of ``plan`` on ``source`` (see the module's docstring).

    Parameters
    ----------
    source : path-like
        A folder or manifest of labelled songs (its splits are ignored).
    out_dir : path-like
        Where each fold's run, ``cv.json`` and ``report.html`` go.
    folds, repeats : int
        ``K`` folds, dealt ``R`` times with different seeds.
    jobs : int
        Folds trained at once (each on one thread when more than one).
    """
    from progrock.parallel.engines import LocalEngine
    from progrock.training.fit import needs
    from progrock.workflow import Hooks, check_training_data, open_dataset, song_features, song_timelines_of

    hooks = hooks or Hooks()
    plan = plan or FitPlan()
    if folds < 2 or repeats < 1:
        raise ConfigError(f"cross-validation needs at least 2 folds and 1 repeat, got {folds} and {repeats}")
    out_dir = Path(out_dir)
    check_training_data(source)
    manifest = open_dataset(source, seed=seed, jobs=jobs, hooks=hooks)
    config = {"source": str(source), "folds": folds, "repeats": repeats, "seed": seed, "plan": plan_to_json(plan),
              "songs": manifest.digest()}
    _check_settings(out_dir, config)
    planned = []                                # every fold's songs, checked before any work is done
    for r in range(repeats):
        fold_of = fold_assignment(manifest, folds=folds, seed=seed + 1000 * r)
        for k in range(folds):
            fold = _fold_manifest(manifest, fold_of, k, seed=seed + 1000 * r + k)
            _check_fold(fold, k, folds)
            planned.append((out_dir / f"r{r + 1}-fold{k + 1}", fold))
    data = song_features(manifest, needs(plan), cache, jobs=jobs, hooks=hooks)   # every feature once, into the cache
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "cv.json", {"config": config})
    tasks = []
    for fold_dir, fold in planned:
        if (fold_dir / "oof.json").is_file():
            continue
        fold_dir.mkdir(parents=True, exist_ok=True)
        path = fold.write(fold_dir / "fold-manifest.csv")
        tasks.append((str(fold_dir), str(path), str(Path(cache).resolve()), plan_to_json(plan),
                      1 if jobs > 1 else None, str(manifest.root)))
    engine = LocalEngine(min(jobs, max(1, len(tasks))))
    done = folds * repeats - len(tasks)
    if hooks.fold:
        hooks.fold(done, folds * repeats)
    for _i, _summary in engine.map_unordered(_fold_job, tasks):
        done += 1
        hooks.log(f"fold {done} of {folds * repeats} done")
        if hooks.fold:
            hooks.fold(done, folds * repeats)
    evaluation = collect(out_dir, folds=folds, repeats=repeats, seed=seed)
    atomic_write_json(out_dir / "cv.json", {"config": config, **evaluation.to_dict(songs=False)})
    from progrock.report.html import write_report

    timelines = song_timelines_of(evaluation, data, frame_rate=FeatureConfig.named("seed43").frame_rate)
    report = write_report(out_dir, evaluation, data_summary=[], config=config,
                          title="progrock cross-validation", timelines=timelines)
    return CVOutcome(out_dir, evaluation, report, folds=[t[0] for t in tasks])


def _check_settings(out_dir: Path, config: dict) -> None:
    """A folder of an earlier cv is resumed only with the same settings and the same songs."""
    path = out_dir / "cv.json"
    if path.is_file():
        old = json.loads(path.read_text()).get("config")
        if old is not None and old != config:
            what = "other songs" if {**old, "songs": None} == {**config, "songs": None} else "other settings"
            raise ConfigError(f"{out_dir} holds a cross-validation of {what} (its finished folds would not fit "
                              "these); choose another --out")


def _check_fold(fold: Manifest, k: int, folds: int) -> None:
    """A fold's inner split must hold both classes in train and validation, else its run cannot be trained."""
    for split in ("train", "validation"):
        have = {s.label for s in fold.usable(split)}
        if have != set(CLASSES):
            counts = {c: len({s.group if s.group >= 0 else s.path for s in fold.songs if s.label == c})
                      for c in CLASSES}
            raise DatasetError(f"fold {k + 1} of {folds} leaves no {', '.join(sorted(set(CLASSES) - have))} song "
                               f"for its {split} split ({counts['prog']} prog and {counts['nonprog']} nonprog "
                               "recordings in all): add songs, or use fewer --folds")


def collect(out_dir: Path, *, folds: int, repeats: int, seed: int = 0) -> Evaluation:
    """Every fold's out-of-fold results, as one :class:`Evaluation` with the set ``out-of-fold``.

    With repeats, each metric and interval is the mean over repeats (the songs resampled alike).
    """
    from progrock.training.fit import PREFERENCE

    per_repeat: list[dict[str, list[SongResult]]] = []
    defaults, skipped, titles = [], {}, {}
    for r in range(repeats):
        merged: dict[str, list[SongResult]] = {}
        for k in range(folds):
            data = json.loads((out_dir / f"r{r + 1}-fold{k + 1}" / "oof.json").read_text())
            defaults.append(data["default_model"])
            titles.update(data.get("titles", {}))             # the folds' own titles (the recipe names the rule)
            skipped.update((path, reason) for path, reason in data.get("skipped", []))
            for m, rows in data["results"].items():
                merged.setdefault(m, []).extend(_result(d) for d in rows)
        for rows in merged.values():
            rows.sort(key=lambda x: x.path)
        per_repeat.append(merged)
    models = list(per_repeat[0])
    most = max(defaults.count(m) for m in defaults)              # the folds' most frequent default; ties: PREFERENCE
    default = next(m for m in [*PREFERENCE, *sorted(set(defaults))] if m in defaults and defaults.count(m) == most)
    ev = Evaluation(default_model=default, titles={m: titles.get(m) or _title(m) for m in models},
                    skipped=sorted(skipped.items()))
    first = per_repeat[0]
    ev.songs["out-of-fold"] = first
    metrics = {m: model_metrics(first[m], seed=seed) for m in models}
    if repeats > 1:
        for m in models:
            metrics[m]["intervals"] = _repeated_intervals([rep[m] for rep in per_repeat], seed=seed)
            metrics[m]["repeats"] = repeats
    ev.metrics["out-of-fold"] = metrics
    ev.comparisons["out-of-fold"] = _compare(per_repeat, seed=seed)
    return ev


def _title(model: str) -> str:
    """A model's title where a fold did not record it (folds written before they did)."""
    from progrock.training.fit import TITLES

    return TITLES.get(model, model)


def _arrays(rows: list[SongResult]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.array([CLASSES.index(r.truth) for r in rows], dtype=np.int64)
    return y, np.array([r.is_prog for r in rows], dtype=np.int64), np.array([r.probability for r in rows])


def _repeated_intervals(repeats: list[list[SongResult]], *, seed: int) -> dict:
    """Each metric's mean over the repeats, and its bootstrap interval (the songs resampled alike in every repeat)."""
    ys, preds, probs = zip(*(_arrays(rows) for rows in repeats))
    y = ys[0]
    idx = np.random.default_rng(seed).integers(0, len(y), size=(RESAMPLES, len(y)))
    out = {}
    for name, fn, use_prob in (("balanced_accuracy", balanced_accuracy, False), ("mcc", mcc, False),
                               ("roc_auc", roc_auc, True)):
        values = [fn(y[None], (pr if use_prob else p)[None])[0] for p, pr in zip(preds, probs)]
        boot = np.mean([fn(y[idx], (pr if use_prob else p)[idx]) for p, pr in zip(preds, probs)], axis=0)
        boot = boot[np.isfinite(boot)]
        lo, hi = np.percentile(boot, [2.5, 97.5]) if boot.size else (None, None)
        out[name] = {"value": float(np.mean(values)), "low": None if lo is None else float(lo),
                     "high": None if hi is None else float(hi), "n": int(len(y))}
    return out


def _compare(per_repeat: list[dict[str, list[SongResult]]], *, seed: int) -> dict[str, dict]:
    """Each model against the CNN over the out-of-fold songs of the first repeat, paired."""
    first = per_repeat[0]
    if "cnn" not in first:
        return {}
    y, ref, _ = _arrays(first["cnn"])
    return {m: paired_difference(y, _arrays(rows)[1], ref, seed=seed) for m, rows in first.items() if m != "cnn"}
