"""This tree against an earlier commit, side by side: features, training and prediction through the CLI.

One command::

    .venv/bin/python benchmarks/bench_revisions.py --base ddf3398

checks the base commit out into a worktree (``git worktree add --detach``,
outside this tree, kept for the next run), and runs each case with both trees'
``progrock`` (the same virtual environment, ``PYTHONPATH`` set to each tree's
``src``), interleaved, best of ``--repeat`` rounds:

1. ``features``: ``progrock features`` on real recordings (Debian's
   ``fretsonfire-songs-muldjord``, fetched as ``bench_features.py`` does) into
   a fresh cache, one job; the child's CPU seconds;
2. ``predict``: ``progrock predict RUN SONGS --json``, one job, nothing cached,
   with a run each tree trained on the same songs; the child's CPU seconds;
3. ``train``: ``progrock train`` for ``--epochs`` epochs on a demo corpus both
   trees read from one manifest (written by the base tree), a single CNN (this
   tree: ``--recipe seed --models cnn``); the median seconds of an epoch's
   training from the run's ``history.json`` (wall time on 2 threads: run it on
   a quiet machine), and the child's CPU seconds for the whole command (which
   also evaluates and writes a report, a different amount of work in each tree).

Ratios are base / this tree: above 1 means this tree is faster. CPU seconds
count every thread of the child, so other people's processes on a shared machine
hardly move them. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_features import DEFAULT_CACHE, fetch_songs, load  # noqa: E402

HERE = Path(__file__).resolve().parents[1]


def worktree(base: str) -> Path:
    """A detached checkout of ``base`` beside the bench cache (made once)."""
    sha = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", base], check=True, capture_output=True,
                         text=True).stdout.strip()
    path = DEFAULT_CACHE / f"tree-{sha}"
    if not (path / "src" / "progrock").is_dir():
        subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", str(path), sha], check=True,
                       capture_output=True)
    return path


class Tree:
    """One tree's ``progrock`` command and what its CLI accepts."""

    def __init__(self, name: str, root: Path):
        self.name, self.root = name, root
        where = subprocess.run([sys.executable, "-c", "import progrock; print(progrock.__file__)"], env=self.env,
                               capture_output=True, text=True, check=True).stdout.strip()
        if not Path(where).resolve().is_relative_to(root.resolve()):
            raise RuntimeError(f"{name}: progrock imports from {where}, not from {root}")
        help_text = self.run("train", "--help").stdout + self.run("predict", "--help").stdout
        self.recipes = "--recipe" in help_text
        self.no_cache = "--no-cache" in help_text

    @property
    def env(self) -> dict:
        return dict(os.environ, PYTHONPATH=str(self.root / "src"), PROGROCK_CACHE=str(DEFAULT_CACHE / "unused"))

    def run(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "progrock", *args], capture_output=True, text=True,
                              env=self.env, check=check, cwd=self.root)

    def timed(self, *args: str) -> float:
        """CPU seconds (user + system, every thread) of one command."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = self.run(*args)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"{self.name}: progrock {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    def train_args(self, data: Path, out: Path, epochs: int, batch: int, cache: Path) -> list[str]:
        extra = ["--recipe", "seed", "--models", "cnn"] if self.recipes else []
        return ["train", str(data), "--out", str(out), "--epochs", str(epochs), "--batch-size", str(batch),
                "--cache", str(cache), *extra]

    @staticmethod
    def history(run: Path) -> list[dict]:
        found = sorted(run.glob("**/history.json"))
        return json.loads(found[0].read_text())


def _ratio(base: float, ours: float) -> str:
    return f"{base / ours:.3f}" if ours > 0 else "-"


def bench_features(trees: list[Tree], songs: Path, work: Path, repeat: int) -> dict:
    best = {t.name: float("inf") for t in trees}
    for r in range(repeat):
        for t in trees:
            cache = work / f"features-{t.name}-{r}"
            best[t.name] = min(best[t.name], t.timed("features", str(songs), "--cache", str(cache), "--jobs", "1"))
            shutil.rmtree(cache, ignore_errors=True)
    return best


def bench_predict(trees: list[Tree], songs: Path, runs: dict[str, Path], repeat: int) -> dict:
    best = {t.name: float("inf") for t in trees}
    for _ in range(repeat):
        for t in trees:
            args = ["predict", str(runs[t.name]), str(songs), "--json", "--jobs", "1"]
            best[t.name] = min(best[t.name], t.timed(*args, *(["--no-cache"] if t.no_cache else [])))
    return best


def bench_train(trees: list[Tree], manifest: Path, work: Path, epochs: int, batch: int, repeat: int
                ) -> tuple[dict, dict, dict[str, Path]]:
    epoch = {t.name: float("inf") for t in trees}
    cpu = {t.name: float("inf") for t in trees}
    runs = {}
    for r in range(repeat):
        for t in trees:
            out = work / f"run-{t.name}-{r}"
            cpu[t.name] = min(cpu[t.name], t.timed(*t.train_args(manifest, out, epochs, batch, work / f"cache-{t.name}")))
            seconds = [h["seconds_train"] for h in Tree.history(out)[1:]]      # the first epoch compiles
            epoch[t.name] = min(epoch[t.name], statistics.median(seconds))
            runs[t.name] = out
    return epoch, cpu, runs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", required=True, help="The earlier commit (any git revision).")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--songs", type=int, default=80, help="Demo-corpus songs for the training case.")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--only", choices=["features", "train", "predict"], action="append")
    p.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    only = set(args.only or ["features", "train", "predict"])
    trees = [Tree("base", worktree(args.base)), Tree("this", HERE)]
    work = Path(tempfile.mkdtemp(prefix="progrock-revisions-"))
    results: dict = {"base": args.base, "started": time.strftime("%Y-%m-%d %H:%M"), "load_start": load()}
    try:
        songs = work / "songs"
        songs.mkdir()
        for i, path in enumerate(fetch_songs(DEFAULT_CACHE)):
            (songs / f"song{i}.ogg").symlink_to(path)
        print(f"base {args.base} ({trees[0].root}) against {HERE}; {load()}", flush=True)
        if "features" in only:
            f = bench_features(trees, songs, work, args.repeat)
            results["features_cpu_s"] = f
            print(f"features, {len(list(songs.iterdir()))} real songs, CPU s: base {f['base']:.2f}  "
                  f"this {f['this']:.2f}  ratio {_ratio(f['base'], f['this'])}  ({load()})", flush=True)
        if only & {"train", "predict"}:
            corpus = work / "corpus"
            trees[1].run("corpus", str(corpus), "--songs", str(args.songs), "--seed", "4242", "--jobs", "2",
                         check=True)
            manifest = work / "manifest.csv"
            trees[0].run("scan", str(corpus), "--out", str(manifest), "--jobs", "2", check=True)
            epoch, cpu, runs = bench_train(trees, manifest, work, args.epochs, args.batch_size,
                                           args.repeat if "train" in only else 1)
            if "train" in only:
                results["train_epoch_s"], results["train_cpu_s"] = epoch, cpu
                print(f"train, {args.songs} songs, batch {args.batch_size}: s/epoch base {epoch['base']:.3f}  "
                      f"this {epoch['this']:.3f}  ratio {_ratio(epoch['base'], epoch['this'])};  whole command CPU s "
                      f"base {cpu['base']:.1f}  this {cpu['this']:.1f}  ({load()})", flush=True)
            if "predict" in only:
                p = bench_predict(trees, songs, runs, args.repeat)
                results["predict_cpu_s"] = p
                print(f"predict, {len(list(songs.iterdir()))} real songs, CPU s: base {p['base']:.2f}  "
                      f"this {p['this']:.2f}  ratio {_ratio(p['base'], p['this'])}  ({load()})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
