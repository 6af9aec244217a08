"""The Dask engine on a real cluster on loopback: same results as local, nothing lost to a dead worker."""

from __future__ import annotations

import csv
import os
import signal

import numpy as np
import pytest

from progrock.cli import main
from progrock.parallel.engines import DaskEngine, LocalEngine, make_engine
from progrock.errors import ProgrockError
from progrock.features import FeatureConfig
from progrock.features.cache import FeatureStore
from progrock.features.files import features_from_files
from progrock.model.run import load_run
from progrock.predict import classify_files
from progrock.report.table import COLUMNS, row_of

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler():
    """A scheduler and two single-threaded worker processes (each under a Nanny) on 127.0.0.1."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def library(demo_corpus, tmp_path_factory):
    """The demo corpus's 40 songs (as links) and one broken file."""
    lib = tmp_path_factory.mktemp("library")
    songs = sorted(p for p in demo_corpus.rglob("*") if p.is_file() and p.suffix != ".json")
    for p in songs:
        (lib / f"{p.parent.name}_{p.name}").symlink_to(p)
    (lib / "broken.mp3").write_bytes(b"\xff\xfb" + np.random.default_rng(2).bytes(5000))
    return lib


@pytest.fixture(scope="module")
def local_run(library, tiny_run, tmp_path_factory):
    """The local engine's results on the library, the reference: (feature cache, verdict table)."""
    out = tmp_path_factory.mktemp("local")
    assert main(["features", str(library), "--cache", str(out / "cache"), "--jobs", "2"]) == 1  # the broken file
    assert main(["predict", str(tiny_run.run_dir), str(library), "--out", str(out / "verdicts.csv"),
                 "--jobs", "2"]) == 1
    return out / "cache", out / "verdicts.csv"


def entries(cache):
    return {p.relative_to(cache): p.read_bytes() for p in cache.rglob("*.npy")}


def verdicts(path):
    """A verdict table's rows by file name, without the path (the engines may spell it differently)."""
    with open(path, newline="") as fh:
        return {os.path.basename(r.pop("path")): r for r in csv.DictReader(fh)}


def test_features_and_predict_on_the_cluster_equal_the_local_run(library, local_run, tiny_run, scheduler,
                                                                   tmp_path, capsys):
    cache = tmp_path / "cache"
    dask = ["--engine", "dask", "--scheduler", scheduler]
    assert main(["features", str(library), "--cache", str(cache), *dask]) == 1
    err = capsys.readouterr().err
    assert "broken.mp3" in err and "1 file(s) skipped" in err  # a bad file: reported once, not retried
    ref = entries(local_run[0])
    assert len(ref) == 40 and entries(cache) == ref  # bit for bit

    # A second run finds everything cached: nothing is recomputed.
    stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("*.npy")}
    assert main(["features", str(library), "--cache", str(cache), *dask]) == 1
    assert "0 computed, 40 cached, 1 failed" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.npy")} == stamps

    run = str(tiny_run.run_dir)
    assert main(["predict", run, str(library), "--out", str(tmp_path / "dask.csv"), "--cache", str(cache),
                 *dask]) == 1
    local = verdicts(local_run[1])
    assert len(local) == 40 and "broken.mp3" not in local
    assert verdicts(tmp_path / "dask.csv") == local
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.npy")} == stamps  # predict read the cache

    # Rerunning with the same table resumes: a row cut off mid-write and the rows after it are redone.
    text = (tmp_path / "dask.csv").read_text()
    lines = text.splitlines(keepends=True)
    (tmp_path / "dask.csv").write_text("".join(lines[:-5]) + lines[-5][:12])
    capsys.readouterr()
    assert main(["predict", run, str(library), "--out", str(tmp_path / "dask.csv"), *dask]) == 1
    assert "5 classified" in capsys.readouterr().err
    assert len((tmp_path / "dask.csv").read_text().splitlines()) == 41  # the header and 40 songs, once each
    assert verdicts(tmp_path / "dask.csv") == local


def test_every_worker_gets_array_friendly_malloc_thresholds(scheduler):
    """Dask's MALLOC_TRIM_THRESHOLD_=65536 made features 1.75x slower; the engine's plugin undoes it."""
    with DaskEngine(scheduler) as engine:
        tuned = engine.client.run(lambda dask_worker: getattr(dask_worker, "progrock_malloc_tuned", None))
        assert len(tuned) == 2 and all(v is True for v in tuned.values())


def test_engine_table_and_options_are_checked():
    with pytest.raises(ProgrockError, match="--engine dask"):
        make_engine("local", scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ProgrockError, match="unknown engine"):
        make_engine("spark")
    with LocalEngine(2) as engine:
        out = list(engine.map_ordered(abs, [-3, 1, -2, 5, -4]))
        assert out == [3, 1, 2, 5, 4]
        got = sorted(engine.map_unordered(int, ["1", "x", "3"], on_error=lambda item, reason: reason))
        assert got[0] == (0, 1) and got[2] == (2, 3) and "ValueError" in got[1][1]


def kill_one_busy_worker(engine: DaskEngine) -> int:
    """SIGKILL the process of a worker that is running a task; its pid."""
    pids = engine.client.run(os.getpid)
    busy = [w for w, keys in engine.client.processing().items() if keys] or list(pids)
    pid = pids[busy[0]]
    os.kill(pid, signal.SIGKILL)
    return pid


def test_a_worker_killed_mid_run_loses_nothing(library, local_run, tiny_run, scheduler, tmp_path):
    paths = sorted(str(p) for p in library.iterdir())
    store = FeatureStore(tmp_path / "cache", FeatureConfig())
    killed: list[int] = []

    def on_result(_):
        if not killed:
            killed.append(kill_one_busy_worker(engine))

    with DaskEngine(scheduler) as engine:
        results = features_from_files(paths, store, engine=engine, progress=on_result)
        assert killed and killed[0] not in engine.client.run(os.getpid).values()
        # A song the killed worker finished but had not yet reported is recomputed elsewhere and
        # found in the cache it wrote (atomically) before dying: "cached", not lost.
        status = [r.status for r in results]
        assert status.count("computed") + status.count("cached") == 40 and status.count("cached") <= 2
        assert [r.path for r in results if r.status == "failed"] == [str(library / "broken.mp3")]
        assert entries(store.root) == entries(local_run[0])

        killed.clear()  # and again while classifying: the restarted worker loads the model afresh
        got = {os.path.basename(p): pred for p, pred, _ in
               classify_files(load_run(tiny_run.run_dir), paths, engine=engine, ordered=False, progress=on_result)}
        assert killed and got.pop("broken.mp3") is None
        want = verdicts(local_run[1])
        assert {name: dict(zip(COLUMNS[1:], map(str, row_of(name, pred)[1:]))) for name, pred in got.items()} == want
