"""How well every model judges music it never heard: train on one corpus, judge a corpus of another seed.

The protocol of issues 15 and 16: a demo corpus generated with one seed
(``--songs`` songs, split into train and validation only: ``--validation``
of them for validation), every model trained by ``progrock train``'s recipe,
then a second corpus from *another* seed (``--judged`` songs, none of them
ever seen) judged whole with ``progrock evaluate RUN NEWDATA``. Printed per
model: song balanced accuracy with its 95 % interval over the judged songs,
ROC-AUC, and the paired comparison with the CNN.

Seeds used while developing must not be the seeds of the final check: pass
the final seeds only once, at the end (see BENCHMARKS.md for which were used).

    .venv/bin/python benchmarks/bench_generalisation.py --train-seed 41 --test-seed 42 --out /tmp/gen

The corpora and the cache are kept under ``--out`` (generated once per seed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def corpus(root: Path, *, seed: int, n_songs: int, difficulty: float, duration_scale: float, jobs: int) -> Path:
    from progrock.corpus import generate_corpus

    folder = root / f"corpus-seed{seed}-n{n_songs}-d{difficulty}-s{duration_scale}"
    if not (folder / "corpus.json").is_file():
        generate_corpus(folder, n_songs=n_songs, seed=seed, difficulty=difficulty, duration_scale=duration_scale,
                        jobs=jobs)
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-seed", type=int, required=True)
    p.add_argument("--test-seed", type=int, required=True)
    p.add_argument("--songs", type=int, default=120, help="songs of the training corpus (train + validation)")
    p.add_argument("--validation", type=float, default=0.25, help="share of them for validation")
    p.add_argument("--judged", type=int, default=80, help="songs of the judged corpus")
    p.add_argument("--difficulty", type=float, default=0.3)
    p.add_argument("--duration-scale", type=float, default=0.6)
    p.add_argument("--recipe", choices=("default", "seed"), default="default")
    p.add_argument("--models", default=None, help="comma-separated models (default: all)")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--patience", type=int, default=None, help="early stopping's patience (default: the recipe's)")
    p.add_argument("--ensemble", type=int, default=None, help="networks of the default recipe's ensemble")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    from dataclasses import replace

    from progrock.data.manifest import scan
    from progrock.training.config import TrainConfig
    from progrock.training.fit import FitPlan
    from progrock.workflow import evaluate_run, train_run

    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    train_corpus = corpus(args.out, seed=args.train_seed, n_songs=args.songs, difficulty=args.difficulty,
                          duration_scale=args.duration_scale, jobs=args.jobs)
    judged = corpus(args.out, seed=args.test_seed, n_songs=args.judged, difficulty=args.difficulty,
                    duration_scale=args.duration_scale, jobs=args.jobs)
    manifest = scan(train_corpus, seed=args.train_seed, fractions=(1 - args.validation, args.validation, 0.0),
                    jobs=args.jobs).write(args.out / f"train-{args.train_seed}.csv")
    plan = FitPlan(recipe=args.recipe, train_config=TrainConfig(epochs=args.epochs, batch_size=args.batch_size,
                                                                seed=args.train_seed))
    if args.models:
        plan = replace(plan, models=tuple(args.models.split(",")))
    if args.patience is not None:
        plan = replace(plan, patience=args.patience)
    if args.ensemble is not None:
        plan = replace(plan, folds=args.ensemble)
    run_dir = args.out / f"run-{args.recipe}-{args.train_seed}"
    cache = args.out / "cache"
    t1 = time.time()
    train_run(manifest, run_dir, cache=cache, plan=plan, jobs=args.jobs)
    t2 = time.time()
    evaluation, report = evaluate_run(run_dir, judged, cache=cache, jobs=args.jobs,
                                      report_dir=args.out / f"judged-{args.test_seed}-by-{run_dir.name}")
    t3 = time.time()
    name = next(iter(evaluation.metrics))
    print(f"\ntrained on seed {args.train_seed} ({args.songs} songs, {args.validation:.0%} validation), judged "
          f"{args.judged} songs of seed {args.test_seed}; recipe {args.recipe}; difficulty {args.difficulty}; "
          f"corpora {t1 - t0:.0f} s, training {t2 - t1:.0f} s, judging {t3 - t2:.0f} s; load {os.getloadavg()[0]:.1f}")
    print("| model | songs | balanced accuracy [95 %] | ROC-AUC | vs cnn (paired) |\n|---|---:|---:|---:|---|")
    from progrock.evaluation.intervals import format_interval

    for model, m in evaluation.metrics[name].items():
        if model == "cnn_snippet":
            continue
        c = evaluation.comparisons[name].get(model)
        vs = "" if c is None else f"{c['value']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}] {c['verdict']}"
        print(f"| {model} | {m['n']} | {format_interval(m['intervals']['balanced_accuracy'])} | "
              f"{(m.get('roc_auc') or float('nan')):.3f} | {vs} |")
    print(f"default model: {evaluation.default_model}; report: {report}")
    (args.out / f"result-{args.recipe}-{args.train_seed}-{args.test_seed}.json").write_text(
        json.dumps(evaluation.to_dict(songs=False), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
