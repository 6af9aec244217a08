"""Honest by default: what a run has heard, music unlike it, progress off a terminal, errors that say
what is wrong, datasets too small, interruptions, file modes, TensorBoard (issue 13)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from progrock.audio import write_audio
from progrock.cli import main

from conftest import SR, music, real_songs

SRC = Path(__file__).resolve().parents[1] / "src"


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.run([sys.executable, "-m", "progrock", *args], capture_output=True, text=True, env=env,
                          timeout=kw.pop("timeout", 600), **kw)


def test_a_demo_trained_run_says_it_has_never_heard_real_music(tiny_run, demo_corpus, capsys):
    song = next((demo_corpus / "prog").iterdir())
    assert main(["predict", str(tiny_run.run_dir), str(song), "--model", "cnn"]) == 0
    err = capsys.readouterr().err
    assert err.count("never heard real music") == 1                   # once per run, not per song


def test_real_recordings_are_flagged_unlike_the_demo_music_and_demo_songs_are_not(tiny_run, capsys):
    """The familiarity check: real death metal is far from the synthetic training songs; the demo's
    own test songs (never trained on) are not flagged, but for the one-in-a-hundred the cut-off allows."""
    songs = real_songs()[:3]
    assert main(["predict", str(tiny_run.run_dir), *songs, "--json", "--model", "cnn"]) == 0
    got = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(got) == len(songs) and all(d["unfamiliar"] is True and d["familiarity"] > 1 for d in got)
    test = tiny_run.evaluation.songs["test"]["cnn"] + tiny_run.evaluation.songs["validation"]["cnn"]
    flagged = [r.path for r in test if r.unfamiliar]
    assert len(test) >= 10 and len(flagged) <= 1, flagged
    assert main(["predict", str(tiny_run.run_dir), songs[0], "--model", "cnn"]) == 0
    assert "unlike the training music" in capsys.readouterr().out


def test_a_missing_run_or_swapped_arguments_are_named(tmp_path, demo_corpus, capsys):
    assert main(["predict", str(tmp_path / "nowhere"), str(tmp_path)]) == 2
    assert "no such run folder" in capsys.readouterr().err
    song = next((demo_corpus / "prog").iterdir())
    assert main(["predict", str(song), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{song} is an audio file, not a run folder (did you swap the arguments?" in err
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_a_class_without_songs_is_refused_before_decoding_and_leaves_no_run(tmp_path, capsys):
    for i in range(3):
        write_audio(tmp_path / "data" / "prog" / f"p{i}.flac", music(12.0, seed=i), SR)
    t = time.perf_counter()
    assert main(["train", str(tmp_path / "data"), "--out", str(tmp_path / "run")]) == 2
    assert time.perf_counter() - t < 30                                   # no song was decoded
    err = capsys.readouterr().err
    assert "no nonprog songs to train on" in err and str(tmp_path / "data" / "nonprog") in err
    assert not (tmp_path / "run").exists()


def test_splits_too_small_to_mean_anything_get_a_warning_with_their_interval(tmp_path):
    for i in range(5):
        write_audio(tmp_path / "data" / "prog" / f"p{i}.flac", music(14.0, seed=i, pitch_hz=220), SR)
        write_audio(tmp_path / "data" / "nonprog" / f"n{i}.flac", music(14.0, seed=10 + i, pitch_hz=660), SR)
    proc = _cli("train", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--recipe", "seed",
                "--epochs", "2", "--batch-size", "8", "--models", "cnn", "--cache", str(tmp_path / "cache"),
                "--jobs", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "the validation split has 1 prog and 1 nonprog songs" in proc.stderr
    assert "too few to mean anything" in proc.stderr
    # 4 + 4 training songs: a perfect score is consistent with a true balanced accuracy of 0.40
    assert "the train split has 4 prog and 4 nonprog songs" in proc.stderr and "anywhere above 0.40" in proc.stderr
    assert "too few for the familiarity check" in proc.stderr          # and the run trains without it
    assert json.loads((tmp_path / "run" / "model.json").read_text())["familiarity"] is None


def test_a_perfect_score_on_few_songs_has_an_exact_lower_bound():
    from progrock.evaluation.intervals import perfect_score_low

    assert perfect_score_low(4, 4) == pytest.approx(0.025 ** 0.25, abs=1e-12)
    assert perfect_score_low(1, 100) == pytest.approx((0.025 + 0.025 ** 0.01) / 2)
    assert perfect_score_low(0, 5) == 0.0
    # the bound is exact: a class recalled with probability r gets n of n right with probability r**n,
    # which at r = the bound is the 2.5 % that the one-sided 97.5 % bound leaves out
    for n in (3, 7, 20):
        r = perfect_score_low(n, n)
        assert r ** n == pytest.approx(0.025)


def test_progress_shows_as_lines_when_stderr_is_not_a_terminal(tmp_path):
    for i in range(12):
        write_audio(tmp_path / "music" / f"s{i}.flac", music(3.0, seed=i), SR)
    proc = _cli("features", str(tmp_path / "music"), "--cache", str(tmp_path / "cache"), "--jobs", "1")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("features (seed43):")]
    assert len(lines) >= 2 and lines[-1].startswith("features (seed43): 12/12 (100 %)")
    assert "elapsed" in lines[-1] and any("left" in line for line in lines[:-1])


def test_ctrl_c_says_what_is_kept_and_how_to_go_on(tmp_path):
    for i in range(40):
        write_audio(tmp_path / "music" / f"s{i:02d}.wav", music(20.0, seed=i), SR)
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.Popen([sys.executable, "-m", "progrock", "features", str(tmp_path / "music"), "--cache",
                             str(tmp_path / "cache"), "--jobs", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    cached = lambda: list((tmp_path / "cache").rglob("*.npy"))
    deadline = time.monotonic() + 120
    while len(cached()) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "run the same command again" in err and "Traceback" not in err
    assert 2 <= len(cached()) < 40


def test_run_files_respect_the_umask(tiny_run):
    umask = os.umask(0)
    os.umask(umask)
    want = 0o666 & ~umask
    for name in ("model.json", "model.safetensors", "evaluation.json", "report.html", "config.json",
                 "training/cnn-1/history.json", "training/cnn-1/last.json"):
        mode = stat.S_IMODE((tiny_run.run_dir / name).stat().st_mode)
        assert mode == want, (name, oct(mode), oct(want))


def test_tensorboard_has_train_and_validation_on_one_chart_named_after_the_member(tiny_run):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    logdir = tiny_run.run_dir / "tensorboard"
    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    runs = mux.Runs()
    assert {"cnn-1/loss_train", "cnn-1/loss_validation"} <= set(runs)        # overlaid on the chart "loss"
    assert [e.step for e in mux.Scalars("cnn-1/loss_train", "loss")] == list(range(1, 41))
    best = json.loads((tiny_run.run_dir / "training/cnn-1/model.json").read_text())["training"]["best_epoch"]
    images = mux.Images("cnn-1", "confusion/song_validation")
    assert [e.step for e in images] == [best]                                  # at the kept epoch's step


def test_small_inconsistencies_are_gone(tiny_run, demo_corpus, tmp_path, capsys):
    assert main(["features", str(tmp_path), "--feature-set", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["train", "--help"]) == 0
    assert "the recipe's" in capsys.readouterr().out                         # --patience says its default
    # predict uses the shared cache by default, like every command
    cache = Path(os.environ["PROGROCK_CACHE"])
    before = set(cache.rglob("*.npy")) if cache.exists() else set()
    copy = tmp_path / "new song.flac"
    write_audio(copy, music(15.0, seed=99), SR)
    assert main(["predict", str(tiny_run.run_dir), str(copy), "--model", "cnn", "--json"]) == 0
    assert len(set(cache.rglob("*.npy")) - before) >= 1
    d = json.loads(capsys.readouterr().out)
    # --threshold overrides the model's own
    assert main(["predict", str(tiny_run.run_dir), str(copy), "--model", "cnn", "--json", "--threshold", "0.999"]) == 0
    assert json.loads(capsys.readouterr().out)["threshold"] == 0.999 and d["threshold"] != 0.999
    assert main(["tensorboard", str(tmp_path)]) == 2
    assert "no TensorBoard logs" in capsys.readouterr().err


def test_a_cache_that_is_a_file_is_refused_before_any_work(tmp_path, tiny_run, demo_corpus, capsys):
    (tmp_path / "cache").write_text("not a folder")
    assert main(["features", str(demo_corpus), "--cache", str(tmp_path / "cache")]) == 2
    assert "must be a folder" in capsys.readouterr().err
    song = next((demo_corpus / "nonprog").iterdir())
    assert main(["predict", str(tiny_run.run_dir), str(song), "--cache", str(tmp_path / "cache"),
                 "--model", "cnn"]) == 0                                          # predict goes on without
    assert "going on without a feature cache" in capsys.readouterr().err
