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

console = Console(stderr=True)
out = Console(highlight=False, soft_wrap=True)


def default_cache() -> Path:
    """The feature cache: ``$PROGROCK_CACHE``, else ``$XDG_CACHE_HOME/progrock``, else ``~/.cache/progrock``."""
    if os.environ.get("PROGROCK_CACHE"):
        return Path(os.environ["PROGROCK_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "progrock"


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


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
@jobs_option
def corpus(out_dir: Path, n_songs: int, seed: int, difficulty: float, prog_fraction: float,
           duration_scale: float, formats: str, jobs: int | None) -> None:
    """Write a synthetic demo corpus to OUT_DIR (prog/ and nonprog/ folders)."""
    from progrock.corpus import generate_corpus

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
    print_failures([(s.path, s.error) for s in manifest.songs if s.error], "not in any split")


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@cache_option
@feature_set_option
@jobs_option
def features(source: Path, cache: Path | None, feature_set: str, jobs: int | None) -> None:
    """Compute and cache features of a folder's audio files or a manifest's songs."""
    from progrock.audio import find_audio_files
    from progrock.data.manifest import read_manifest
    from progrock.features import FeatureConfig
    from progrock.features.store import FeatureStore, extract_many

    store = FeatureStore(cache or default_cache(), FeatureConfig.named(feature_set))
    if source.is_dir():
        paths, hashes = find_audio_files(source), None
    elif source.is_file():
        manifest = read_manifest(source)
        songs = [s for s in manifest.songs if not s.error]
        paths, hashes = [manifest.resolve(s) for s in songs], [s.audio_sha256 for s in songs]
    else:
        raise ProgrockError(f"{source}: no such folder or manifest")
    with progress_bar(f"features ({store.config.set})", len(paths)) as advance:
        results = extract_many(paths, store, known_hashes=hashes, jobs=jobs or default_jobs(),
                               progress=advance)
    counts = {k: sum(r.status == k for r in results) for k in ("computed", "cached", "failed")}
    out.print(f"{len(results)} files: {counts['computed']} computed, {counts['cached']} cached, "
              f"{counts['failed']} failed  ->  {store.folder}")
    print_failures([(r.path, r.error) for r in results if r.status == "failed"])
    if counts["failed"]:
        raise SystemExit(1)


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
