"""The local engine when a worker process dies: only the item it held fails, the batch goes on.

A worker can die without an exception: the out-of-memory killer sends SIGKILL,
a decoder crashes on a file (SIGSEGV), native code calls ``exit``. The jobs
below do exactly that to their own process for one chosen item; the engine
must report that item with the signal or exit code, give every other item its
correct result (in order for ``map_ordered``), and leave no process behind.
Through the real ``predict`` and ``scan`` commands, a worker dies while
decoding one chosen song: the command runs as ``python -m progrock`` with a
``sitecustomize`` that wraps the decoding function, in every process of the
command (the workers come from a fork server, not from the test process), to
kill its process on that file only.

Workers are not forked from the caller: a lock another thread of the caller
holds when the workers start is free in the workers (with plain ``fork`` the
worker would wait for it forever).
"""

from __future__ import annotations

import ctypes
import faulthandler
import json
import logging
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from progrock.parallel import engines
from progrock.cli import main
from progrock.parallel.engines import LocalEngine, WorkerDied, usable_cores
from progrock.model.run import load_run
from progrock.predict import classify_file

N_ITEMS = 20
BAD = 7


def _die_by_sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _die_by_exit() -> None:
    os._exit(3)


def _die_by_segfault() -> None:
    faulthandler.disable()  # pytest's handler would print a Python traceback; a decoder's crash does not
    ctypes.string_at(0)  # reads address 0: SIGSEGV in native code, as a crashing decoder


DEATHS = {
    "sigkill": (_die_by_sigkill, "worker died while processing (signal 9, SIGKILL)"),
    "exit": (_die_by_exit, "worker died while processing (exit code 3)"),
    "segfault": (_die_by_segfault, "worker died while processing (signal 11, SIGSEGV)"),
}


def square_or_die(args: tuple[int, str]) -> tuple[int, int]:
    """``(i, i * i)`` and the pid that computed it; the process dies for ``i == BAD``."""
    i, death = args
    if i == BAD:
        DEATHS[death][0]()
    return i * i, os.getpid()


def raise_for_odd(i: int) -> int:
    if i % 2:
        raise ValueError(f"odd {i}")
    return i


def pid_of(_item) -> int:
    return os.getpid()


def _no_workers_left() -> bool:
    return not [p for p in multiprocessing.active_children() if p.name == "progrock-worker"]


@pytest.mark.parametrize("death", sorted(DEATHS))
def test_a_worker_that_dies_costs_only_its_item(death):
    items = [(i, death) for i in range(N_ITEMS)]
    with LocalEngine(2) as engine:
        got = list(engine.map_ordered(square_or_die, items, on_error=lambda item, reason: (item, reason)))
    assert len(got) == N_ITEMS
    for i, out in enumerate(got):
        if i == BAD:
            assert out[0] == items[BAD] and out[1].startswith(DEATHS[death][1]), out
        else:
            assert out[0] == i * i, (i, out)
    # The dead worker was replaced: items after it were computed by more than one process.
    assert len({out[1] for i, out in enumerate(got) if i != BAD}) >= 2
    assert _no_workers_left()


def test_unordered_results_count_every_item_once_and_progress_follows():
    ticks = []
    with LocalEngine(2) as engine:
        got = dict(engine.map_unordered(square_or_die, [(i, "sigkill") for i in range(N_ITEMS)],
                                        progress=ticks.append, on_error=lambda item, reason: reason))
    assert sorted(got) == list(range(N_ITEMS)) and len(ticks) == N_ITEMS
    assert "SIGKILL" in got.pop(BAD)
    assert {i: out[0] for i, out in got.items()} == {i: i * i for i in got}


def test_without_on_error_a_dead_worker_is_a_progrock_error_and_no_worker_is_left():
    with LocalEngine(2) as engine, pytest.raises(WorkerDied, match=r"signal 11, SIGSEGV") as info:
        list(engine.map_ordered(square_or_die, [(i, "segfault") for i in range(N_ITEMS)]))
    assert info.value.exitcode == -signal.SIGSEGV
    assert _no_workers_left()


def test_exceptions_of_jobs_still_go_to_on_error_or_to_the_caller():
    with LocalEngine(2) as engine:
        got = list(engine.map_ordered(raise_for_odd, range(6), on_error=lambda item, reason: reason))
        assert got[0::2] == [0, 2, 4] and all(r == f"unexpected ValueError: odd {i}"
                                              for i, r in zip((1, 3, 5), got[1::2]))
        with pytest.raises(ValueError, match=r"odd [135]"):
            list(engine.map_ordered(raise_for_odd, range(6)))
    assert _no_workers_left()


def test_a_caller_that_stops_early_leaves_no_worker():
    with LocalEngine(2) as engine:
        results = engine.map_unordered(square_or_die, [(i, "exit") for i in range(N_ITEMS)])
        next(results)
        results.close()
    assert _no_workers_left()


def test_workers_are_capped_at_the_usable_cores(monkeypatch, caplog):
    monkeypatch.setattr(engines, "_CLAMPED", set())
    cores = usable_cores()
    assert cores == len(os.sched_getaffinity(0))
    with caplog.at_level(logging.WARNING, logger="progrock.parallel.engines"):
        engine = LocalEngine(1000)
        LocalEngine(1000)   # said once, not per engine
    assert engine.jobs == cores
    said = [r.getMessage() for r in caplog.records if r.name == "progrock.parallel.engines"]
    assert said == [f"1000 worker processes asked for, but this process may run on {cores} "
                    f"core{'s' if cores > 1 else ''}: using {cores}"]
    pids = set(engine.map_ordered(pid_of, range(4 * cores + 2)))
    assert len(pids) <= cores and (cores == 1 or len(pids) >= 2)
    assert LocalEngine(1).jobs == 1 and LocalEngine(0).jobs == 1


# ---------------------------------------------------------------------------------------------
# through the commands


@pytest.fixture(scope="module")
def songs(demo_corpus):
    """Six songs of the demo corpus (prog and nonprog, several formats)."""
    found = sorted(p for p in demo_corpus.rglob("*") if p.is_file() and p.suffix != ".json")
    prog = [p for p in found if p.parent.name == "prog"][:3]
    nonprog = [p for p in found if p.parent.name == "nonprog"][:3]
    return prog + nonprog


KILLS = {"sigkill": "os.kill(os.getpid(), signal.SIGKILL)",
         "segfault": "faulthandler.disable(); ctypes.string_at(0)"}


def _killing(tmp_path: Path, target: str, victim: str, death: str) -> dict[str, str]:
    """The environment of a ``python -m progrock`` whose processes die when ``target``
    (``module:function``, called with a path first) is called on the file named ``victim``."""
    from conftest import SOURCE

    module, function = target.split(":")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(f"""\
import ctypes, faulthandler, importlib, os, signal
from pathlib import Path

_module = importlib.import_module({module!r})
_real = _module.{function}


def _dying(path, *args, **kwargs):
    if Path(path).name == {victim!r}:
        {KILLS[death]}
    return _real(path, *args, **kwargs)


_module.{function} = _dying
""")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), SOURCE])}


def test_predict_goes_on_when_a_worker_dies_on_one_song(songs, tiny_run, tmp_path):
    folder = tmp_path / "songs"
    folder.mkdir()
    for p in songs:
        shutil.copy(p, folder / f"{p.parent.name}_{p.name}")
    shutil.copy(songs[0], folder / "killer.ogg")
    proc = subprocess.run([sys.executable, "-m", "progrock", "predict", str(tiny_run.run_dir), str(folder),
                           "--json", "--jobs", "2"], capture_output=True, text=True, timeout=600,
                          env=_killing(tmp_path, "progrock.predict:features_of_sets", "killer.ogg", "sigkill"))
    status, out, err = proc.returncode, proc.stdout, proc.stderr
    assert status == 1, err
    got = {Path(d["path"]).name: d for d in map(json.loads, out.splitlines())}
    assert len(got) == len(songs) and "killer.ogg" not in got
    model = load_run(tiny_run.run_dir)
    for p in songs:   # every other song classified, exactly as on its own
        name = f"{p.parent.name}_{p.name}"
        assert got[name] == classify_file(model, folder / name).to_dict()
    assert f"{folder / 'killer.ogg'}: worker died while processing (signal 9, SIGKILL)" in err
    assert "Traceback" not in err and "BrokenProcessPool" not in err


def test_scan_writes_its_manifest_when_a_worker_dies_on_one_song(songs, tmp_path, capsys):
    from progrock.data.manifest import read_manifest

    folder = tmp_path / "library"
    for p in songs:
        (folder / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, folder / p.parent.name / p.name)
    shutil.copy(songs[0], folder / "prog" / "crasher.ogg")
    assert main(["scan", str(folder), "--out", str(folder / "clean.csv"), "--jobs", "1"]) == 0
    clean = {s.path: s for s in read_manifest(folder / "clean.csv").songs}
    capsys.readouterr()

    proc = subprocess.run([sys.executable, "-m", "progrock", "scan", str(folder), "--out",
                           str(folder / "manifest.csv"), "--jobs", "2"], capture_output=True, text=True, timeout=600,
                          env=_killing(tmp_path, "progrock.data.manifest:stream_decode", "crasher.ogg", "segfault"))
    status, err = proc.returncode, proc.stderr
    assert status == 1, err
    assert "Traceback" not in err and "prog/crasher.ogg: worker died while processing (signal 11, SIGSEGV)" in err
    got = {s.path: s for s in read_manifest(folder / "manifest.csv").songs}
    assert set(got) == set(clean)
    assert got["prog/crasher.ogg"].error.startswith("worker died while processing (signal 11, SIGSEGV)")
    for path, s in got.items():   # every other song decoded as in a run without the crash
        if path != "prog/crasher.ogg":
            assert s.ok and (s.duration, s.audio_sha256) == (clean[path].duration, clean[path].audio_sha256)


def test_jobs_beyond_the_cores_are_capped_and_said_once_on_stderr(songs, tmp_path):
    folder = tmp_path / "library"
    for p in songs[2:4]:   # one prog, one nonprog song
        (folder / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, folder / p.parent.name / p.name)
    proc = subprocess.run([sys.executable, "-m", "progrock", "scan", str(folder), "--jobs", "1000"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    cores = usable_cores()
    if cores < 1000:
        assert proc.stderr.count("1000 worker processes asked for") == 1, proc.stderr
        assert f"using {cores}" in proc.stderr
    assert (folder / "manifest.csv").is_file()


def test_items_of_any_value_none_included_are_items():
    with LocalEngine(2) as engine:
        assert list(engine.map_ordered(repr, [None, (), 0, "", None])) == ["None", "()", "0", "''", "None"]


# ---------------------------------------------------------------------------------------------
# a caller with other threads


_HELD = threading.Lock()
"""Held by a thread of the test process while workers start (a worker has its own, free)."""


def _take_the_lock(_item) -> bool:
    took = _HELD.acquire(timeout=20)   # with fork, the copy stays locked: False after 20 s, not a hang
    if took:
        _HELD.release()
    return took


def test_a_lock_held_by_another_thread_of_the_caller_does_not_block_the_workers():
    held, release = threading.Event(), threading.Event()

    def holder():
        with _HELD:
            held.set()
            release.wait(60)

    t = threading.Thread(target=holder)
    t.start()
    try:
        held.wait(10)
        with LocalEngine(2) as engine:
            assert list(engine.map_ordered(_take_the_lock, range(4))) == [True] * 4
    finally:
        release.set()
        t.join()


def test_workers_take_the_callers_environment_and_folder(tmp_path, monkeypatch):
    """The fork server started long ago; each worker still sees the caller's environment and folder now."""
    with LocalEngine(2) as engine:                 # the fork server is running from here on
        list(engine.map_ordered(_where_and_mark, range(2)))
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setenv("PROGROCK_TEST_MARK", "set after the server started")
    with LocalEngine(2) as engine:
        assert set(engine.map_ordered(_where_and_mark, range(3))) == {(str(here), "set after the server started")}


def _where_and_mark(_item) -> tuple[str, str]:
    return os.getcwd(), os.environ.get("PROGROCK_TEST_MARK", "")
