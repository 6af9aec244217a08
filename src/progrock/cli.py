"""The ``progrock`` command: thin glue over the Python API.

Each sub-command parses its options, calls library functions, and prints. Tests
call :func:`main` with an argument list.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from progrock import __version__
from progrock.errors import ProgrockError

console = Console(stderr=True, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def default_cache() -> Path:
    """The feature cache: ``$PROGROCK_CACHE``, else ``$XDG_CACHE_HOME/progrock``, else ``~/.cache/progrock``."""
    if os.environ.get("PROGROCK_CACHE"):
        return Path(os.environ["PROGROCK_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "progrock"


def default_jobs() -> int:
    """Worker processes when --jobs is not given: one per core this process may run on."""
    from progrock.engines import usable_cores

    return usable_cores()


@contextmanager
def progress_bar(description: str, total: int | None = None):
    """A rich progress bar on stderr; yields ``advance(n=1)``."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console, transient=False,
                  disable=not console.is_terminal and os.environ.get("PROGROCK_PROGRESS") != "1") as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1, **_):
            bar.advance(task, n if isinstance(n, int) else 1)

        def set_total(t: int) -> None:
            bar.update(task, total=t)

        advance.set_total = set_total
        yield advance


def print_failures(failures: list[tuple[str, str]], what: str = "skipped") -> None:
    """List files that failed, each with its reason."""
    if not failures:
        return
    console.print(f"[yellow]{len(failures)} file(s) {what}:[/yellow]")
    for path, reason in failures:
        console.print(f"  [yellow]{path}[/yellow]: {reason}")


jobs_option = click.option("--jobs", "-j", type=int, default=None,
                           help="Worker processes (default: all cores).")
cache_option = click.option("--cache", type=click.Path(path_type=Path), default=None,
                            help="Feature cache folder (default: $PROGROCK_CACHE or ~/.cache/progrock).")
feature_set_option = click.option("--feature-set", default="seed43", show_default=True,
                                  help="Feature set: seed43 or logmel.")


def engine_options(fn):
    """``--engine`` and ``--scheduler``: where the per-song work runs (see progrock.engines)."""
    from progrock.engines import ENGINES

    fn = click.option("--scheduler", default=None, metavar="ADDRESS",
                      help="Dask scheduler, e.g. tcp://host:8786 (with --engine dask; without it a "
                           "local Dask cluster of --jobs workers is started). Files, cache and outputs "
                           "must be on storage every worker sees, at the same path.")(fn)
    return click.option("--engine", type=click.Choice(sorted(ENGINES)), default="local", show_default=True,
                        help="local: worker processes here; dask: tasks on a Dask cluster.")(fn)


@contextmanager
def open_engine(engine: str, scheduler: str | None, jobs: int | None):
    """The engine chosen on the command line, closed (a cluster it started shut down) at the end."""
    from progrock.engines import make_engine

    with make_engine(engine, jobs=jobs or default_jobs(), scheduler=scheduler) as e:
        if engine != "local":
            console.print(f"engine: {e.describe()}")
        yield e


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="progrock")
def cli() -> None:
    """Tell progressive rock from everything else, from the audio alone."""


@cli.command()
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--songs", "n_songs", type=int, default=60, show_default=True, help="Number of songs.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--difficulty", type=float, default=0.3, show_default=True,
              help="0 = textbook classes; 1 = heavy overlap and more flipped labels.")
@click.option("--prog-fraction", type=float, default=0.3, show_default=True)
@click.option("--duration-scale", type=float, default=1.0, show_default=True,
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

    with progress_bar("synthesising", n_songs) as advance:
        songs = generate_corpus(out_dir, n_songs=n_songs, seed=seed, difficulty=difficulty,
                                prog_fraction=prog_fraction, duration_scale=duration_scale,
                                formats=tuple(f.strip() for f in formats.split(",") if f.strip()),
                                jobs=jobs or default_jobs(), progress=advance)
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
    from progrock.data.manifest import scan as scan_songs, summary

    try:
        shares = tuple(float(x) for x in fractions.split(","))
    except ValueError:
        raise ProgrockError(f"--split takes three numbers like 0.7,0.15,0.15, got {fractions!r}") from None
    if len(shares) != 3:
        raise ProgrockError(f"--split takes three numbers like 0.7,0.15,0.15, got {fractions!r}")
    with progress_bar("decoding") as advance:
        manifest = scan_songs(source, seed=seed, fractions=shares, jobs=jobs or default_jobs(),
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
    from progrock.engines import workers_share
    from progrock.features import FeatureConfig
    from progrock.features.store import FeatureStore, extract_many

    store = FeatureStore(workers_share(cache or default_cache()), FeatureConfig.named(feature_set))
    if source.is_dir():
        paths, hashes = find_audio_files(source), None
    elif source.is_file():
        manifest = read_manifest(source)
        songs = [s for s in manifest.songs if not s.error]
        paths, hashes = [manifest.resolve(s) for s in songs], [s.audio_sha256 for s in songs]
    else:
        raise ProgrockError(f"{source}: no such folder or manifest")
    if engine != "local":  # workers elsewhere open the files by absolute path
        paths = [workers_share(p) for p in paths]
    with open_engine(engine, scheduler, jobs) as runner, \
            progress_bar(f"features ({store.config.set})", len(paths)) as advance:
        results = extract_many(paths, store, known_hashes=hashes, engine=runner, progress=advance)
    counts = {k: sum(r.status == k for r in results) for k in ("computed", "cached", "failed")}
    out.print(f"{len(results)} files: {counts['computed']} computed, {counts['cached']} cached, "
              f"{counts['failed']} failed  ->  {store.folder}")
    print_failures([(r.path, r.error) for r in results if r.status == "failed"])
    if counts["failed"]:
        raise SystemExit(1)


@contextmanager
def run_hooks(title: str = "training", epochs: int | None = None):
    """Hooks that draw progress bars for scanning, features and epochs."""
    from progrock.workflow import Hooks

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=console,
                  disable=not console.is_terminal and os.environ.get("PROGROCK_PROGRESS") != "1") as bar:
        tasks: dict[str, int] = {}

        def task(name: str, total: int | None = None) -> int:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total, info="")
            elif total is not None:
                bar.update(tasks[name], total=total)
            return tasks[name]

        def on_epoch(epoch: int, record: dict) -> None:
            bal = record.get("balanced_accuracy_song_validation")
            info = f"loss {record.get('loss_train', float('nan')):.3f}" + (
                f"  song bal.acc {bal:.3f}" if bal is not None else "")
            bar.update(task(title, epochs), completed=epoch, info=info)

        yield Hooks(
            log=lambda line: console.print(f"[dim]{line}[/dim]") if os.environ.get("PROGROCK_VERBOSE") else None,
            corpus=lambda n=1: bar.advance(task("synthesising"), n),
            corpus_total=lambda n: task("synthesising", n),
            scan=lambda n=1: bar.advance(task("decoding"), n),
            scan_total=lambda n: task("decoding", n),
            features=lambda _res: bar.advance(task("features")),
            features_total=lambda n: task("features", n),
            epoch=on_epoch,
        )


def print_evaluation(evaluation, sets: list[str] | None = None) -> None:
    """Metrics table per set and model, and the CNN's song confusion matrices."""
    from progrock.evaluation.metrics import format_confusion

    table = Table(title="song-level metrics (cnn: snippet vote, cnn_mean: mean probability, "
                        "cnn_snippet: single snippets)")
    for col in ("set", "model", "n", "bal.acc", "acc", "F1 prog", "MCC", "AUC"):
        table.add_column(col, justify="left" if col in ("set", "model") else "right")
    fmt = lambda v: "–" if v is None else f"{v:.3f}"
    for set_name, models in evaluation.metrics.items():
        if sets and set_name not in sets:
            continue
        best = evaluation.best_model(set_name)
        for model, m in models.items():
            style = "bold" if model == best else None
            table.add_row(set_name, model, str(m["n"]), fmt(m["balanced_accuracy"]),
                          fmt(m["accuracy"]), fmt(m["f1"]), fmt(m["mcc"]), fmt(m["roc_auc"]), style=style)
    out.print(table)
    for set_name, models in evaluation.metrics.items():
        if "cnn" in models and (not sets or set_name in sets):
            out.print(f"\nCNN song confusion ({set_name}):\n{format_confusion(models['cnn']['confusion'])}")


@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", "run_dir", type=click.Path(path_type=Path), required=True, help="Run folder to write.")
@click.option("--epochs", type=int, default=300, show_default=True)
@click.option("--batch-size", type=int, default=1024, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the training.")
@click.option("--split-seed", type=int, default=0, show_default=True, help="Seed of the split when DATA is scanned.")
@click.option("--class-weight", type=click.Choice(["balanced", "none"]), default="balanced", show_default=True)
@click.option("--patience", type=int, default=None, help="Early stopping after this many epochs without improvement.")
@click.option("--freeze-normalisation", is_flag=True, help="Keep the feature normalisation fixed.")
@click.option("--baselines/--no-baselines", default=True, show_default=True)
@click.option("--resume", is_flag=True, help="Continue an interrupted training in --out.")
@cache_option
@feature_set_option
@jobs_option
def train(data: Path, run_dir: Path, epochs: int, batch_size: int, lr: float, seed: int, split_seed: int,
          class_weight: str, patience: int | None, freeze_normalisation: bool, baselines: bool,
          resume: bool, cache: Path | None, feature_set: str, jobs: int | None) -> None:
    """Train the seed's 1D-CNN on DATA (folder, CSV or manifest) beside the baselines."""
    from progrock.data.snippets import SnippetConfig
    from progrock.evaluation.baselines import BASELINES
    from progrock.features import FeatureConfig
    from progrock.model.network import ModelConfig
    from progrock.training.config import TrainConfig
    from progrock.workflow import train_run

    features_cfg = FeatureConfig.named(feature_set)
    snippet_cfg = SnippetConfig()
    model_cfg = ModelConfig(n_features=features_cfg.n_features, n_frames=snippet_cfg.length,
                            trainable_normalisation=not freeze_normalisation)
    train_cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, class_weight=class_weight,
                            early_stopping_patience=patience)
    with run_hooks("training", epochs) as hooks:
        outcome = train_run(data, run_dir, cache=cache or default_cache(), feature_config=features_cfg,
                            snippet_config=snippet_cfg, model_config=model_cfg, train_config=train_cfg,
                            baselines=tuple(BASELINES) if baselines else (), split_seed=split_seed,
                            jobs=jobs or default_jobs(), resume=resume, hooks=hooks)
    t = outcome.training
    out.print(f"best epoch {t.best_epoch} of {len(t.history)}; song threshold {t.threshold:.3f}")
    print_evaluation(outcome.evaluation)
    print_failures(outcome.failed)
    out.print(f"\nmodel:       {t.model_path}\nreport:      {outcome.report}\n"
              f"tensorboard: tensorboard --logdir {run_dir / 'tensorboard'}")
    if outcome.failed:
        raise SystemExit(1)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("data", type=click.Path(path_type=Path), required=False)
@click.option("--set", "sets", multiple=True, help="Set(s) to judge (default: all the data has).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
@click.option("--baselines/--no-baselines", default=True, show_default=True)
@click.option("--cache", type=click.Path(path_type=Path), default=None,
              help="Feature cache (default: the one the run was trained with).")
@jobs_option
def evaluate(run_dir: Path, data: Path | None, sets: tuple[str, ...], as_json: bool, baselines: bool,
             cache: Path | None, jobs: int | None) -> None:
    """Judge RUN_DIR's model (and the baselines) on DATA (default: the run's own manifest)."""
    import json

    from progrock.evaluation.baselines import BASELINES
    from progrock.workflow import evaluate_run

    with run_hooks() as hooks:
        evaluation = evaluate_run(run_dir, data, cache=cache, sets=list(sets) or None,
                                  baselines=tuple(BASELINES) if baselines else (),
                                  jobs=jobs or default_jobs(), hooks=hooks, write=not as_json)
    if as_json:
        click.echo(json.dumps(evaluation.to_dict(songs=False)["sets"], indent=2))
    else:
        print_evaluation(evaluation)
        out.print(f"\nreport: {run_dir / 'report.html'}")
    print_failures(evaluation.skipped)
    if evaluation.skipped:
        raise SystemExit(1)


@cli.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("demo"), show_default=True)
@click.option("--quick", is_flag=True, help="A small corpus and few epochs (about a minute; for CI).")
@click.option("--songs", "n_songs", type=int, default=None, help="Corpus size (default 160, quick 36).")
@click.option("--epochs", type=int, default=None, help="Epochs (default 300, quick 25).")
@click.option("--seed", type=int, default=0, show_default=True)
@jobs_option
def demo(out_dir: Path, quick: bool, n_songs: int | None, epochs: int | None, seed: int, jobs: int | None) -> None:
    """Corpus → scan → features → train → evaluate → report, on the built-in demo corpus."""
    from progrock.workflow import demo_run

    settings = dict(n_songs=n_songs or (36 if quick else 160), epochs=epochs or (25 if quick else 300),
                    batch_size=32 if quick else 128, duration_scale=0.25 if quick else 0.6)
    with run_hooks("training", settings["epochs"]) as hooks:
        outcome = demo_run(out_dir, seed=seed, jobs=jobs or default_jobs(), hooks=hooks, **settings)
    print_evaluation(outcome.evaluation)
    print_failures(outcome.failed)
    out.print(f"\nreport:      {outcome.report.resolve()}\n"
              f"tensorboard: tensorboard --logdir {(outcome.run_dir / 'tensorboard').resolve()}")


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per song, one per line.")
@click.option("--csv", "as_csv", is_flag=True, help="A CSV table.")
@click.option("--barcodes", "barcode_dir", type=click.Path(path_type=Path), default=None,
              help="Also write each song's barcode as a PNG into this folder.")
@click.option("--cache", type=click.Path(path_type=Path), default=None,
              help="Store the features in this cache too (default: not cached).")
@click.option("--out", "out_path", type=click.Path(path_type=Path), default=None,
              help="Append each verdict to this CSV table as it finishes (flushed per row); songs "
                   "already in it are skipped, so rerunning resumes. Nothing per song on stdout "
                   "unless --json or --csv.")
@jobs_option
@engine_options
def predict(run_dir: Path, inputs: tuple[Path, ...], as_json: bool, as_csv: bool, barcode_dir: Path | None,
            cache: Path | None, out_path: Path | None, jobs: int | None, engine: str,
            scheduler: str | None) -> None:
    """Classify songs (files or folders) with the model in RUN_DIR.

    Prints each song's verdict, prog probability, vote fraction, number of
    snippets and barcode. Exit status 0 if every file was classified, 1 if
    some could not be (they are listed with the reason), 2 on an error.
    """
    import csv as csv_module
    import json

    from progrock.model.checkpoint import load_model
    from progrock.engines import workers_share
    from progrock.predict import classify_files, expand_inputs
    from progrock.verdicts import VerdictTable
    from progrock.report.barcode import barcode_png, barcode_text

    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    model = load_model(run_dir)
    files, failures = expand_inputs(inputs)
    writer = None
    if as_csv:
        writer = csv_module.writer(sys.stdout)
        writer.writerow(["path", "label", "probability", "vote_fraction", "n_snippets", "duration", "barcode"])
    table = VerdictTable(out_path) if out_path is not None else None
    n_listed = len(files)
    if table is not None:
        files = [f for f in files if f not in table]
    if engine != "local":  # workers elsewhere open the files and the cache by absolute path
        files, cache = [workers_share(f) for f in files], cache and workers_share(cache)
    n_prog = n_done = 0
    with open_engine(engine, scheduler, jobs) as runner, progress_bar("classifying", len(files)) as advance:
        for path, pred, reason in classify_files(model, files, cache=cache, engine=runner, progress=advance,
                                                 ordered=table is None):
            if pred is None:
                failures.append((path, reason))
                continue
            n_done, n_prog = n_done + 1, n_prog + pred.is_prog
            if table is not None:
                table.add(path, pred)
            if barcode_dir is not None:
                barcode_png(pred.snippet_starts, pred.snippet_probs, pred.duration,
                            barcode_dir / (Path(path).name + ".png"), title=f"{Path(path).name}: {pred.label}")
            if table is not None and not (as_json or as_csv):
                continue  # the table is the output
            if as_json:
                click.echo(json.dumps(pred.to_dict()))
            elif writer is not None:
                writer.writerow([path, pred.label, pred.probability, pred.vote_fraction, pred.n_snippets,
                                 pred.duration, " ".join(f"{p:.3f}" for p in pred.snippet_probs)])
                sys.stdout.flush()
            else:
                colour = "magenta" if pred.is_prog else "cyan"
                out.print(f"[{colour}]{pred.label:>7}[/{colour}]  p={pred.probability:.2f}  "
                          f"votes={pred.vote_fraction:.2f}  n={pred.n_snippets:<3} "
                          f"[{colour}]{barcode_text(pred.snippet_probs, width=30)}[/{colour}]  {path}")
    if table is not None:
        table.close()
        console.print(f"{n_done} classified ({n_prog} prog, {n_done - n_prog} nonprog), "
                      f"{n_listed - len(files)} already in the table, {len(failures)} failed  ->  {out_path}")
    print_failures(failures, "could not be classified")
    if failures:
        raise SystemExit(1)


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
@click.argument("run_dir", type=click.Path(path_type=Path))
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
def serve(run_dir: Path, host: str, port: int, allowed: tuple[str, ...], max_upload_mb: float,
          max_duration: float, header_timeout: float, body_timeout: float, max_connections: int) -> None:
    """A web page and HTTP API classifying uploaded songs with the model in RUN_DIR.

    Exit status 0 after Ctrl-C, 2 on an error (a bad option, a busy port, a model that cannot be loaded).
    """
    from progrock.serve.app import create_app
    from progrock.serve.server import (WILDCARD_HOSTS, Limits, allowed_hosts, bind_sockets, check_file_limit,
                                       make_server)

    check_file_limit(max_connections)
    sockets = bind_sockets(host, port)
    try:
        app = create_app(run_dir, max_upload_bytes=max(1, int(max_upload_mb * 1024 * 1024)),
                         max_duration=max_duration, allowed_hosts=allowed_hosts(host, allowed))
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


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 some files failed, 2 error)."""
    try:
        cli.main(args=argv, prog_name="progrock", standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0)
    except click.exceptions.Abort:
        console.print("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return 2
    except ProgrockError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    except OSError as exc:  # a full disk or a folder that cannot be written: the reason, not a traceback
        console.print(f"[red]error:[/red] {exc}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
