"""The ``progrock`` command: thin glue over the Python API.

Each sub-command checks its options, calls one library function and prints.
Exit status: 0 success; 1 some files failed (the others were processed, the
failures are listed with their reasons); 2 an error that stopped the command
(one line, no traceback); 130 interrupted (Ctrl-C; what is kept and how to
go on is said). Tests call :func:`main` with an argument list.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console

from progrock import __version__
from progrock.cli.progress import Meters, meter
from progrock.errors import ProgrockError

console = Console(stderr=True, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

_on_interrupt: list[str] = []
"""What an interrupted command keeps and how to go on (set by the commands as they work)."""


def default_cache() -> Path:
    """The feature cache: ``$PROGROCK_CACHE``, else ``$XDG_CACHE_HOME/progrock``, else ``~/.cache/progrock``."""
    if os.environ.get("PROGROCK_CACHE"):
        return Path(os.environ["PROGROCK_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "progrock"


def usable_jobs(jobs: int | None) -> int:
    """``--jobs``, or every core this process may run on (more are capped by the local engine)."""
    from progrock.parallel.engines import usable_cores

    return jobs or usable_cores()


def print_failures(failures: list[tuple[str, str]], what: str = "skipped") -> None:
    """List files that failed, each with its reason."""
    if not failures:
        return
    console.print(f"[yellow]{len(failures)} file(s) {what}:[/yellow]")
    for path, reason in failures:
        console.print(f"  [yellow]{path}[/yellow]: {reason}")


def open_cache(cache: Path | None, *, optional: bool = False):
    """The feature cache of ``--cache`` (or the default), checked before any work.

    A cache that is not a usable folder is an error, or, where the cache is
    only a help (``optional``: predict), a warning and no cache.
    """
    from progrock.features.cache import FeatureCache

    root = cache or default_cache()
    try:
        made = FeatureCache(root)
        root.mkdir(parents=True, exist_ok=True)
        if not os.access(root, os.W_OK):
            raise ProgrockError(f"{root}: the feature cache folder is not writable")
        return made
    except (ProgrockError, OSError) as exc:
        if not optional:
            raise ProgrockError(str(exc)) from None
        console.print(f"[yellow]warning:[/yellow] {exc}; going on without a feature cache")
        return None


jobs_option = click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
                           help="Worker processes (default: the cores this process may use; more are capped).")
cache_option = click.option("--cache", type=click.Path(path_type=Path), default=None,
                            help="Feature cache folder (default: $PROGROCK_CACHE or ~/.cache/progrock).")


def feature_set_option(fn):
    from progrock.features.sets import FEATURE_SETS

    return click.option("--feature-set", type=click.Choice(sorted(FEATURE_SETS)), default="seed43",
                        show_default=True, help="Feature set.")(fn)


def engine_options(fn):
    """``--engine`` and ``--scheduler``: where the per-song work runs (see progrock.parallel.engines)."""
    from progrock.parallel.engines import ENGINES

    fn = click.option("--scheduler", default=None, metavar="ADDRESS",
                      help="Dask scheduler, e.g. tcp://host:8786 (with --engine dask; without it a "
                           "local Dask cluster of --jobs workers is started). Files, cache and outputs "
                           "must be on storage every worker sees, at the same path.")(fn)
    return click.option("--engine", type=click.Choice(sorted(ENGINES)), default="local", show_default=True,
                        help="local: worker processes here; dask: tasks on a Dask cluster.")(fn)


def open_engine(engine: str, scheduler: str | None, jobs: int | None):
    """The engine chosen on the command line (a context manager: a cluster it started is shut down)."""
    from progrock.parallel.engines import make_engine

    made = make_engine(engine, jobs=usable_jobs(jobs), scheduler=scheduler)
    if engine != "local":
        console.print(f"engine: {made.describe()}")
    return made


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="progrock")
def cli() -> None:
    """Tell progressive rock from everything else, from the audio alone.

    "The seed" is the course project progrock rebuilds: its 43 features
    (seed43), its 1D-CNN and its snippet vote. Exit status: 0 done, 1 some
    files failed (listed with the reason), 2 an error stopped the command,
    130 interrupted.
    """


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 some files failed, 2 error, 130 interrupted)."""
    from progrock.cli import commands  # noqa: F401 - registers the sub-commands

    _on_interrupt.clear()
    try:
        cli.main(args=argv, prog_name="progrock", standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0)
    except (click.exceptions.Abort, KeyboardInterrupt):
        console.print("interrupted" + ("; " + "; ".join(_on_interrupt) if _on_interrupt else ""))
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


__all__ = ["Meters", "cli", "console", "main", "meter", "out"]


if __name__ == "__main__":
    sys.exit(main())
