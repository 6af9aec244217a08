"""The sub-commands: each parses its options, calls one library function and prints."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from progrock.cli import (_on_interrupt, cache_option, cli, console, engine_options,
                              feature_set_option, jobs_option, meter, open_cache, open_engine, out,
                              print_failures, usable_jobs)
from progrock.cli.output import print_evaluation, print_result
from progrock.cli.progress import Meters
from progrock.errors import ProgrockError

MODEL_NAMES = ("cnn", "cnn_mean", "logreg", "extratrees", "structure", "musicnn", "musicnn_head")


def _models(text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in names if m not in MODEL_NAMES]
    if unknown:
        raise click.BadParameter(f"unknown model {', '.join(unknown)}; choose from {', '.join(MODEL_NAMES)}",
                                 param_hint="--models")
    return names


@cli.command()
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--songs", "n_songs", type=click.IntRange(min=1), default=60, show_default=True, help="Number of songs.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--difficulty", type=click.FloatRange(0, 1), default=0.3, show_default=True,
              help="0 = textbook classes; 1 = heavy overlap and more flipped labels.")
@click.option("--prog-fraction", type=click.FloatRange(0, 1), default=0.3, show_default=True)
@click.option("--duration-scale", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Multiplies song lengths (0.2 gives short songs for quick runs).")
@click.option("--formats", default="mp3,flac,ogg,opus,wav,aiff,m4a", show_default=True,
              help="Comma-separated formats, mixed over the songs.")
@click.option("--overwrite", is_flag=True, help="Replace a corpus already in OUT_DIR.")
@jobs_option
def corpus(out_dir: Path, n_songs: int, seed: int, difficulty: float, prog_fraction: float,
           duration_scale: float, formats: str, overwrite: bool, jobs: int | None) -> None:
    """Write a synthetic demo corpus to OUT_DIR (prog/ and nonprog/ folders)."""
    from progrock.corpus import generate_corpus, remove_corpus

    if any((out_dir / name).exists() for name in ("prog", "nonprog", "corpus.json")):
        if not overwrite:
            raise ProgrockError(f"{out_dir} already holds a corpus (prog/, nonprog/ or corpus.json); "
                                "pass --overwrite to replace it")
        remove_corpus(out_dir)
    with meter(console, "synthesising", n_songs) as advance:
        songs = generate_corpus(out_dir, n_songs=n_songs, seed=seed, difficulty=difficulty,
                                prog_fraction=prog_fraction, duration_scale=duration_scale,
                                formats=tuple(f.strip() for f in formats.split(",") if f.strip()),
                                jobs=usable_jobs(jobs), progress=advance)
    n_prog = sum(1 for s in songs if s.get("label") == "prog")
    out.print(f"wrote {len(songs)} songs ({n_prog} prog, {len(songs) - n_prog} nonprog) to {out_dir}")


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--out", "out_path", type=click.Path(path_type=Path), default=None,
              help="Manifest to write (default: SOURCE/manifest.csv, or NAME.manifest.csv beside a CSV).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split.")
@click.option("--split", "fractions", default="0.7,0.15,0.15", show_default=True,
              help="Train, validation and test shares.")
@jobs_option
def scan(source: Path, out_path: Path | None, seed: int, fractions: str, jobs: int | None) -> None:
    """Read a folder (prog/, nonprog/, extra sets) or CSV and write a manifest with splits."""
    from rich.table import Table

    from progrock.data.manifest import scan as scan_songs, summary

    try:
        shares = tuple(float(x) for x in fractions.split(","))
    except ValueError:
        raise click.BadParameter(f"takes three numbers like 0.7,0.15,0.15, got {fractions!r}",
                                 param_hint="--split") from None
    if len(shares) != 3:
        raise click.BadParameter(f"takes three numbers like 0.7,0.15,0.15, got {fractions!r}", param_hint="--split")
    with meter(console, "decoding") as advance:
        manifest = scan_songs(source, seed=seed, fractions=shares, jobs=usable_jobs(jobs),
                              progress=advance, on_total=advance.set_total)
    if out_path is None:
        out_path = source / "manifest.csv" if source.is_dir() else source.with_suffix(".manifest.csv")
    manifest.write(out_path)
    table = Table(title=f"{out_path}")
    for col in ("set", "label", "songs", "hours"):
        table.add_column(col, justify="right" if col in ("songs", "hours") else "left")
    for row in summary(manifest):
        table.add_row(row["set"], row["label"], str(row["songs"]), f"{row['hours']:.2f}")
    out.print(table)
    failures = [(s.path, s.error) for s in manifest.songs if s.error]
    print_failures(failures, "not in any split")
    if failures:
        raise SystemExit(1)


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@cache_option
@feature_set_option
@jobs_option
@engine_options
def features(source: Path, cache: Path | None, feature_set: str, jobs: int | None, engine: str,
             scheduler: str | None) -> None:
    """Compute and cache features of a folder's audio files or a manifest's songs."""
    from progrock.audio import find_audio_files
    from progrock.data.manifest import read_manifest
    from progrock.features import FeatureConfig
    from progrock.features.files import features_from_files

    store = open_cache(cache).store(FeatureConfig.named(feature_set))
    unreadable: list[tuple[str, str]] = []        # folders that cannot be read: listed, the walk goes on
    if source.is_dir():
        paths, hashes = find_audio_files(source, skipped=unreadable), None
    elif source.is_file():
        manifest = read_manifest(source)
        songs = [s for s in manifest.songs if not s.error]
        paths, hashes = [manifest.resolve(s) for s in songs], [s.audio_sha256 for s in songs]
    else:
        raise ProgrockError(f"{source}: no such folder or manifest")
    done = []
    _on_interrupt.append("every song finished is in the cache: run the same command again to compute the rest")
    with open_engine(engine, scheduler, jobs) as runner, meter(console, f"features ({feature_set})", len(paths)) as advance:
        results = features_from_files(paths, store, known_hashes=hashes, engine=runner,
                                      progress=lambda r: (done.append(r), advance()))
    counts = {k: sum(r.status == k for r in results) for k in ("computed", "cached", "failed")}
    out.print(f"{len(results)} files: {counts['computed']} computed, {counts['cached']} cached, "
              f"{counts['failed']} failed  ->  {store.folder}")
    print_failures(unreadable + [(r.path, r.error) for r in results if r.status == "failed"])
    if counts["failed"] or unreadable:
        raise SystemExit(1)


@contextmanager
def run_hooks(epochs: int | None = None):
    """Workflow hooks drawing progress (bars on a terminal, lines otherwise) for every stage."""
    import os

    from progrock.workflow import Hooks

    with Meters(console) as m:
        member = {"k": 1, "n": 1}

        def on_member(k: int, n: int) -> None:
            member.update(k=k, n=n)

        def on_epoch(epoch: int, record: dict) -> None:
            name = "training" if member["n"] == 1 else f"training cnn {member['k']}/{member['n']}"
            info = (f"loss {record.get('loss_train', float('nan')):.3f}/{record.get('loss_validation', float('nan')):.3f}"
                    f"  song bal.acc {record.get('balanced_accuracy_song_validation', float('nan')):.3f}")
            m.update(name, epoch, total=epochs, info=info)

        yield Hooks(
            log=lambda line: console.print(f"[dim]{line}[/dim]") if os.environ.get("PROGROCK_VERBOSE") else None,
            warn=lambda line: console.print(f"[yellow]warning:[/yellow] {line}"),
            corpus=m.counter("synthesising"), corpus_total=lambda n: m.update("synthesising", total=n),
            scan=m.counter("decoding"), scan_total=lambda n: m.update("decoding", total=n),
            features=lambda _res: m.update("features", advance=1),
            features_total=lambda n: m.update("features", 0, total=n),
            epoch=on_epoch, member=on_member, fold=lambda done, n: m.update("folds", done, total=n))


def _plan(recipe: str, models: str | None, folds: int, epochs: int, batch_size: int, lr: float, seed: int,
          class_weight: str, patience: int | None, freeze_normalisation: bool):
    from dataclasses import replace

    from progrock.data.snippets import SnippetConfig
    from progrock.model.network import ModelConfig
    from progrock.training.config import TrainConfig
    from progrock.training.fit import FitPlan

    snippet = SnippetConfig()
    train = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, class_weight=class_weight)
    plan = FitPlan(recipe=recipe, train_config=train, folds=folds, snippet_config=snippet, patience=patience,
                   model_config=ModelConfig(n_frames=snippet.length, trainable_normalisation=not freeze_normalisation))
    return replace(plan, models=_models(models) or plan.models)


@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", "run_dir", type=click.Path(path_type=Path), required=True, help="Run folder to write.")
@click.option("--recipe", type=click.Choice(["default", "seed"]), default="default", show_default=True,
              help="default: snippets drawn afresh each epoch, early stopping on validation loss, an ensemble "
                   "of --folds networks; seed: the course project's exact recipe (one network, 300 epochs).")
@click.option("--models", default=None, metavar="LIST",
              help=f"Comma-separated models to train (default: all of {', '.join(MODEL_NAMES)}).")
@click.option("--folds", "--ensemble", "folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Networks in the default recipe's ensemble (folds of the training songs).")
@click.option("--epochs", type=click.IntRange(min=1), default=300, show_default=True, help="At most this many.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1024, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True, max=10), default=1e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the training.")
@click.option("--split-seed", type=int, default=0, show_default=True, help="Seed of the split when DATA is scanned.")
@click.option("--class-weight", type=click.Choice(["balanced", "none"]), default="balanced", show_default=True)
@click.option("--patience", type=click.IntRange(min=1), default=None,
              help="Epochs without a better validation epoch before stopping (default: the recipe's: "
                   "30 for default, none for seed).")
@click.option("--freeze-normalisation", is_flag=True, help="Keep the feature normalisation fixed.")
@click.option("--resume", is_flag=True, help="Continue an interrupted training in --out.")
@cache_option
@jobs_option
def train(data: Path, run_dir: Path, recipe: str, models: str | None, folds: int, epochs: int, batch_size: int,
          lr: float, seed: int, split_seed: int, class_weight: str, patience: int | None,
          freeze_normalisation: bool, resume: bool, cache: Path | None, jobs: int | None) -> None:
    """Train every model on DATA's train split (folder, CSV or manifest) and judge them on every set."""
    from progrock.workflow import train_run

    plan = _plan(recipe, models, folds, epochs, batch_size, lr, seed, class_weight, patience, freeze_normalisation)
    store = open_cache(cache)
    _on_interrupt.append(f"the features computed are cached; `progrock train ... --out {run_dir} --resume` "
                         "continues the training where it stopped")
    with run_hooks(epochs) as hooks:
        outcome = train_run(data, run_dir, cache=store.root, plan=plan, split_seed=split_seed,
                            jobs=usable_jobs(jobs), resume=resume, hooks=hooks)
    _trained(outcome)


def _trained(outcome) -> None:
    run = outcome.run
    for m in run.description.get("cnn_members", []):
        early = ", stopped early" if m["stopped_early"] else ""
        out.print(f"CNN member {m['member']}: best epoch {m['best_epoch']} of {m['epochs_run']}{early} "
                  f"({m['songs']} training songs)")
    chosen_by = run.description.get("validation", {}).get("chosen_by", "balanced accuracy on the validation songs")
    out.print(f"default model: {run.default_model} (best {chosen_by})")
    print_evaluation(outcome.evaluation)
    print_failures(outcome.failed)
    out.print(f"\nrun:         {outcome.run_dir.resolve()}\nreport:      {outcome.report.resolve()}\n"
              f"tensorboard: progrock tensorboard {outcome.run_dir}")
    if outcome.failed:
        raise SystemExit(1)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path), required=False)
@click.option("--set", "sets", multiple=True, help="Set(s) to judge (default: all the data has).")
@click.option("--models", default=None, metavar="LIST", help="Comma-separated models (default: all the run's).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
@click.option("--report", "report_dir", type=click.Path(path_type=Path), default=None,
              help="Folder for the report and evaluation.json (default: a new RUN/evaluations/<sets>-<time>/; "
                   "nothing earlier is overwritten).")
@click.option("--cache", type=click.Path(path_type=Path), default=None,
              help="Feature cache (default: the one the run was trained with).")
@jobs_option
def evaluate(run_dir: Path, data: Path | None, sets: tuple[str, ...], models: str | None, as_json: bool,
             report_dir: Path | None, cache: Path | None, jobs: int | None) -> None:
    """Judge RUN_DIR's models, as trained, on DATA (default: the run's own sets).

    New data is judged as it is: never split again, never used to refit
    anything; copies of the run's training songs are listed and judged apart.
    """
    from progrock.workflow import evaluate_run

    if cache is not None:
        open_cache(cache)
    with run_hooks() as hooks:
        evaluation, report = evaluate_run(run_dir, data, cache=cache, sets=list(sets) or None,
                                          models=list(_models(models) or []) or None, jobs=usable_jobs(jobs),
                                          hooks=hooks, report_dir=report_dir, write=not as_json)
    if as_json:
        click.echo(json.dumps(evaluation.to_dict(songs=False)["sets"], indent=2))
    else:
        print_evaluation(evaluation)
        if report is not None:
            out.print(f"\nreport: {report.resolve()}")
    for path, training in evaluation.copies:
        console.print(f"[yellow]copy of a training song[/yellow] (judged apart): {path} = {training}")
    print_failures(evaluation.skipped)
    if evaluation.skipped:
        raise SystemExit(1)


@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Folder for every fold's run, cv.json and report.html (rerun to resume).")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=1, show_default=True,
              help="Deal the folds this many times with different seeds; figures are the mean.")
@click.option("--recipe", type=click.Choice(["default", "seed"]), default="default", show_default=True)
@click.option("--models", default=None, metavar="LIST", help="Comma-separated models (default: all).")
@click.option("--epochs", type=click.IntRange(min=1), default=300, show_default=True, help="At most this many.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1024, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the folds and the training.")
@click.option("--inner-folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Networks in each fold's ensemble (the default recipe).")
@cache_option
@jobs_option
def cv(data: Path, out_dir: Path, folds: int, repeats: int, recipe: str, models: str | None, epochs: int,
       batch_size: int, seed: int, inner_folds: int, cache: Path | None, jobs: int | None) -> None:
    """Cross-validate every model on DATA: out-of-fold verdicts for every song, figures with 95 % intervals.

    Each fold's run is trained as `progrock train` would train it, with its
    thresholds chosen on an inner validation split, never on the fold's songs.
    """
    from progrock.cv import cross_validate

    plan = _plan(recipe, models, inner_folds, epochs, batch_size, 1e-3, seed, "balanced", None, False)
    store = open_cache(cache)
    _on_interrupt.append(f"every finished fold is kept in {out_dir}; run the same command again to continue")
    with run_hooks() as hooks:
        outcome = cross_validate(data, out_dir, cache=store.root, folds=folds, repeats=repeats, plan=plan,
                                 seed=seed, jobs=usable_jobs(jobs), hooks=hooks)
    print_evaluation(outcome.evaluation)
    out.print(f"\nreport: {outcome.report.resolve()}")


@cli.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("demo"), show_default=True)
@click.option("--quick", is_flag=True, help="A small corpus and few epochs (about a minute; for CI).")
@click.option("--songs", "n_songs", type=click.IntRange(min=10), default=None, help="Corpus size (default 160, quick 36).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs at most (default 300, quick 25).")
@click.option("--seed", type=int, default=0, show_default=True)
@jobs_option
def demo(out_dir: Path, quick: bool, n_songs: int | None, epochs: int | None, seed: int, jobs: int | None) -> None:
    """Corpus → scan → features → train → evaluate → report, on the built-in demo corpus."""
    from progrock.workflow import DEMO, DEMO_QUICK, demo_run

    settings = dict(DEMO_QUICK if quick else DEMO)
    settings.update({k: v for k, v in (("n_songs", n_songs), ("epochs", epochs)) if v is not None})
    with run_hooks(settings["epochs"]) as hooks:
        outcome = demo_run(out_dir, seed=seed, jobs=usable_jobs(jobs), hooks=hooks, **settings)
    _trained(outcome)


def _barcode_name(path: str, used: set[str]) -> str:
    """A PNG name for a song's barcode, unique within one output folder and traceable to the song:
    its folder and file name, ``/`` replaced, numbered on a clash."""
    p = Path(path)
    base = "__".join(part for part in (p.parent.name, p.name) if part).replace("/", "_")
    name, k = f"{base}.png", 2
    while name in used:
        name, k = f"{base}.{k}.png", k + 1
    used.add(name)
    return name


@cli.command()
@click.argument("run_dir", metavar="RUN")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", default=None, help="Which of the run's models gives the verdict (default: the run's "
                                            "best on validation; see `progrock evaluate`).")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Use this threshold instead of the model's own (on snippets for a vote, on the song's "
                   "probability otherwise).")
@click.option("--tags", is_flag=True, help="Also show what the pretrained tagger (musicnn) hears.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per song, one per line.")
@click.option("--csv", "as_csv", is_flag=True, help="A CSV table.")
@click.option("--barcodes", "barcode_dir", type=click.Path(path_type=Path), default=None,
              help="Also write each song's barcode as a PNG into this folder.")
@click.option("--cache", type=click.Path(path_type=Path), default=None,
              help="Feature cache (default: $PROGROCK_CACHE or ~/.cache/progrock, as every command).")
@click.option("--no-cache", is_flag=True, help="Compute every song's features afresh and keep none.")
@click.option("--out", "out_path", type=click.Path(path_type=Path), default=None,
              help="Append each verdict to this CSV table as it finishes (flushed per row); songs "
                   "already in it are skipped, so rerunning resumes. Nothing per song on stdout "
                   "unless --json or --csv.")
@jobs_option
@engine_options
def predict(run_dir: str, inputs: tuple[Path, ...], model: str | None, threshold: float | None, tags: bool,
            as_json: bool, as_csv: bool,
            barcode_dir: Path | None, cache: Path | None, no_cache: bool, out_path: Path | None, jobs: int | None,
            engine: str, scheduler: str | None) -> None:
    """Classify songs (files or folders) with a run's models; RUN is a run folder or `musicnn` (built in).

    Prints each song's verdict, probability of prog, vote fraction, number of
    snippets, barcode and, when the song is unlike the music the run was
    trained on, a warning.
    """
    from progrock.paths import printable
    from progrock.predict import classify_files, expand_inputs, open_run
    from progrock.report.table import VerdictTable, row_of, write_header

    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    run = open_run(run_dir)
    run.model_names([model or run.default_model])
    if warning := run.warning:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    store = None if no_cache else open_cache(cache, optional=True)
    files, failures = expand_inputs(inputs)
    failures = [(printable(p), r) for p, r in failures]
    writer = write_header(sys.stdout) if as_csv else None
    table = VerdictTable(out_path) if out_path is not None else None
    n_listed = len(files)
    if table is not None:
        files = [f for f in files if f not in table]
        _on_interrupt.append(f"{out_path} keeps every song finished; run the same command again to continue")
    used: set[str] = set()
    n_prog = n_done = 0
    with open_engine(engine, scheduler, jobs) as runner, meter(console, "classifying", len(files)) as advance:
        for path, result, reason in classify_files(run, files, cache=store, model=model, tags=tags, engine=runner,
                                                   threshold=threshold, progress=advance, ordered=table is None):
            if result is None:
                failures.append((path, reason))
                continue
            n_done, n_prog = n_done + 1, n_prog + result.is_prog
            if table is not None:
                table.add(path, result)
            if barcode_dir is not None:
                from progrock.report.barcode import barcode_png

                barcode_png(result.snippet_starts, result.snippet_probs, result.duration,
                            barcode_dir / _barcode_name(path, used), title=f"{path}: {result.verdict}",
                            snippet_seconds=result.snippet_seconds or 10.0)
            if table is not None and not (as_json or as_csv):
                continue  # the table is the output
            if as_json:
                click.echo(json.dumps(result.to_dict(), ensure_ascii=False))
            elif writer is not None:
                writer.writerow(row_of(path, result))
                sys.stdout.flush()
            else:
                print_result(path, result)
    if table is not None:
        table.close()
        console.print(f"{n_done} classified ({n_prog} prog, {n_done - n_prog} nonprog), "
                      f"{n_listed - len(files)} already in the table, {len(failures)} failed  ->  {out_path}")
    print_failures(failures, "could not be classified")
    if failures:
        raise SystemExit(1)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--port", type=click.IntRange(1, 65535), default=6006, show_default=True)
def tensorboard(run_dir: Path, port: int) -> None:
    """Start TensorBoard on RUN_DIR's training logs (each CNN member one run: cnn-1, cnn-2...)."""
    import subprocess

    logdir = run_dir / "tensorboard"
    if not logdir.is_dir():
        raise ProgrockError(f"{run_dir}: no TensorBoard logs (no {logdir})")
    exe = Path(sys.executable).with_name("tensorboard")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "tensorboard.main"]
    out.print(f"TensorBoard on {logdir}: http://127.0.0.1:{port}/ (Ctrl-C to stop)")
    raise SystemExit(subprocess.call(cmd + ["--logdir", str(logdir), "--port", str(port), "--host", "127.0.0.1"]))


class PositiveNumber(click.ParamType):
    """A finite number above 0 (click's FloatRange lets nan and inf through)."""

    name = "number"

    def convert(self, value, param, ctx) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not 0 < number < float("inf"):
            self.fail(f"{value!r} is not a positive number", param, ctx)
        return number


@cli.command()
@click.argument("run_dir", metavar="RUN")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 or :: for every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--allowed-host", "allowed", multiple=True, metavar="NAME",
              help="Also answer requests for this host name or address (repeatable). localhost, "
                   "127.0.0.1, [::1] and --host are always answered; others get 400, which keeps web "
                   "pages elsewhere from reading this server through DNS rebinding. '*' answers "
                   "every host: only behind a proxy that checks it.")
@click.option("--max-upload-mb", type=PositiveNumber(), default=200.0, show_default=True,
              help="Largest accepted file, in MiB.")
@click.option("--max-duration", type=PositiveNumber(), default=7200.0, show_default=True, metavar="SECONDS",
              help="Longest accepted song, in seconds of decoded audio.")
@click.option("--header-timeout", type=PositiveNumber(), default=10.0, show_default=True, metavar="SECONDS",
              help="Time a client has to send a request's line and headers.")
@click.option("--body-timeout", type=PositiveNumber(), default=30.0, show_default=True, metavar="SECONDS",
              help="Longest pause allowed while a client sends a request's body.")
@click.option("--max-connections", type=click.IntRange(1, 100_000), default=100, show_default=True,
              help="Open connections at a time; more are answered 503.")
def serve(run_dir: str, host: str, port: int, allowed: tuple[str, ...], max_upload_mb: float,
          max_duration: float, header_timeout: float, body_timeout: float, max_connections: int) -> None:
    """A web page and HTTP API classifying uploaded songs with a run's models (RUN: a folder or `musicnn`).

    Exit status 0 after Ctrl-C, 2 on an error (a bad option, a busy port, a run that cannot be loaded).
    """
    from progrock.serve.app import create_app
    from progrock.serve.server import (WILDCARD_HOSTS, Limits, allowed_hosts, bind_sockets, check_file_limit,
                                       make_server)

    check_file_limit(max_connections)
    sockets = bind_sockets(host, port)
    try:
        app = create_app(run_dir, max_upload_bytes=max(1, int(max_upload_mb * 1024 * 1024)),
                         max_duration=max_duration, allowed_hosts=allowed_hosts(host, allowed))
        if warning := app.state.run.warning:
            console.print(f"[yellow]warning:[/yellow] {warning}")
        server = make_server(app, Limits(header_timeout=header_timeout, body_timeout=body_timeout,
                                         max_connections=max_connections))
        port = sockets[0].getsockname()[1]
        shown = "localhost" if host in WILDCARD_HOSTS else f"[{host}]" if ":" in host else host
        out.print(f"progrock: open http://{shown}:{port}/  (API schema at /openapi.json)")
        if host in WILDCARD_HOSTS and not allowed:
            console.print("listening on every interface, but answering only requests for localhost: add the "
                          "name or address others use to reach this machine with --allowed-host")
        server.run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()
